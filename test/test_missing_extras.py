"""Where the venv's extras are missing (a ROS 2 workspace with rosdep's packages only), tests that need them are
reported as skipped, with the reason, instead of as errors: checked by running pytest with torch blocked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUN_WITHOUT_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, NoTorch())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_tests_needing_torch_skip_without_it(tmp_path):
    (tmp_path / "test_uses_torch.py").write_text(
        "import torch\n\ndef test_a():\n    assert torch.ones(1).item() == 1\n")
    (tmp_path / "test_uses_torch_inside.py").write_text(
        "def test_b():\n    import torch\n    assert torch.ones(1).item() == 1\n\n"
        "def test_c():\n    assert 1 + 1 == 2\n\n"
        "def test_d():\n    raise ModuleNotFoundError('No module named nothing_here', name='nothing_here')\n")
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    run = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TORCH, "-q", "-rs", "-p", "no:cacheprovider",
                          str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    out = run.stdout
    assert "1 failed, 1 passed, 2 skipped" in out, out     # test_d's module is no extra: a real failure
    assert out.count(": needs torch") == 2, out
    assert "error" not in out.splitlines()[-1], out
