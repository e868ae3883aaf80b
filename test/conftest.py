"""Shared fixtures: an isolated ROS domain per test session, and the node as a real process. Tests that need
what a plain ROS 2 install may lack (the venv's extras: torch, onnxruntime, open3d, ...) are skipped, with
the reason, where those cannot be imported (e.g. under `colcon test` with rosdep's packages only)."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

# One compute thread per process (torch, OpenMP), inherited by the node processes the tests start: the suite
# then runs about as fast with a second process keeping a core busy as on a quiet machine (its parallel
# regions no longer wait for a thread the other process holds up). Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from amodal_depth_ros.ros import NodeProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Each pytest session talks on its own DDS domain so parallel runs on one machine never cross.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
# Large images and clouds need a bigger shared-memory segment than Fast DDS's default (see the file).
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_data.xml"))


# Packages the venv installs (requirements.txt) that a ROS 2 workspace may not have.
EXTRAS = frozenset({"torch", "onnx", "onnxruntime", "open3d", "rosbags", "tqdm", "scipy", "yaml", "cv2"})


def _missing_extra(error: BaseException | None) -> str:
    """The extra whose absence caused ``error`` (a ModuleNotFoundError, possibly wrapped), else ''."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in EXTRAS:
            return (error.name or "").split(".")[0]
        error = error.__cause__ or error.__context__
    return ""


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        try:
            collector._getobj()    # the import error again, as an exception rather than text
        except BaseException as error:  # noqa: BLE001 - whatever the module raised on import
            extra = _missing_extra(error)
            if extra:
                report.outcome, report.longrepr = "skipped", (str(collector.path), 0, f"Skipped: needs {extra}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    extra = _missing_extra(call.excinfo.value) if call.excinfo is not None and report.failed else ""
    if extra:
        report.outcome, report.longrepr = "skipped", (str(item.path), 0, f"Skipped: needs {extra}")
    return report


@pytest.fixture(scope="session")
def rclpy_context():
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def start_node(tmp_path):
    started: list[NodeProcess] = []

    def start(*ros_args: str, params_file: Path | None = ROOT / "config" / "amodal_depth.yaml") -> NodeProcess:
        args = (["--params-file", str(params_file)] if params_file else []) + list(ros_args)
        node = NodeProcess(args, tmp_path / f"node{len(started)}.log")
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def wait_for(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def settled_diagnostics(client, timeout: float = 60.0) -> dict[str, str]:
    """``client.settled_diagnostics``, asserted: a baseline, or the end state, for counting images."""
    values = client.settled_diagnostics(timeout)
    assert values is not None, client.latest_diagnostic_values()
    return values


def set_parameters(client, node_name: str, values: dict) -> list[tuple[bool, str]]:
    """SetParameters over the node's service, as `ros2 param set` does; (successful, reason) for each."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    service = client.create_client(SetParameters, f"{node_name}/set_parameters")
    try:
        assert service.wait_for_service(timeout_sec=10.0)
        future = service.call_async(SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]))
        assert wait_for(future.done, 60.0)
        results = future.result().results
    finally:
        client.destroy_client(service)
    return [(r.successful, r.reason) for r in results]
