"""Stream faults against a real node process, each followed by correct output (content checked): bursts,
stamps jumping back, encodings switching, the driver's publishers recreated, the resolution changing,
parameter changes under load, use_sim_time with /clock, and a camera_info latched once. No frame is
processed twice and outputs stay in stamp order except across a detected time jump."""
from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from conftest import ROOT, set_parameters, settled_diagnostics, wait_for

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from amodal_depth_ros.ros import CameraStreamClient, NodeProcess  # noqa: E402
from amodal_depth_ros.ros import conversions as conv  # noqa: E402
from amodal_depth_ros.ros.process import remap_args  # noqa: E402
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render  # noqa: E402

GEOMETRIC = ["-p", "segmentation.method:=geometric", "-p", "amodal_mask.method:=convex_hull",
             "-p", "amodal_depth.method:=plane_fit", "-p", "diagnostics.period:=0.2"]
NODE = "/amodal/amodal_depth_node"
STAMPS = itertools.count(1_000_000_000_000, 50_000_000)


def start(tmp_path, *extra: str) -> NodeProcess:
    return NodeProcess(["--params-file", str(ROOT / "config" / "amodal_depth.yaml"), *GEOMETRIC, *extra,
                        *remap_args()], tmp_path / "node.log")


@pytest.fixture(scope="module")
def scenes():
    return {size: render(*box_in_front_of_wall(*size)) for size in ((160, 120), (320, 240))}


@pytest.fixture(scope="module")
def running(rclpy_context, tmp_path_factory):
    node = start(tmp_path_factory.mktemp("faults"))
    client = CameraStreamClient()
    assert client.wait_connected(60.0), node.log()
    # The inputs have adapted to the (reliable) driver: no subscription is swapped during the tests.
    assert wait_for(lambda: all(client.latest_diagnostic_values().get(f"qos_{name}", "").startswith("reliable/")
                                for name in ("image", "camera_info", "depth")), 20.0), node.log()
    yield node, client
    client.close()
    node.stop()


def check_content(outputs, truth) -> None:
    """The output of ``truth`` (box in front of a wall): visible depth as sent, the wall behind the box."""
    visible = conv.image_to_depth(outputs.messages["visible_depth"])
    amodal = conv.image_to_depth(outputs.messages["amodal_depth"])
    assert visible.shape == truth.depth.shape
    np.testing.assert_allclose(visible, truth.depth, atol=1e-3, equal_nan=True)
    r, c = truth.depth.shape[0] // 2, truth.depth.shape[1] // 2
    assert amodal[r, c] > truth.depth[r, c] + 0.1
    assert abs(amodal[0, 0] - truth.depth[0, 0]) < 1e-3


def output_order(client: CameraStreamClient, stamps: list[int]) -> list[int]:
    """The given stamps the node answered, in the order their outputs arrived."""
    with client._lock:
        done = [(client.outputs[s].received_at, s) for s in stamps if s in client.outputs]
    return [s for _, s in sorted(done)]


def test_bursts_are_answered_in_order_and_never_twice(running, scenes):
    node, client = running
    truth = scenes[(160, 120)]
    before = int(settled_diagnostics(client)["frames_out"])
    stamps = [next(STAMPS) for _ in range(20)]
    for stamp in stamps:                                   # back to back, no pause
        client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, stamp)
    assert client.wait_outputs(stamps[-1], 60.0) is not None, node.log_tail()
    answered = output_order(client, stamps)
    assert answered == sorted(answered) and len(answered) >= 1
    after = int(settled_diagnostics(client)["frames_out"])
    assert after - before == len(answered)                 # one output per processed frame: none twice
    check_content(client.outputs[stamps[-1]], truth)


