"""The node under camera streams (a real node process over real DDS): lazy processing while nobody listens,
use_sim_time with /clock, a camera_info latched once, and the pairing of late camera_infos."""
from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from conftest import ROOT, wait_for

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from test_stream_faults import check_content  # noqa: E402

from amodal_depth_ros.ros import CameraStreamClient, NodeProcess  # noqa: E402
from amodal_depth_ros.ros import conversions as conv  # noqa: E402
from amodal_depth_ros.ros.diagnostics import images_accounted, unaccounted_images  # noqa: E402
from amodal_depth_ros.ros.process import remap_args  # noqa: E402
from amodal_depth_ros.ros.spin_thread import SpinThread  # noqa: E402
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render  # noqa: E402

GEOMETRIC = ["-p", "segmentation.method:=geometric", "-p", "amodal_mask.method:=convex_hull",
             "-p", "amodal_depth.method:=plane_fit", "-p", "diagnostics.period:=0.2"]
STAMPS = itertools.count(3_000_000_000_000, 100_000_000)


class Driver(Node):
    """A camera driver (reliable, depth 10) and, separately, whatever the test subscribes to."""

    def __init__(self) -> None:
        super().__init__("test_driver")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {name: self.create_publisher(kind, f"/camera/{name}", qos)
                     for name, kind in (("image", Image), ("camera_info", CameraInfo), ("depth", Image))}
        self.lock = threading.Lock()
        self.diagnostics: dict[str, str] = {}
        self.received: list[Image] = []
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.spinner = SpinThread(self)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics = {kv.key: kv.value for kv in msg.status[0].values}

    def value(self, key: str) -> int:
        with self.lock:
            return int(self.diagnostics.get(key, "0"))

    def text(self, key: str) -> str:
        with self.lock:
            return self.diagnostics.get(key, "")

    def values(self) -> dict[str, str]:
        with self.lock:
            return dict(self.diagnostics)

    def received_any(self) -> bool:
        with self.lock:
            return bool(self.received)

    def received_stamp(self, stamp: int) -> bool:
        with self.lock:
            return any(conv.stamp_to_ns(m.header.stamp) == stamp for m in self.received)

    def publish(self, truth, stamp: int) -> None:
        header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="camera_optical")
        self.pubs["camera_info"].publish(conv.intrinsics_to_camera_info(truth.intrinsics, header))
        self.pubs["depth"].publish(conv.depth_to_image(truth.depth, header, "32FC1"))
        self.pubs["image"].publish(conv.rgb_to_image(truth.rgb, header))

    def listen(self, topic: str) -> None:
        def store(msg: Image) -> None:
            with self.lock:
                self.received.append(msg)
        self.create_subscription(Image, topic, store, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def close(self) -> None:
        self.spinner.stop()
        self.destroy_node()


def test_no_pipeline_work_without_subscribers_and_output_on_the_next_frame(rclpy_context, tmp_path):
    node = NodeProcess(["--params-file", str(ROOT / "config" / "amodal_depth.yaml"), *GEOMETRIC, *remap_args()],
                       tmp_path / "node.log")
    driver = Driver()
    truth = render(*box_in_front_of_wall(160, 120))
    try:
        assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in driver.pubs.values()), 60.0), node.log()
        # The inputs have adapted to the reliable driver and a first image came: every later one is counted.
        assert wait_for(lambda: all(driver.text(f"qos_{t}").startswith("reliable/") for t in driver.pubs), 60.0)
        driver.publish(truth, next(STAMPS))
        assert wait_for(lambda: driver.value("frames_in") >= 1 and unaccounted_images(driver.values()) == 0, 60.0)
        before = driver.values()
        rates = []
        for _ in range(20):                                    # 2 s at 10 Hz, nobody listening
            driver.publish(truth, next(STAMPS))
            time.sleep(0.1)
            rates.append(float(driver.text("rate_image_hz") or "0"))
        # Every image came (or was superseded in the queue, counted) and none was processed.
        assert wait_for(lambda: images_accounted(driver.values()) - images_accounted(before) == 20
                        and unaccounted_images(driver.values()) == 0, 60.0), (before, driver.values())
        assert driver.value("frames_out") == 0                # paired frames came, the pipeline never ran
        assert driver.value("skipped_no_subscriber") > int(before["skipped_no_subscriber"])
        assert max(rates) > 0                                 # input rates stay in the diagnostics meanwhile

        topic = "/amodal/amodal_depth/image"
        driver.listen(topic)
        assert wait_for(lambda: node_publisher_matched(driver, topic), 60.0)
        # Frames until the node's side of the match is there too (discovery is per participant), then the
        # next frame is processed: from then on no frame is skipped for want of a subscriber.
        sent = []
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not driver.received_any():
            sent.append(next(STAMPS))
            driver.publish(truth, sent[-1])
            time.sleep(0.1)
        with driver.lock:
            got = list(driver.received)
        assert got, node.log()
        assert conv.stamp_to_ns(got[0].header.stamp) in sent   # a frame published after we listened
        skipped = driver.value("skipped_no_subscriber")
        last = next(STAMPS)
        driver.publish(truth, last)
        assert wait_for(lambda: driver.received_stamp(last), 60.0)
        assert wait_for(lambda: unaccounted_images(driver.values()) == 0 and driver.value("frames_out") >= len(
            driver.received), 60.0)
        assert driver.value("skipped_no_subscriber") == skipped
        amodal = conv.image_to_depth(got[0])
        r, c = truth.depth.shape[0] // 2, truth.depth.shape[1] // 2
        assert amodal[r, c] > truth.depth[r, c] + 0.1            # the wall behind the box: a hidden surface
        assert np.allclose(amodal[0, 0], truth.depth[0, 0], atol=1e-4)   # plain wall: the visible depth
    finally:
        driver.close()
        node.stop()


