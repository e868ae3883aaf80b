"""Each subpackage has a public face: a docstring, an explicit ``__all__`` whose names all resolve, and no
heavy import (torch, rclpy) merely for importing the face."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "amodal_depth_ros"
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def test_every_subpackage_is_listed():
    assert {"core", "networks", "runtime", "learned", "ros", "tools"} <= set(SUBPACKAGES)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_face_has_docstring_and_all(name):
    tree = ast.parse((PACKAGE / name / "__init__.py").read_text())
    assert len(ast.get_docstring(tree) or "") > 40
    assigned = [n for n in tree.body if isinstance(n, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
    assert assigned and isinstance(assigned[0].value, ast.List), "an explicit __all__ list"
    face = importlib.import_module(f"amodal_depth_ros.{name}")
    assert face.__all__ and len(set(face.__all__)) == len(face.__all__)
    for public in face.__all__:
        assert getattr(face, public) is not None
    submodules = {p.stem for p in (PACKAGE / name).glob("*.py")}
    assert not set(face.__all__) & submodules, "a public name that is also a submodule's name is shadowed by it"
    with pytest.raises(AttributeError):
        face.no_such_name  # noqa: B018


def test_faces_import_nothing_heavy():
    code = ("import sys\n" + "".join(f"import amodal_depth_ros.{n}\n" for n in SUBPACKAGES)
            + "print(sorted(m for m in ('torch', 'rclpy', 'open3d', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
