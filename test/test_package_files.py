"""The package's files agree with each other: manifest, setup.py, CMake interfaces, launch file,
default parameters, DDS profile and the installed executables."""
from __future__ import annotations

import ast
import os
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

import amodal_depth_ros
from amodal_depth_ros.core import config

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "amodal_depth.launch.py"
LAUNCH_ARGUMENTS = ("namespace", "camera_namespace", "image_topic", "depth_topic", "camera_info_topic",
                    "params_file", "use_depth", "cloud_stride", "log_level", "use_large_data_profile", "rviz")
SCRIPTS = ("amodal_depth_node", "amodal-depth")
DEPENDENCY_TAGS = ("depend", "build_depend", "exec_depend", "buildtool_depend", "build_export_depend", "test_depend")


@pytest.fixture(scope="module")
def manifest() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def _dependencies(root: ET.Element) -> set[str]:
    return {element.text.strip() for tag in DEPENDENCY_TAGS for element in root.findall(tag) if element.text}


def test_package_xml(manifest: ET.Element) -> None:
    assert manifest.tag == "package"
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == "amodal_depth_ros"
    assert manifest.findtext("export/build_type") == "ament_cmake"
    # Every runtime dependency, by its rosdep key (onnx has none: requirements.txt installs it).
    required = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces", "builtin_interfaces",
                "ament_index_python", "rosidl_default_generators", "python3-numpy", "python3-opencv", "python3-yaml",
                "python3-tqdm", "python3-scipy", "python3-torch", "python3-onnxruntime-pip", "python3-open3d-pip",
                "python3-rosbags-pip"}
    missing = required - _dependencies(manifest)
    assert not missing, f"package.xml does not depend on {sorted(missing)}"
    assert "rosidl_interface_packages" in [e.text for e in manifest.findall("member_of_group")]


def test_versions_agree(manifest: ET.Element) -> None:
    calls = [node for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"]
    assert len(calls) == 1, "setup.py must call setup() once"
    versions = [ast.literal_eval(kw.value) for kw in calls[0].keywords if kw.arg == "version"]
    assert versions == [manifest.findtext("version")] == [amodal_depth_ros.__version__]


def test_every_message_is_generated() -> None:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"rosidl_generate_interfaces\s*\((.*?)\)", cmake, re.S)
    assert block, "CMakeLists.txt has no rosidl_generate_interfaces()"
    listed = set(re.findall(r'"?(msg/[^\s"]+\.msg)"?', block.group(1)))
    on_disk = {f"msg/{path.name}" for path in (ROOT / "msg").glob("*.msg")}
    assert on_disk, "no msg/*.msg files"
    assert on_disk == listed, (
        f"not generated: {sorted(on_disk - listed)}; listed but missing: {sorted(listed - on_disk)}"
    )


def test_launch_file_compiles(tmp_path: Path) -> None:
    py_compile.compile(str(LAUNCH_FILE), cfile=str(tmp_path / "launch.pyc"), doraise=True)


def test_launch_file_declares_arguments() -> None:
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    declared: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name != "DeclareLaunchArgument":
            continue
        first = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "name"), None)
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), \
            f"line {node.lineno}: DeclareLaunchArgument name must be a string literal"
        declared.append(first.value)
    assert len(declared) == len(set(declared)), f"declared twice: {declared}"
    missing = set(LAUNCH_ARGUMENTS) - set(declared)
    assert not missing, f"launch file does not declare {sorted(missing)}"


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_default_params_file_equals_built_in_defaults() -> None:
    path = ROOT / "config" / "amodal_depth.yaml"
    assert config.load_params_file(path) == config.defaults()
    # load_params_file fills gaps with defaults, so check the file itself lists every parameter.
    listed = set(_flatten(yaml.safe_load(path.read_text())["/**"]["ros__parameters"]))
    names = {spec.name for spec in config.PARAMS}
    assert not names - listed, f"missing from {path.name}: {sorted(names - listed)}"
    assert not listed - names, f"unknown in {path.name}: {sorted(listed - names)}"


def test_fastdds_profile_is_xml() -> None:
    root = ET.parse(ROOT / "config" / "fastdds_large_data.xml").getroot()
    assert root.tag.endswith("profiles")


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable(name: str, tmp_path: Path) -> None:
    path = ROOT / "scripts" / name
    assert path.is_file(), f"scripts/{name} is missing (CMakeLists.txt installs it)"
    assert os.access(path, os.X_OK), f"scripts/{name} is not executable"
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    py_compile.compile(str(path), cfile=str(tmp_path / f"{name}.pyc"), doraise=True)
