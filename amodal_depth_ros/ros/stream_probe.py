"""A camera driver and one viewer (or a subscriber to every output) around a running node, measuring it live:
delivery, output rate against the node's own rate (1000 / its mean per-frame stage ms), latency from
publication to the viewer, and the node process's RSS and CPU. Used by ``amodal-depth soak`` (minutes, per-
minute rows) and ``amodal-depth bench`` (its live row)."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..synthetic import SyntheticCamera
from . import conversions as conv
from .diagnostics import images_accounted
from .outputs import OUTPUT_TYPES
from .spin_thread import SpinThread

DRAIN_S = 30.0   # at most this long after the stream for the node to account for every image published
VIEWED = "amodal_depth/image"   # what the viewer subscribes to (the node then skips the other outputs)


@dataclass
class Window:
    """What happened in one measuring window (a minute of a soak, the whole of a bench run)."""

    seconds: float
    published: int
    delivered: int                 # images the node received (its frames_in)
    superseded: int                # images superseded in the node's input queue while it was busy
    outputs: int                   # depth images the viewer received
    stage_ms: float                # the node's mean per-frame stage ms (diagnostics stage_ms_total)
    latency_ms: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    cpu_percent: float = 0.0

    def row(self) -> dict[str, Any]:
        out_hz = self.outputs / self.seconds if self.seconds > 0 else 0.0
        own_hz = 1000.0 / self.stage_ms if self.stage_ms > 0 else float("nan")
        lat = np.array(self.latency_ms) if self.latency_ms else np.array([np.nan])
        return {"seconds": round(self.seconds, 1), "published": self.published, "delivered": self.delivered,
                "superseded_in_queue": self.superseded,
                "delivery": round(self.delivered / max(self.published, 1), 4), "output_hz": round(out_hz, 2),
                "own_hz": round(own_hz, 2), "output_over_own": round(out_hz / own_hz, 3) if own_hz == own_hz else None,
                "latency_p50_ms": round(float(np.nanpercentile(lat, 50)), 1),
                "latency_p95_ms": round(float(np.nanpercentile(lat, 95)), 1),
                "rss_mb": round(self.rss_mb, 1), "cpu_percent": round(self.cpu_percent, 1)}


def received_and_superseded(values: dict[str, str]) -> tuple[int, int]:
    """(images the node received, images superseded in its input queue), from its diagnostics values."""
    return int(values.get("frames_in", "0")), int(values.get("superseded_in_queue_image", "0"))


def process_usage(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds so far) of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024.0, (int(fields[11]) + int(fields[12])) / ticks


class StreamProbe(Node):
    """Publishes a synthetic RGB-D camera (reliable, depth 10, as drivers start) and views one output."""

    def __init__(self, width: int = 640, height: int = 480, camera: str = "/camera", node_namespace: str = "/amodal",
                 frames: int = 10, context: Context | None = None, every_output: bool = False) -> None:
        """``every_output``: subscribe to all of the node's outputs (cloud and instances included), so that it
        builds and publishes them all; the viewed one is still the only one measured."""
        super().__init__("amodal_depth_stream_probe", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {name: self.create_publisher(kind, f"{camera}/{name}", qos)
                     for name, kind in (("image", Image), ("camera_info", CameraInfo), ("depth", Image))}
        source = SyntheticCamera(0, width, height)
        self.frames = [source.frame(i) for i in range(frames)]
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}          # stamp -> monotonic publication time
        self._latency: list[float] = []
        self._outputs = 0
        self.diagnostics: dict[str, str] = {}
        self._diagnostics_count = 0
        self._stage_ms: list[float] = []        # stage_ms_total of each diagnostics window with processed frames
        self.create_subscription(Image, f"{node_namespace}/{VIEWED}", self._on_output, qos)
        for topic, kind in OUTPUT_TYPES.items() if every_output else ():
            if topic != VIEWED:
                self.create_subscription(kind, f"{node_namespace}/{topic}", lambda msg: None, qos)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._spinner = SpinThread(self, period=0.01)

    def _on_output(self, msg: Image) -> None:
        now = time.monotonic()
        with self._lock:
            sent = self._sent.pop(conv.stamp_to_ns(msg.header.stamp), None)
            self._outputs += 1
            if sent is not None:
                self._latency.append((now - sent) * 1e3)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        values = {kv.key: kv.value for kv in msg.status[0].values}
        if "frames_in" in values:
            with self._lock:
                self.diagnostics = values
                self._diagnostics_count += 1
                if "stage_ms_total" in values:
                    self._stage_ms.append(float(values["stage_ms_total"]))

    def connected(self, timeout: float) -> bool:
        """True once the node is matched both ways, subscribes reliable to our reliable inputs and has received a
        first frame (each input's sequence numbers then have their baseline: every later image is counted)."""
        deadline = time.monotonic() + timeout
        viewed = self.resolve_topic_name("/amodal/" + VIEWED)

        def wait(condition: Callable[[], bool]) -> bool:
            while time.monotonic() < deadline:
                if condition():
                    return True
                time.sleep(0.05)
            return False

        def values() -> dict[str, str]:
            with self._lock:
                return dict(self.diagnostics)

        if not wait(lambda: all(p.get_subscription_count() > 0 for p in self.pubs.values())
                    and self.count_publishers(viewed) > 0):
            return False
        if not wait(lambda: all(values().get(f"qos_{name}", "").startswith("reliable/") for name in self.pubs)):
            return False
        received = int(values().get("frames_in", "0"))
        self._publish(self.frames[0], time.time_ns())
        return wait(lambda: int(values().get("frames_in", "0")) > received)

    def _publish(self, frame: Any, stamp: int) -> None:
        header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="camera_color_optical_frame")
        self.pubs["camera_info"].publish(conv.intrinsics_to_camera_info(frame.intrinsics, header))
        self.pubs["depth"].publish(conv.depth_to_image(frame.depth, header, "32FC1"))
        self.pubs["image"].publish(conv.rgb_to_image(frame.rgb, header))

    def stream(self, seconds: float, rate: float, window: float, pid: int,
               on_window: Callable[[Window], None] | None = None) -> list[Window]:
        """Publish at ``rate`` Hz for ``seconds``; one Window per ``window`` seconds (the last may be shorter)."""
        windows: list[Window] = []
        start = time.monotonic()
        index = published = 0
        begin, begin_published = start, 0
        begin_in, begin_superseded = received_and_superseded(self.diagnostics)
        first = images_accounted(self.diagnostics)
        rss, cpu0 = process_usage(pid)
        stamp = time.time_ns()
        while True:
            now = time.monotonic()
            if now - begin >= window or now - start >= seconds:
                span = now - begin
                if now - start >= seconds:   # the last frames' outputs, and a diagnostics message counting them
                    total = published
                    self._drain(lambda v: images_accounted(v) - first >= total, DRAIN_S)  # noqa: B023
                with self._lock:
                    latency, self._latency = self._latency, []
                    outputs, self._outputs = self._outputs, 0
                    stage_ms, self._stage_ms = self._stage_ms, []
                    values = dict(self.diagnostics)
                rss, cpu = process_usage(pid)
                delivered, superseded = received_and_superseded(values)
                result = Window(seconds=span, published=published - begin_published, delivered=delivered - begin_in,
                                superseded=superseded - begin_superseded,
                                outputs=outputs, stage_ms=float(np.mean(stage_ms)) if stage_ms else float("nan"),
                                latency_ms=latency, rss_mb=rss,
                                cpu_percent=100.0 * (cpu - cpu0) / (time.monotonic() - begin))
                windows.append(result)
                if on_window is not None:
                    on_window(result)
                begin, begin_published, begin_in, begin_superseded, cpu0 = (time.monotonic(), published, delivered,
                                                                            superseded, cpu)
                if now - start >= seconds:
                    return windows
            frame = self.frames[index % len(self.frames)]
            stamp = max(stamp + 1, time.time_ns())
            with self._lock:
                self._sent[stamp] = time.monotonic()
                if len(self._sent) > 1000:   # frames the node superseded never come back
                    for old in sorted(self._sent)[:500]:
                        del self._sent[old]
            self._publish(frame, stamp)
            index += 1
            published += 1
            time.sleep(max(0.0, start + index / rate - time.monotonic()))

    def _drain(self, done: Callable[[dict[str, str]], bool], timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the node's diagnostics say ``done``, then for one more message: the
        outputs of the last frames come meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                values, count = dict(self.diagnostics), self._diagnostics_count
            if values and done(values):
                break
            time.sleep(0.05)
        while time.monotonic() < deadline and self._diagnostics_count == count:
            time.sleep(0.05)

    def close(self) -> None:
        self._spinner.stop()
        self.destroy_node()
