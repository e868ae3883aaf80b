"""The node's inputs follow their publishers' QoS (a real node process over real DDS): a reliable 30 Hz
640x480 driver delivers every image, a best-effort one still connects, users can pin a policy with the QoS
override parameters, and the diagnostics report the QoS, per-input rates, the camera frame and stale inputs."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from conftest import ROOT, settled_diagnostics, wait_for

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402

from amodal_depth_ros.ros import CameraStreamClient, NodeProcess  # noqa: E402
from amodal_depth_ros.ros import conversions as conv  # noqa: E402
from amodal_depth_ros.ros.diagnostics import images_accounted, unaccounted_images  # noqa: E402
from amodal_depth_ros.ros.input_qos import choose  # noqa: E402
from amodal_depth_ros.ros.process import remap_args  # noqa: E402
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render  # noqa: E402

GEOMETRIC = ["-p", "segmentation.method:=geometric", "-p", "amodal_mask.method:=convex_hull",
             "-p", "amodal_depth.method:=plane_fit", "-p", "diagnostics.period:=0.2"]
STAMPS = itertools.count(2_000_000_000_000, 33_333_333)


def start(tmp_path, *extra: str) -> NodeProcess:
    return NodeProcess(["--params-file", str(ROOT / "config" / "amodal_depth.yaml"), *GEOMETRIC, *extra,
                        *remap_args()], tmp_path / "node.log")


def diagnostics(client: CameraStreamClient, key: str, predicate, timeout: float = 15.0) -> str:
    found = wait_for(lambda: predicate(client.latest_diagnostic_values().get(key, "")), timeout)
    value = client.latest_diagnostic_values().get(key, "")
    assert found, f"diagnostics {key} = {value!r}"
    return value


def test_choice_follows_the_publishers():
    from rclpy.qos import DurabilityPolicy, QoSProfile

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    assert choose([]).describe() == "best_effort/volatile"
    assert choose([reliable, reliable]).describe() == "reliable/volatile"
    assert choose([reliable, best_effort]).describe() == "best_effort/volatile"
    assert choose([latched]).describe() == "reliable/transient_local"
    assert choose([latched, reliable]).describe() == "reliable/volatile"


def test_a_reliable_30hz_driver_loses_no_image_without_saying_so(rclpy_context, tmp_path):
    """The promise to a reliable driver: every image it publishes is received (frames_in) or, while the node is
    busy, superseded by a newer one in the subscription's queue (superseded_in_queue_image); none is lost
    unsaid. Every image received is processed or dropped for a counted reason, and the newest is processed.
    How many are superseded depends on the machine's load: the count is checked, not a share."""
    node = start(tmp_path)
    client = CameraStreamClient(reliability=ReliabilityPolicy.RELIABLE)
    try:
        assert client.wait_connected(60.0), node.log()
        for topic in ("image", "depth", "camera_info"):
            qos = diagnostics(client, f"qos_{topic}", lambda v: v.startswith("reliable/") and "1 publisher" in v, 30.0)
            assert "all reliable" in qos
        truth = render(*box_in_front_of_wall(640, 480))
        # A first frame through the whole pipeline: the sequence numbers' baseline is set, the stages are warm.
        warm = next(STAMPS)
        client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, warm, frame_id="rs_color_optical")
        assert client.wait_outputs(warm, 60.0) is not None, node.log()
        # The diagnostics come every 0.2 s: the baseline is one that counts the first frame as done.
        before = settled_diagnostics(client)
        count, period = 300, 1.0 / 30.0
        stamps = [next(STAMPS) for _ in range(count)]
        t0 = time.monotonic()
        for i, stamp in enumerate(stamps):
            client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, stamp, frame_id="rs_color_optical")
            time.sleep(max(0.0, t0 + (i + 1) * period - time.monotonic()))
        newest = client.wait_outputs(stamps[-1], 60.0)
        assert newest is not None, "the newest image must be processed"
        # Every image published is accounted for, exactly: a lost image would leave the sum short, one counted
        # twice would overshoot it.
        assert wait_for(lambda: images_accounted(client.latest_diagnostic_values()) - images_accounted(before)
                        >= count, 60.0), (before, client.latest_diagnostic_values())
        after = settled_diagnostics(client)
        assert images_accounted(after) - images_accounted(before) == count, (before, after)
        assert int(after["lost_image"]) == 0 and unaccounted_images(after) == 0, after
        assert int(after["frames_out"]) > int(before["frames_out"])
        # What was processed is this frame's content, under its own stamp.
        depth = conv.image_to_depth(newest.messages["visible_depth"])
        valid = np.isfinite(truth.depth)
        assert np.allclose(depth[valid], truth.depth[valid], atol=1e-3)
        assert newest.messages["visible_depth"].header.frame_id == "rs_color_optical"
    finally:
        client.close()
        node.stop()