def test_stamps_jumping_back_start_a_new_timeline(running, scenes):
    node, client = running
    truth = scenes[(160, 120)]
    last, _ = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, STAMPS)
    # A frame 25 ms older than one already answered: out of order, dropped. (Between two STAMPS: a stamp of
    # publish_until_output's earlier tries may still be answered by a node slow on its first frame.)
    client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, last - 25_000_000)
    assert client.wait_outputs(last - 25_000_000, 1.5) is None
    # The bag loops: stamps start again 1000 s earlier, and the node follows them.
    looped = itertools.count(last - 1000 * 1_000_000_000, 50_000_000)
    _, out = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, looped)
    check_content(out, truth)
    values = client.latest_diagnostic_values()
    assert wait_for(lambda: int(client.latest_diagnostic_values()["time_jumps"]) >= 1, 60.0), values
    assert int(client.latest_diagnostic_values()["dropped_out_of_order"]) >= 1
    assert "jumped back" in node.log()


def test_encodings_switching_mid_stream(running, scenes):
    node, client = running
    truth = scenes[(160, 120)]
    for image_encoding, depth_encoding in (("bgr8", "16UC1"), ("rgb8", "32FC1"), ("bgr8", "32FC1"),
                                           ("rgb8", "16UC1")):
        _, out = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, STAMPS,
                                             image_encoding=image_encoding, depth_encoding=depth_encoding)
        check_content(out, truth)                          # 16UC1 is in millimetres: within 1 mm
    assert int(client.latest_diagnostic_values().get("rejected_total", "0")) == 0


def test_the_driver_restarting_its_publishers(running, scenes):
    node, client = running
    truth = scenes[(160, 120)]
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for publisher in (client.pub_image, client.pub_info, client.pub_depth):
        client.destroy_publisher(publisher)
    time.sleep(1.0)                                        # the node sees no publisher for a while
    client.pub_image = client.create_publisher(Image, "/camera/image", qos)
    client.pub_info = client.create_publisher(CameraInfo, "/camera/camera_info", qos)
    client.pub_depth = client.create_publisher(Image, "/camera/depth", qos)
    assert client.wait_connected(60.0), node.log_tail()
    _, out = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, STAMPS)
    check_content(out, truth)


def test_resolution_changing_mid_stream(running, scenes):
    node, client = running
    for size in ((320, 240), (160, 120), (320, 240)):
        truth = scenes[size]
        _, out = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, STAMPS)
        check_content(out, truth)
        assert out.messages["visible_info"].width == size[0]


def test_parameter_changes_under_load(running, scenes):
    node, client = running
    truth = scenes[(160, 120)]
    streaming, sent = True, []

    def stream() -> None:
        while streaming:
            stamp = next(STAMPS)
            sent.append(stamp)
            client.publish_frame(truth.rgb, truth.depth, truth.intrinsics, stamp)
            time.sleep(0.05)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        assert wait_for(lambda: bool(output_order(client, sent)), 60.0), node.log_tail()   # frames answered
        # Live (the stages take it) and rebuild (a new pipeline is prepared, then swapped in), under load.
        assert set_parameters(client, NODE, {"visible_depth.max_depth": 1.0}) == [(True, "")]
        assert set_parameters(client, NODE, {"amodal_depth.method": "nearest"}) == [(True, "")]
        changed = len(sent)   # frames from here on are published after both changes were accepted
        assert wait_for(lambda: any(s in sent[changed:] for s in output_order(client, sent)), 60.0), node.log_tail()
    finally:
        streaming = False
        thread.join()
    # The newest frame is always processed: it shows both changes.
    out = client.wait_outputs(sent[-1], 60.0)
    assert out is not None, node.log_tail()
    visible = conv.image_to_depth(out.messages["visible_depth"])
    assert np.isnan(visible[truth.depth > 1.0]).all() and np.isfinite(visible[truth.depth <= 1.0]).all()
    answered = output_order(client, sent)
    assert answered == sorted(answered) and len(set(answered)) == len(answered)
    assert set_parameters(client, NODE, {"visible_depth.max_depth": 10.0, "amodal_depth.method": "plane_fit"}) == \
        [(True, ""), (True, "")]
    _, out = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, STAMPS)
    check_content(out, truth)
