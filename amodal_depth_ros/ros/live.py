"""Live replay: play a bag's camera topics into a running node at the recorded rate (scaled) and record
what the node publishes into a bag, as `ros2 bag play` + `ros2 bag record` would on a ROS machine.

Input topics keep their names (remap the node onto them); publishers are reliable, which both
best-effort and reliable subscribers accept. Recorded outputs are written at their header stamp, so
a live recording and an offline replay of the same bag can be compared message by message.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from ..errors import DataError
from . import conversions as conv
from .bag import BagWriter, message_class, read_messages, topics_of
from .outputs import OUTPUT_TYPES
from .replay import ReplayTopics


@dataclass
class LiveSummary:
    frames_played: int = 0
    outputs: dict[str, int] = field(default_factory=dict)   # output topic -> messages recorded
    complete_frames: int = 0                                # stamps with every output topic
    late_s: float = 0.0                                     # worst lag of a publication behind its schedule

    def as_dict(self) -> dict[str, Any]:
        return {"frames_played": self.frames_played, "complete_frames": self.complete_frames,
                "outputs": self.outputs, "worst_lag_s": round(self.late_s, 3)}


class LiveReplay(Node):
    def __init__(self, bag_in: Path, bag_out: Path, topics: ReplayTopics, storage: str = "mcap",
                 context: Context | None = None, clock: bool = False):
        super().__init__("amodal_depth_live_replay", context=context)
        self.bag_in, self.topics = Path(bag_in), topics
        available = topics_of(self.bag_in)
        self.inputs = [t for t in (topics.image, topics.camera_info, topics.depth) if t]
        missing = [t for t in self.inputs if t not in available]
        if missing:
            raise DataError(f"{bag_in}: missing topic(s) {missing}; the bag has {sorted(available)}")
        qos_in = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers_by_topic = {t: self.create_publisher(message_class(available[t][0]), t, qos_in)
                                    for t in self.inputs}
        # Deep enough for every output of a short burst: the recorder must not be the one dropping frames.
        qos_out = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        prefix = topics.output_namespace.rstrip("/")
        self.writer = BagWriter(bag_out, storage)
        self.summary = LiveSummary()
        self.stamps: dict[int, set[str]] = {}
        self.recorders = [self.create_subscription(cls, f"{prefix}/{name}", self._recorder(f"{prefix}/{name}"), qos_out)
                          for name, cls in OUTPUT_TYPES.items()]
        # --clock, as `ros2 bag play --clock`: /clock carries the bag's time, for nodes with use_sim_time.
        self.clock = self.create_publisher(Clock, "/clock", 10) if clock else None
        self.executor_ = SingleThreadedExecutor(context=self.context)
        self.executor_.add_node(self)

    def _recorder(self, topic: str) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            stamp = conv.stamp_to_ns(msg.header.stamp)
            self.writer.write(topic, msg, stamp)
            self.summary.outputs[topic] = self.summary.outputs.get(topic, 0) + 1
            self.stamps.setdefault(stamp, set()).add(topic)
        return record

    def wait_connected(self, timeout: float) -> bool:
        """True once someone subscribes to every input and publishes every output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.publishers_by_topic.values()) and \
                    all(s.get_publisher_count() > 0 for s in self.recorders):
                return True
            self.executor_.spin_once(timeout_sec=0.05)
        return False

    def play(
        self, rate: float = 1.0, drain_s: float = 5.0, on_frame: Callable[[int], None] | None = None
    ) -> LiveSummary:
        """Publish the bag on its own clock scaled by ``rate``, then record for up to ``drain_s`` seconds
        more (less once the last frame played has all its outputs)."""
        start_wall, start_bag = 0.0, None
        played: set[int] = set()
        last: int | None = None   # stamp of the last image played
        for topic, bag_time, msg in read_messages(self.bag_in, self.inputs):
            if start_bag is None:
                start_wall, start_bag = time.monotonic(), bag_time
            due = start_wall + (bag_time - start_bag) / 1e9 / rate
            while (wait := due - time.monotonic()) > 0:
                self.executor_.spin_once(timeout_sec=min(wait, 0.01))
            self.summary.late_s = max(self.summary.late_s, time.monotonic() - due)
            if self.clock is not None:
                self.clock.publish(Clock(clock=conv.ns_to_stamp(bag_time)))
            self.publishers_by_topic[topic].publish(msg)
            if topic == self.topics.image:
                last = conv.stamp_to_ns(msg.header.stamp)
                played.add(last)
                self.summary.frames_played += 1
                if on_frame:
                    on_frame(self.summary.frames_played)
        # The node processes the newest frame always and never an older one after it, and each topic arrives in
        # order: once the last image played has every output, nothing else will come.
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and last is not None and len(self.stamps.get(last, ())) < len(self.recorders):
            self.executor_.spin_once(timeout_sec=0.05)
        self.summary.complete_frames = sum(len(self.stamps.get(s, ())) == len(self.recorders) for s in played)
        return self.summary

    def close(self) -> None:
        self.writer.close()
        self.executor_.remove_node(self)
        self.destroy_node()
