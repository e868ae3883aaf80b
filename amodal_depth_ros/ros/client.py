"""A camera-side peer of the node: publishes RGB-D frames and collects what the node publishes.

Used by the demo and the integration tests (and by live rosbag replay): the same code a robot's
camera driver and a downstream consumer would run, over real DDS.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..core.types import CameraIntrinsics
from . import conversions as conv
from .diagnostics import unaccounted_images
from .outputs import OUTPUT_TYPES
from .spin_thread import SpinThread

# Short names for the node's outputs (``ros.outputs``), as the demo and the tests read them.
_SHORT_NAMES = {"visible_depth": "visible_depth/image", "visible_info": "visible_depth/camera_info",
                "amodal_depth": "amodal_depth/image", "amodal_info": "amodal_depth/camera_info",
                "cloud": "amodal_points", "instances": "amodal_instances"}
OUTPUT_TOPICS = {key: (topic, OUTPUT_TYPES[topic]) for key, topic in _SHORT_NAMES.items() if topic in OUTPUT_TYPES}


@dataclass
class Outputs:
    """Everything the node published for one input stamp."""

    messages: dict[str, object] = field(default_factory=dict)
    received_at: float = 0.0

    def complete(self) -> bool:
        return all(key in self.messages for key in OUTPUT_TOPICS)


class CameraStreamClient(Node):
    def __init__(
        self,
        namespace: str = "/camera",
        node_namespace: str = "/amodal",
        reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE,
        output_reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE,
        name: str = "camera_stream_client",
    ):
        super().__init__(name)
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        self.pub_image = self.create_publisher(Image, f"{namespace}/image", qos)
        self.pub_info = self.create_publisher(CameraInfo, f"{namespace}/camera_info", qos)
        self.pub_depth = self.create_publisher(Image, f"{namespace}/depth", qos)
        self._lock = threading.Lock()
        self.outputs: dict[int, Outputs] = {}
        self.diagnostics: list[DiagnosticArray] = []
        out_qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=output_reliability)
        self.output_subs = [self.create_subscription(cls, f"{node_namespace}/{topic}", self._collector(key), out_qos)
                            for key, (topic, cls) in OUTPUT_TOPICS.items()]
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._spinner = SpinThread(self, period=0.05)

    def _collector(self, key: str) -> Callable[[Any], None]:
        def store(msg: Any) -> None:
            stamp = conv.stamp_to_ns(msg.header.stamp)
            with self._lock:
                entry = self.outputs.setdefault(stamp, Outputs())
                entry.messages[key] = msg
                entry.received_at = time.monotonic()
        return store

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.diagnostics.append(msg)

    # --- connection ----------------------------------------------------------------------------
    def wait_connected(self, timeout: float = 20.0, depth: bool = True) -> bool:
        """True once the node subscribes to our inputs and publishes to our output subscriptions."""
        publishers = [self.pub_image, self.pub_info] + ([self.pub_depth] if depth else [])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in publishers) and \
                    all(s.get_publisher_count() > 0 for s in self.output_subs):
                return True
            time.sleep(0.05)
        return False

    # --- input side ----------------------------------------------------------------------------
    def publish_frame(self, rgb: np.ndarray, depth: np.ndarray | None, intrinsics: CameraIntrinsics, stamp_ns: int,
                      frame_id: str = "camera_color_optical_frame", image_encoding: str = "rgb8",
                      depth_encoding: str = "32FC1") -> None:
        header = Header(stamp=conv.ns_to_stamp(stamp_ns), frame_id=frame_id)
        self.pub_info.publish(conv.intrinsics_to_camera_info(intrinsics, header))
        if depth is not None:
            self.pub_depth.publish(conv.depth_to_image(depth, header, depth_encoding))
        self.pub_image.publish(conv.rgb_to_image(rgb, header, image_encoding))

    def publish_until_output(self, rgb: np.ndarray, depth: np.ndarray | None, intrinsics: CameraIntrinsics,
                             stamps: Iterator[int], tries: int = 10, wait: float = 2.0, timeout: float = 120.0,
                             **encodings: str) -> tuple[int, Outputs]:
        """Publish with fresh stamps, one every ``wait`` seconds (at most ``tries``), until the node answers
        any of them: best-effort subscriptions may lose the first frames after matching, and a node slow on its
        first frames (models loading, a loaded machine) answers an earlier one late. Returns the newest stamp
        answered and its outputs; AssertionError when none is answered within ``timeout`` seconds."""
        sent: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(sent) < tries:
                sent.append(next(stamps))
                self.publish_frame(rgb, depth, intrinsics, sent[-1], **encodings)
            until = min(deadline, time.monotonic() + wait) if len(sent) < tries else deadline
            while time.monotonic() < until:
                with self._lock:
                    answered = [s for s in sent if s in self.outputs and self.outputs[s].complete()]
                    if answered:
                        return answered[-1], self.outputs[answered[-1]]
                time.sleep(0.01)
        raise AssertionError(f"no output from the node for any of {len(sent)} frames in {timeout:g} s")

    def answered(self) -> int:
        """How many stamps the node has answered with every output so far."""
        with self._lock:
            return sum(entry.complete() for entry in self.outputs.values())

    # --- output side ---------------------------------------------------------------------------
    def wait_outputs(self, stamp_ns: int, timeout: float = 20.0) -> Outputs | None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                entry = self.outputs.get(stamp_ns)
                if entry is not None and entry.complete():
                    return entry
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def settled_diagnostics(self, timeout: float = 60.0) -> dict[str, str] | None:
        """The node's diagnostics once they count every frame answered here as processed and account for every
        image the node received (the node is idle), or None after ``timeout`` s. (A diagnostics message may be
        older than the newest answer: its frames_out tells.)"""
        answered = self.answered()
        deadline = time.monotonic() + timeout
        while True:
            values = self.latest_diagnostic_values()
            if values and int(values["frames_out"]) >= answered and unaccounted_images(values) == 0:
                return values
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def latest_diagnostic_values(self) -> dict[str, str]:
        with self._lock:
            if not self.diagnostics:
                return {}
            status = self.diagnostics[-1].status[0]
        return {kv.key: kv.value for kv in status.values}

    def close(self) -> None:
        self._spinner.stop()
        self.destroy_node()
