"""The node's inputs follow their publishers' QoS (a real node process over real DDS): a reliable 30 Hz
640x480 driver delivers every image, a best-effort one still connects, users can pin a policy with the QoS
override parameters, and the diagnostics report the QoS, per-input rates, the camera frame and stale inputs."""
from __future__ import annotations

import itertools
import time

import pytest
from conftest import ROOT, wait_for

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402

from amodal_depth_ros.ros import CameraStreamClient, NodeProcess  # noqa: E402
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


def test_a_reliable_30hz_driver_delivers_every_image(rclpy_context, tmp_path):
    node = start(tmp_path)
    client = CameraStreamClient(reliability=ReliabilityPolicy.RELIABLE)
    try:
        assert client.wait_connected(30.0), node.log()
        qos = diagnostics(client, "qos_image", lambda v: v.startswith("reliable/"))
        assert "all reliable" in qos
        truth = render(*box_in_front_of_wall(640, 480))
        start_in = int(client.latest_diagnostic_values()["frames_in"])
        count, period = 300, 1.0 / 30.0
        t0 = time.monotonic()
        for i in range(count):
            client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, next(STAMPS), frame_id="rs_color_optical")
            time.sleep(max(0.0, t0 + (i + 1) * period - time.monotonic()))
        # Every image arrives (counted on arrival, whatever the worker then keeps).
        delivered = diagnostics(client, "frames_in", lambda v: v and int(v) - start_in >= count, timeout=20.0)
        assert int(delivered) - start_in >= 0.99 * count
        values = client.latest_diagnostic_values()
        assert int(values["frames_out"]) > 0 and values["qos_depth"].startswith("reliable/")
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
        assert client.wait_connected(30.0), node.log()
        diagnostics(client, "qos_image", lambda v: v.startswith("reliable/"))
        truth = render(*box_in_front_of_wall(160, 120))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, next(STAMPS), frame_id="cam_42_optical")
            time.sleep(0.05)
        with client._lock:
            statuses = [array.status[0] for array in client.diagnostics[-5:]]
        assert {s.hardware_id for s in statuses} == {"cam_42_optical"}
        rates = client.latest_diagnostic_values()
        assert 5.0 < float(rates["rate_image_hz"]) < 40.0 and float(rates["rate_depth_hz"]) > 5.0
        # The driver stops: after stale_after the status turns WARN and names the silent inputs.
        stale = diagnostics(client, "stale_inputs", lambda v: v == "camera_info, depth, image", timeout=5.0)
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
            assert wait_for(lambda o=other: bool(client.get_publishers_info_by_topic(o)), 10.0), other
            infos = client.get_publishers_info_by_topic(other)
            assert [i.qos_profile.reliability for i in infos] == [ReliabilityPolicy.RELIABLE], other
    finally:
        client.close()
        node.stop()
