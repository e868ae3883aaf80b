"""End to end through the installed launch file: a synthetic RGB-D frame in, amodal depth out.

The scene is a box 1.5 m in front of a fronto-parallel wall 3.0 m away, so the wall behind the box
is a plane at 3.0 m and the amodal depth inside the box must be 3.0 m; everywhere else nothing is
hidden and the amodal depth equals the visible depth.

Needs launch_testing, launch_ros and amodal_depth_ros installed in a sourced ROS workspace
(`colcon build && colcon test`, or `launch_test test/test_launch.py`); skipped otherwise.
"""
from __future__ import annotations

import time
import unittest

import numpy as np
import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installed (source a ROS 2 installation)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (source a ROS 2 installation)")

import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from launch import LaunchDescription  # noqa: E402

try:
    PACKAGE_SHARE: str | None = get_package_share_directory("amodal_depth_ros")
    SKIP_REASON = ""
except (PackageNotFoundError, OSError) as error:  # OSError: AMENT_PREFIX_PATH is not set at all
    PACKAGE_SHARE = None
    SKIP_REASON = (f"amodal_depth_ros is not installed in a sourced ROS workspace ({type(error).__name__}: {error}); "
                   "build it with colcon and source install/setup.bash")

NAMESPACE = "amodal_launch_test"
CAMERA = "/amodal_launch_test_camera"
IMAGE_TOPIC = f"{CAMERA}/color/image_raw"
DEPTH_TOPIC = f"{CAMERA}/aligned_depth_to_color/image_raw"
INFO_TOPIC = f"{CAMERA}/color/camera_info"
FRAME_ID = "launch_test_camera_color_optical_frame"

WIDTH, HEIGHT, FOCAL = 160, 120, 200.0
WALL, BOX = 3.0, 1.5
BOX_ROWS, BOX_COLS = slice(40, 80), slice(50, 110)  # central rectangle of the 160x120 image
TIMEOUT_S = 60.0  # node start (Python, numpy, OpenCV imports) plus discovery, generously


def synthetic_frame() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:] = (90, 110, 140)
    rgb[BOX_ROWS, BOX_COLS] = (200, 60, 40)
    depth = np.full((HEIGHT, WIDTH), WALL, np.float32)
    depth[BOX_ROWS, BOX_COLS] = BOX
    return rgb, depth


def box_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[BOX_ROWS, BOX_COLS] = True
    return mask


def image_msg(pixels: np.ndarray, encoding: str) -> Image:
    pixels = np.ascontiguousarray(pixels)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=0,
                step=pixels.shape[1] * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1))
    msg.data = pixels.tobytes()
    return msg


def camera_info_msg() -> CameraInfo:
    cx, cy = (WIDTH - 1) / 2.0, (HEIGHT - 1) / 2.0
    msg = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = [FOCAL, 0.0, cx, 0.0, FOCAL, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [FOCAL, 0.0, cx, 0.0, 0.0, FOCAL, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def decode_32fc1(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1", msg.encoding
    assert (msg.width, msg.height) == (WIDTH, HEIGHT), (msg.width, msg.height)
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 4]
    return rows.copy().view(">f4" if msg.is_bigendian else "<f4").reshape(msg.height, msg.width).astype(np.float32)


def launch_description() -> LaunchDescription:
    launch_file = f"{PACKAGE_SHARE}/launch/amodal_depth.launch.py"
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={
            "namespace": NAMESPACE,
            "camera_namespace": CAMERA,  # the three topic arguments keep their defaults built from it
            "use_depth": "true",
            "cloud_stride": "2",
            "rviz": "false",
        }.items(),
    )
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


if PACKAGE_SHARE is None:
    # No generate_test_description here: the module is then an ordinary pytest module (a launch test
    # module that skips while being collected would make pytest skip the whole test directory).
    def test_launch_file_end_to_end() -> None:
        pytest.skip(SKIP_REASON)
else:
    @pytest.mark.launch_test
    def generate_test_description() -> LaunchDescription:
        return launch_description()


class TestAmodalDepthThroughLaunch(unittest.TestCase):
    __test__ = PACKAGE_SHARE is not None  # run by launch_testing, never as a plain unittest

    @classmethod
    def setUpClass(cls) -> None:
        cls.context = rclpy.Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node("amodal_depth_launch_test", context=cls.context)
        cls.executor = SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.try_shutdown(context=cls.context)

    def test_amodal_depth_behind_the_box_is_the_wall(self) -> None:
        reliable = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        pub_image = self.node.create_publisher(Image, IMAGE_TOPIC, reliable)
        pub_depth = self.node.create_publisher(Image, DEPTH_TOPIC, reliable)
        pub_info = self.node.create_publisher(CameraInfo, INFO_TOPIC, reliable)
        received: dict[str, dict[tuple[int, int], Image]] = {"visible": {}, "amodal": {}}

        def keep(kind: str):
            return lambda msg: received[kind].__setitem__((msg.header.stamp.sec, msg.header.stamp.nanosec), msg)

        self.node.create_subscription(Image, f"/{NAMESPACE}/visible_depth/image", keep("visible"), reliable)
        self.node.create_subscription(Image, f"/{NAMESPACE}/amodal_depth/image", keep("amodal"), reliable)

        rgb, depth = synthetic_frame()
        image, depth_image, info = image_msg(rgb, "rgb8"), image_msg(depth, "32FC1"), camera_info_msg()
        sent: set[tuple[int, int]] = set()
        deadline = time.monotonic() + TIMEOUT_S
        next_publish = 0.0
        stamp = None
        while time.monotonic() < deadline:
            both = sent & received["visible"].keys() & received["amodal"].keys()
            if both:
                stamp = max(both)
                break
            if time.monotonic() >= next_publish:
                # A fresh stamp for each frame; all three messages of a frame share it.
                now = self.node.get_clock().now().to_msg()
                for msg in (info, depth_image, image):
                    msg.header.stamp = now
                    msg.header.frame_id = FRAME_ID
                pub_info.publish(info)
                pub_depth.publish(depth_image)
                pub_image.publish(image)
                sent.add((now.sec, now.nanosec))
                next_publish = time.monotonic() + 0.25
            self.executor.spin_once(timeout_sec=0.05)
        self.assertIsNotNone(stamp, f"no visible/amodal depth pair on /{NAMESPACE} within {TIMEOUT_S} s "
                                    f"after publishing {len(sent)} frames on {CAMERA}")

        amodal_msg, visible_msg = received["amodal"][stamp], received["visible"][stamp]
        self.assertEqual(amodal_msg.header.frame_id, FRAME_ID)
        amodal, visible = decode_32fc1(amodal_msg), decode_32fc1(visible_msg)
        inside = box_mask()
        # Inside the box: the hidden wall, not the box front.
        self.assertFalse(np.isnan(amodal[inside]).any(), "amodal depth has holes inside the box")
        np.testing.assert_allclose(amodal[inside], WALL, atol=0.05)
        # Outside: nothing is hidden, the amodal depth is the visible depth (which is the input wall).
        np.testing.assert_array_equal(amodal[~inside], visible[~inside])
        np.testing.assert_allclose(visible[~inside], WALL, atol=1e-6)
        np.testing.assert_allclose(visible[inside], BOX, atol=1e-6)


@launch_testing.post_shutdown_test()
class TestNodeExit(unittest.TestCase):
    __test__ = PACKAGE_SHARE is not None

    def test_exit_codes(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