def node_publisher_matched(driver: Driver, topic: str) -> bool:
    return any(info.node_name == "amodal_depth_node" for info in driver.get_publishers_info_by_topic(topic)) and \
        driver.count_publishers(topic) > 0


def _messages(stamp: int, width: int = 160, height: int = 120, fx: float = 100.0):
    from amodal_depth_ros.core import CameraIntrinsics
    header = Header(stamp=conv.ns_to_stamp(stamp))
    info = conv.intrinsics_to_camera_info(CameraIntrinsics(fx, fx, width / 2, height / 2, width, height), header)
    image = conv.rgb_to_image(np.zeros((height, width, 3), np.uint8), header)
    return image, info


def test_a_late_camera_info_does_not_hold_back_images_of_a_steady_camera():
    from amodal_depth_ros.ros.sync import StampSynchronizer

    sync = StampSynchronizer(0.01, 10, use_depth=False, camera_info_use_latest=False, steady_camera_info=True)
    for stamp in (1_000, 2_000):                              # two camera_infos alike: the calibration is steady
        image, info = _messages(stamp * 1_000_000)
        sync.add("camera_info", stamp * 1_000_000, info)
        assert sync.add("image", stamp * 1_000_000, image).camera_info is info
    image, _ = _messages(3_000_000_000)                       # its own camera_info is still on the way
    matched = sync.add("image", 3_000_000_000, image)
    assert matched is not None and matched.stamp_ns == 3_000_000_000 and matched.camera_info.k[0] == 100.0
    # Another calibration (zoom): not steady until it repeats, so the next image waits for its own.
    _, zoomed = _messages(4_000_000_000, fx=200.0)
    sync.add("camera_info", 4_000_000_000, zoomed)
    image, _ = _messages(5_000_000_000)
    assert sync.add("image", 5_000_000_000, image) is None
    _, own = _messages(5_000_000_000, fx=200.0)
    assert sync.add("camera_info", 5_000_000_000, own).camera_info.k[0] == 200.0
    # A steady camera_info of another size never serves an image.
    big, _ = _messages(6_000_000_000, 320, 240)
    assert sync.add("image", 6_000_000_000, big) is None
    strict = StampSynchronizer(0.01, 10, use_depth=False, camera_info_use_latest=False)   # offline replay
    image, info = _messages(1_000_000_000)
    strict.add("camera_info", 1_000_000_000, info)
    strict.add("camera_info", 1_000_000_000, info)
    assert strict.add("image", 2_000_000_000, _messages(2_000_000_000)[0]) is None


def start(tmp_path, *extra: str) -> NodeProcess:
    return NodeProcess(["--params-file", str(ROOT / "config" / "amodal_depth.yaml"), *GEOMETRIC, *extra,
                        *remap_args()], tmp_path / "node.log")


@pytest.fixture(scope="module")
def scenes():
    return {(160, 120): render(*box_in_front_of_wall(160, 120))}


def test_use_sim_time_with_a_clock_publisher(rclpy_context, tmp_path, scenes):
    from rosgraph_msgs.msg import Clock

    node = start(tmp_path, "-p", "use_sim_time:=true")
    client = CameraStreamClient()
    clock = client.create_publisher(Clock, "/clock", 10)
    try:
        assert client.wait_connected(60.0), node.log()
        # Diagnostics run on the steady clock: they come before any /clock message.
        assert wait_for(lambda: bool(client.latest_diagnostic_values()), 60.0), node.log()
        truth = scenes[(160, 120)]
        sim = itertools.count(50_000_000_000, 50_000_000)
        for _ in range(10):
            clock.publish(Clock(clock=conv.ns_to_stamp(next(sim))))
            time.sleep(0.02)
        stamp, out = client.publish_until_output(truth.rgb, truth.depth, truth.intrinsics, sim)
        check_content(out, truth)
        assert conv.stamp_to_ns(out.messages["amodal_depth"].header.stamp) == stamp
    finally:
        client.close()
        node.stop()


def test_camera_info_latched_once(rclpy_context, tmp_path, scenes):
    truth = scenes[(160, 120)]
    client = CameraStreamClient()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.destroy_publisher(client.pub_info)
    client.pub_info = client.create_publisher(CameraInfo, "/camera/camera_info", latched)
    client.pub_info.publish(conv.intrinsics_to_camera_info(truth.intrinsics, Header(stamp=conv.ns_to_stamp(1))))
    node = start(tmp_path)                                 # starts after the one and only camera_info
    try:
        assert client.wait_connected(60.0), node.log()
        assert wait_for(lambda: "transient_local" in client.latest_diagnostic_values().get("qos_camera_info", ""),
                        60.0), client.latest_diagnostic_values()
        stamps = itertools.count(7_000_000_000_000, 50_000_000)
        sent: list[int] = []

        def answered():
            return next((o for s in sent if (o := client.wait_outputs(s, 0.0)) is not None), None)
        for _ in range(10):                                # no camera_info with these: the latched one serves
            sent.append(next(stamps))
            header = Header(stamp=conv.ns_to_stamp(sent[-1]), frame_id="camera_optical")
            client.pub_depth.publish(conv.depth_to_image(truth.depth, header, "32FC1"))
            client.pub_image.publish(conv.rgb_to_image(truth.rgb, header))
            if wait_for(lambda: answered() is not None, 2.0):
                break
        assert wait_for(lambda: answered() is not None, 60.0), node.log_tail()
        out = answered()
        check_content(out, truth)
    finally:
        client.close()
        node.stop()