def test_best_effort_driver_connects_and_pins_are_kept(rclpy_context, tmp_path):
    # image pinned to reliable by the standard override parameter: a best-effort driver then cannot connect
    # on it (DDS refuses the pair), which is what the user asked for; depth adapts to best-effort.
    node = start(tmp_path, "-p", "qos_overrides./camera/camera_info.subscription.reliability:=reliable")
    client = CameraStreamClient(reliability=ReliabilityPolicy.BEST_EFFORT)
    try:
        # (no wait_connected: the pinned camera_info never matches the best-effort driver, by request)
        diagnostics(client, "qos_image", lambda v: v.startswith("best_effort/") and "some best-effort" in v, 30.0)
        info = diagnostics(client, "qos_camera_info", lambda v: "pinned: reliability" in v)
        assert info.startswith("reliable/")
        assert "camera_info" in node.log() and "subscribing" in node.log()
    finally:
        client.close()
        node.stop()


def test_diagnostics_name_the_camera_rates_and_a_stale_input(rclpy_context, tmp_path):
    node = start(tmp_path, "-p", "diagnostics.stale_after:=0.5")
    client = CameraStreamClient(reliability=ReliabilityPolicy.RELIABLE)
    try:
        assert client.wait_connected(60.0), node.log()
        diagnostics(client, "qos_image", lambda v: v.startswith("reliable/"))
        truth = render(*box_in_front_of_wall(160, 120))
        # Each input's rate is reported (its value over a 0.2 s window depends on the machine's load) and the
        # camera's frame names the hardware.
        rates = {key: 0.0 for key in ("rate_image_hz", "rate_depth_hz", "rate_camera_info_hz")}
        named = False
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not (named and min(rates.values()) > 0):
            client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, next(STAMPS), frame_id="cam_42_optical")
            time.sleep(0.05)
            values = client.latest_diagnostic_values()
            for key in rates:
                rates[key] = max(rates[key], float(values.get(key, "0")))
            with client._lock:
                named = bool(client.diagnostics) and client.diagnostics[-1].status[0].hardware_id == "cam_42_optical"
        assert named and min(rates.values()) > 0, rates
        # The driver stops: after stale_after the status turns WARN and names the silent inputs.
        stale = diagnostics(client, "stale_inputs", lambda v: v == "camera_info, depth, image", timeout=30.0)
        assert stale
        with client._lock:
            last = client.diagnostics[-1].status[0]
        assert last.level == DiagnosticStatus.WARN and "stale input" in last.message
    finally:
        client.close()
        node.stop()


def test_output_qos_can_be_overridden(rclpy_context, tmp_path):
    node = start(tmp_path, "-p", "qos_overrides./amodal/amodal_points.publisher.reliability:=best_effort")
    client = CameraStreamClient(reliability=ReliabilityPolicy.RELIABLE)
    try:
        assert wait_for(lambda: bool(client.get_publishers_info_by_topic("/amodal/amodal_points")), 30.0), node.log()
        infos = client.get_publishers_info_by_topic("/amodal/amodal_points")
        assert [i.qos_profile.reliability for i in infos] == [ReliabilityPolicy.BEST_EFFORT]
        for other in ("/amodal/amodal_depth/image", "/amodal/amodal_instances", "/amodal/visible_depth/image"):
            assert wait_for(lambda o=other: bool(client.get_publishers_info_by_topic(o)), 60.0), other
            infos = client.get_publishers_info_by_topic(other)
            assert [i.qos_profile.reliability for i in infos] == [ReliabilityPolicy.RELIABLE], other
    finally:
        client.close()
        node.stop()
