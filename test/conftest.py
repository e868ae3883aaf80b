"""Shared fixtures: an isolated ROS domain per test session, and the node as a real process."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from amodal_depth_ros.ros import NodeProcess

ROOT = Path(__file__).resolve().parents[1]

# Each pytest session talks on its own DDS domain so parallel runs on one machine never cross.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
# Large images and clouds need a bigger shared-memory segment than Fast DDS's default (see the file).
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_data.xml"))


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
