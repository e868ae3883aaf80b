"""Input subscriptions whose QoS follows the publishers, as rosbag2's recorder does.

A best-effort subscription connects to every publisher, but a reliable publisher's large images then lose
whole messages when one fragment drops (27 % delivered at 30 Hz, 640x480, default middleware settings).
So each input subscribes reliable when every matched publisher is reliable, best-effort otherwise (and
while there is none), and transient-local when every publisher latches (drivers that publish camera_info
once). It re-adapts when publishers appear, vanish or change (``adapt``, polled by the node).

Users pin any policy with the standard QoS override parameters (rclpy ``QoSOverridingOptions``), e.g.
``-p qos_overrides./camera/color/image_raw.subscription.reliability:=reliable``: a pinned policy never adapts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import Subscription

# The policies users may override, inputs and outputs alike.
OVERRIDABLE = [QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY, QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH]


def overriding_options() -> QoSOverridingOptions:
    return QoSOverridingOptions(OVERRIDABLE)


@dataclass(frozen=True)
class Choice:
    reliability: ReliabilityPolicy
    durability: DurabilityPolicy
    publishers: int
    why: str

    def describe(self) -> str:
        return f"{self.reliability.name.lower()}/{self.durability.name.lower()}"


def choose(publisher_qos: list[QoSProfile]) -> Choice:
    """The subscription QoS that receives everything each of these publishers sends."""
    n = len(publisher_qos)
    if n == 0:
        return Choice(ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE, 0, "no publisher yet")
    reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in publisher_qos)
    latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in publisher_qos)
    return Choice(ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                  DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE, n,
                  f"{n} publisher(s), " + ("all reliable" if reliable else "some best-effort")
                  + (", all transient-local" if latched else ""))


class AdaptiveSubscription:
    """One input topic's subscription, recreated when the publishers' QoS calls for another profile."""

    # callback(msg, message_info): rclpy passes the info to callbacks taking two arguments (its stubs say one)
    def __init__(self, node: Node, msg_type: Any, topic: str, callback: Callable[..., None], depth: int) -> None:
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.resolved = node.resolve_topic_name(topic)
        self.depth = depth
        overrides = getattr(node, "_parameter_overrides", {})   # what --ros-args / params files set
        prefix = f"qos_overrides.{self.resolved}.subscription."
        self.pinned = {kind for kind in OVERRIDABLE if prefix + kind.name.lower() in overrides}
        # Created once with the overriding options: declares the parameters and applies what users pinned.
        self.choice = choose(self._publisher_qos())
        self.subscription: Subscription = node.create_subscription(
            msg_type, topic, callback, self._profile(self.choice), qos_overriding_options=overriding_options())
        self.qos: QoSProfile = self.subscription.qos_profile
        self._pinned_qos = QoSProfile(**{k: getattr(self.qos, k) for k in ("reliability", "durability", "history",
                                                                             "depth")})

    def _publisher_qos(self) -> list[QoSProfile]:
        return [info.qos_profile for info in self.node.get_publishers_info_by_topic(self.resolved)]

    def _profile(self, choice: Choice) -> QoSProfile:
        return QoSProfile(depth=self.depth, history=HistoryPolicy.KEEP_LAST, reliability=choice.reliability,
                          durability=choice.durability)

    def _with_pins(self, profile: QoSProfile) -> QoSProfile:
        if QoSPolicyKind.RELIABILITY in self.pinned:
            profile.reliability = self._pinned_qos.reliability
        if QoSPolicyKind.DURABILITY in self.pinned:
            profile.durability = self._pinned_qos.durability
        if QoSPolicyKind.HISTORY in self.pinned:
            profile.history = self._pinned_qos.history
        if QoSPolicyKind.DEPTH in self.pinned:
            profile.depth = self._pinned_qos.depth
        return profile

    def describe(self) -> str:
        """The QoS in use, with what chose it: for the log and the diagnostics."""
        pins = "" if not self.pinned else f" (pinned: {', '.join(sorted(k.name.lower() for k in self.pinned))})"
        return (f"{self.qos.reliability.name.lower()}/{self.qos.durability.name.lower()}"
                f" depth {self.qos.depth}{pins}; {self.choice.why}")

    def adapt(self) -> bool:
        """Recreate the subscription if the publishers now call for another profile; True when it did."""
        choice = choose(self._publisher_qos())
        profile = self._with_pins(self._profile(choice))
        self.choice = choice
        if (profile.reliability, profile.durability) == (self.qos.reliability, self.qos.durability):
            return False
        # The new one first: messages in flight meanwhile come twice at worst (the node drops repeated
        # stamps), never not at all.
        old, self.subscription = self.subscription, self.node.create_subscription(
            self.msg_type, self.topic, self.callback, profile)
        self.node.destroy_subscription(old)
        self.qos = self.subscription.qos_profile
        return True
