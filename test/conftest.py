"""Shared fixtures: an isolated ROS domain per test session, and the node as a real process."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each pytest session talks on its own DDS domain so parallel runs on one machine never cross.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
# Large images and clouds need a bigger shared-memory segment than Fast DDS's default (see the file).
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_data.xml"))


class NodeProcess:
    """amodal_depth_node started as `python -m ... --ros-args ...`, exactly as a user would."""

    def __init__(self, ros_args: list[str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen([sys.executable, "-m", "amodal_depth_ros.ros.node", "--ros-args", *ros_args],
                                     cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


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
