"""amodal_depth_node as a child process, started exactly as a user would (`--ros-args ...`).

Used by the demo, the tests and (later) live replay: one place knows how to start and stop it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The topic layout the project's own tools use: node in /amodal, camera in /camera.
STANDARD_REMAPS = ("__ns:=/amodal", "image:=/camera/image", "camera_info:=/camera/camera_info",
                   "depth:=/camera/depth")


def remap_args(remaps: tuple[str, ...] = STANDARD_REMAPS) -> list[str]:
    return [arg for remap in remaps for arg in ("-r", remap)]


class NodeProcess:
    def __init__(self, ros_args: list[str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen([sys.executable, "-m", "amodal_depth_ros.ros.node", "--ros-args", *ros_args],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM (rclpy shuts down cleanly), then SIGKILL after 10 s."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
