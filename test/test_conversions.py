"""Tests for amodal_depth_ros.ros.conversions (sensor_msgs <-> numpy)."""
from __future__ import annotations

import array
import sys
import time

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import Header

from amodal_depth_ros.core import AmodalInstance, CameraIntrinsics, LayeredCloud
from amodal_depth_ros.errors import InputError
from amodal_depth_ros.ros import conversions as conv

RNG = np.random.default_rng(1234)
H, W = 7, 11  # odd sizes catch row/column mix-ups


def random_rgb(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def header(frame: str = "cam") -> Header:
    return Header(stamp=conv.ns_to_stamp(1_700_000_000_123_456_789), frame_id=frame)


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False, fill: int = 0xAB) -> Image:
    """Hand-built Image (independent of the module's encoders) with ``pad`` garbage bytes per row."""
    h, w = pixels.shape[:2]
    dt = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels.astype(dt)).reshape(h, -1).view(np.uint8)
    padded = np.full((h, rows.shape[1] + pad), fill, np.uint8)
    padded[:, : rows.shape[1]] = rows
    return Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=padded.shape[1],
                 data=padded.tobytes())


def reason(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.reason


# ---------------------------------------------------------------- colour images

EXPECTED_PIXEL = {"rgb8": [10, 20, 30], "bgr8": [30, 20, 10], "rgba8": [10, 20, 30, 255], "bgra8": [30, 20, 10, 255]}


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_rgb_round_trip(encoding: str) -> None:
    rgb = random_rgb()
    msg = conv.rgb_to_image(rgb, header(), encoding)
    assert (msg.height, msg.width, msg.encoding) == (H, W, encoding)
    assert msg.step == W * len(EXPECTED_PIXEL[encoding])
    assert msg.header.frame_id == "cam"
    out = conv.image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_channel_order_on_the_wire(encoding: str) -> None:
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    msg = conv.rgb_to_image(rgb, None, encoding)
    n = len(EXPECTED_PIXEL[encoding])
    assert list(bytes(msg.data)[:n]) == EXPECTED_PIXEL[encoding]


def test_mono8_round_trip_and_replication() -> None:
    grey = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    out = conv.image_to_rgb(conv.rgb_to_image(grey, None, "mono8"))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    # RGB input is reduced to luma; a grey RGB image survives exactly.
    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_array_equal(conv.image_to_rgb(conv.rgb_to_image(grey_rgb, None, "mono8")), grey_rgb)
    pure_red = conv.rgb_to_image(np.array([[[255, 0, 0]]], np.uint8), None, "mono8")
    assert bytes(pure_red.data) == bytes([76])  # round(0.299 * 255)


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1)])
def test_rgb_row_padding_is_ignored(encoding: str, channels: int) -> None:
    pixels = RNG.integers(0, 256, (H, W, channels), dtype=np.uint8)
    for fill in (0x00, 0xFF):
        msg = raw_image(pixels, encoding, pad=5, fill=fill)
        assert msg.step == W * channels + 5
        out = conv.image_to_rgb(msg)
        if encoding == "mono8":
            expected = np.repeat(pixels, 3, axis=2)
        else:
            expected = pixels[..., :3] if encoding.startswith("rgb") else pixels[..., 2::-1]
        np.testing.assert_array_equal(out, expected)


def test_rgb_from_array_data_and_extra_trailing_bytes() -> None:
    rgb = random_rgb()
    msg = raw_image(rgb, "rgb8")
    msg.data = array.array("B", bytes(msg.data) + b"\x01\x02")  # longer than step*height is fine
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


@pytest.mark.parametrize("decoder,encoding", [(conv.image_to_rgb, "rgb8"), (conv.image_to_depth, "32FC1"),
                                              (conv.image_to_depth, "16UC1"), (conv.image_to_mask, "mono8")])
def test_malformed_images_raise(decoder, encoding: str) -> None:
    bpp = {"rgb8": 3, "32FC1": 4, "16UC1": 2, "mono8": 1}[encoding]
    good = dict(height=4, width=5, encoding=encoding, step=5 * bpp, data=bytes(4 * 5 * bpp))
    decoder(Image(**good))  # sanity: the good one decodes
    with pytest.raises(InputError) as e:
        decoder(Image(**{**good, "data": bytes(4 * 5 * bpp - 1)}))
    assert reason(e) == "truncated_data"
    with pytest.raises(InputError) as e:
        decoder(Image(**{**good, "step": 5 * bpp - 1}))
    assert reason(e) == "bad_step"
    with pytest.raises(InputError) as e:
        decoder(Image(**{**good, "step": 0}))
    assert reason(e) == "bad_step"
    for h, w in ((0, 5), (4, 0)):
        with pytest.raises(InputError) as e:
            decoder(Image(**{**good, "height": h, "width": w}))
        assert reason(e) == "empty_image"
    with pytest.raises(InputError) as e:
        decoder(Image(**{**good, "encoding": "yuv422"}))
    assert reason(e) == "unsupported_encoding"
    assert "yuv422" in str(e.value)


def test_unsupported_encoding_lists_supported() -> None:
    with pytest.raises(InputError) as e:
        conv.image_to_rgb(Image(height=1, width=1, encoding="bayer_rggb8", step=1, data=b"\0"))
    assert reason(e) == "unsupported_encoding"
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8"):
        assert enc in str(e.value)
    with pytest.raises(InputError) as e:
        conv.image_to_depth(Image(height=1, width=1, encoding="8UC1", step=1, data=b"\0"))
    assert reason(e) == "unsupported_encoding" and "16UC1" in str(e.value) and "32FC1" in str(e.value)
    with pytest.raises(InputError) as e:
        conv.rgb_to_image(random_rgb(), None, "yuv422")
    assert reason(e) == "unsupported_encoding"
    with pytest.raises(InputError) as e:
        conv.depth_to_image(np.ones((2, 2), np.float32), None, "8UC1")
    assert reason(e) == "unsupported_encoding"


# ---------------------------------------------------------------- depth images

def test_16uc1_millimetres_to_metres() -> None:
    mm = np.array([[0, 1, 1234], [65535, 500, 0]], np.uint16)
    for enc in ("16UC1", "mono16"):
        depth = conv.image_to_depth(raw_image(mm, enc))
        assert depth.dtype == np.float32 and depth.shape == (2, 3)
        np.testing.assert_array_equal(np.isnan(depth), mm == 0)
        np.testing.assert_array_equal(depth[mm != 0], np.array([0.001, 1.234, 65.535, 0.5], np.float32))


@pytest.mark.parametrize("bigendian", [False, True])
def test_16uc1_endianness_and_padding(bigendian: bool) -> None:
    mm = RNG.integers(1, 65536, (H, W)).astype(np.uint16)
    mm[0, 0] = 0
    mm[1, 2] = 0x0102  # byte-swapped would be 0x0201: a distinct value
    msg = raw_image(mm, "16UC1", pad=3, bigendian=bigendian)  # odd padding: unaligned rows
    depth = conv.image_to_depth(msg)
    expected = mm.astype(np.float32) / 1000
    expected[mm == 0] = np.nan
    np.testing.assert_array_equal(depth, expected)
    assert depth[1, 2] == np.float32(0.258)


@pytest.mark.parametrize("bigendian", [False, True])
def test_32fc1_endianness_padding_and_invalid(bigendian: bool) -> None:
    metres = RNG.uniform(0.1, 10.0, (H, W)).astype(np.float32)
    bad = {(0, 0): np.nan, (0, 1): 0.0, (2, 3): -1.5, (3, 3): np.inf, (4, 4): -np.inf}
    for (r, c), v in bad.items():
        metres[r, c] = v
    depth = conv.image_to_depth(raw_image(metres, "32FC1", pad=4, bigendian=bigendian))
    expected = metres.copy()
    for r, c in bad:
        expected[r, c] = np.nan
    np.testing.assert_array_equal(depth, expected)
    assert np.isnan(depth).sum() == len(bad)


def test_big_endian_flag_matters() -> None:
    mm = np.array([[0x0102]], np.uint16)
    msg = raw_image(mm, "16UC1", bigendian=True)
    msg.is_bigendian = 0  # lie: the bytes are then read the other way round
    assert conv.image_to_depth(msg)[0, 0] == np.float32(0x0201 / 1000)


def test_decoding_does_not_modify_message() -> None:
    metres = np.array([[1.0, -2.0, np.inf]], np.float32)
    msg = raw_image(metres, "32FC1")
    msg.data = array.array("B", bytes(msg.data))
    before = bytes(msg.data)
    conv.image_to_depth(msg)
    assert bytes(msg.data) == before


def test_depth_32fc1_round_trip() -> None:
    depth = RNG.uniform(0.2, 8.0, (H, W)).astype(np.float32)
    depth[2, 5] = np.nan
    msg = conv.depth_to_image(depth, header())
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("32FC1", W * 4, 0)
    np.testing.assert_array_equal(conv.image_to_depth(msg), depth)


def test_depth_16uc1_round_trip_rounding_and_clipping() -> None:
    depth = np.array([[1.2344, 1.2346, np.nan, 70.0], [0.0, -1.0, np.inf, 0.0002]], np.float32)
    msg = conv.depth_to_image(depth, None, "16UC1")
    assert (msg.encoding, msg.step) == ("16UC1", 8)
    mm = np.frombuffer(bytes(msg.data), "<u2").reshape(2, 4)
    np.testing.assert_array_equal(mm, [[1234, 1235, 0, 65535], [0, 0, 0, 1]])
    back = conv.image_to_depth(msg)
    np.testing.assert_array_equal(np.isnan(back), mm == 0)
    depth = RNG.uniform(0.2, 8.0, (H, W)).astype(np.float32)
    back = conv.image_to_depth(conv.depth_to_image(depth, None, "16UC1"))
    assert np.abs(back - depth).max() <= 0.0005 + 1e-6


# ---------------------------------------------------------------- masks

def test_mask_round_trip_and_padding() -> None:
    mask = RNG.random((H, W)) > 0.5
    msg = conv.mask_to_image(mask, header())
    assert msg.encoding == "mono8" and set(bytes(msg.data)) == {0, 255}
    np.testing.assert_array_equal(conv.image_to_mask(msg), mask)
    padded = raw_image(mask.astype(np.uint8) * 255, "mono8", pad=3, fill=0xFF)
    np.testing.assert_array_equal(conv.image_to_mask(padded), mask)


# ---------------------------------------------------------------- camera info

def camera_info(fx=500.0, fy=510.0, cx=319.5, cy=239.5, w=640, h=480) -> CameraInfo:
    msg = CameraInfo(width=w, height=h)
    msg.k = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], np.float64)
    return msg


def test_camera_info_to_intrinsics() -> None:
    msg = camera_info()
    msg.d = [0.1, -0.2, 0.0, 0.0, 0.01]  # non-zero distortion is accepted (image assumed rectified)
    intr = conv.camera_info_to_intrinsics(msg)
    assert intr == CameraIntrinsics(500.0, 510.0, 319.5, 239.5, 640, 480)


@pytest.mark.parametrize("kwargs", [dict(fx=float("nan")), dict(fx=0.0), dict(fy=-510.0), dict(cx=float("inf")),
                                    dict(w=0), dict(h=0), dict(fx=0.0, fy=0.0, cx=0.0, cy=0.0)])
def test_camera_info_invalid(kwargs) -> None:
    msg = camera_info(**kwargs)
    if "cy" in kwargs:
        msg.k = np.zeros(9)  # uncalibrated driver
    with pytest.raises(InputError) as e:
        conv.camera_info_to_intrinsics(msg)
    assert reason(e) == "invalid_intrinsics"
    if "cy" in kwargs:
        assert "not calibrated" in str(e.value)
    if "w" in kwargs or "h" in kwargs:
        assert "camera_info image size" in str(e.value)


def test_intrinsics_camera_info_round_trip() -> None:
    intr = CameraIntrinsics(525.0, 526.0, 320.5, 240.25, 640, 480)
    msg = conv.intrinsics_to_camera_info(intr, header())
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], intr.matrix())
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, 3], 0)
    msg = deserialize_message(serialize_message(msg), CameraInfo)
    assert conv.camera_info_to_intrinsics(msg) == intr


# ---------------------------------------------------------------- stamps

@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789, -1])
def test_stamp_round_trip(ns: int) -> None:
    stamp = conv.ns_to_stamp(ns)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert conv.stamp_to_ns(stamp) == ns
    assert conv.ns_to_stamp(1_500_000_000).sec == 1 and conv.ns_to_stamp(1_500_000_000).nanosec == 500_000_000


# ---------------------------------------------------------------- point clouds

def random_cloud(n: int) -> LayeredCloud:
    return LayeredCloud.from_arrays(points=RNG.normal(0, 3, (n, 3)).astype(np.float32),
                        colors=RNG.integers(0, 256, (n, 3), dtype=np.uint8),
                        layer=RNG.integers(0, 4, n, dtype=np.uint8),
                        instance=RNG.integers(0, 65536, n, dtype=np.uint16))


def test_cloud_layout() -> None:
    msg = conv.cloud_to_msg(random_cloud(5), header())
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1),
                      ("instance", 16, 4, 1), ("layer", 18, 2, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 20, 100)
    assert msg.is_dense and not msg.is_bigendian and len(msg.data) == 100
    assert bytes(msg.data)[19::20] == bytes(5)  # padding byte is zero


def test_cloud_round_trip_exact() -> None:
    cloud = random_cloud(1001)
    out = conv.cloud_from_msg(conv.cloud_to_msg(cloud, header()))
    np.testing.assert_array_equal(np.stack([out["x"], out["y"], out["z"]], axis=1), cloud.points)
    np.testing.assert_array_equal(out["rgb"], cloud.colors)
    np.testing.assert_array_equal(out["instance"], cloud.instance)
    np.testing.assert_array_equal(out["layer"], cloud.layer)
    assert out["instance"].dtype == np.uint16 and out["layer"].dtype == np.uint8 and out["x"].dtype == np.float32


def test_packed_rgb_known_colour() -> None:
    cloud = LayeredCloud.from_arrays(points=np.array([[1, 2, 3], [4, 5, 6]], np.float32),
                         colors=np.array([[255, 0, 0], [0x12, 0x34, 0x56]], np.uint8),
                         layer=np.array([0, 2], np.uint8), instance=np.array([7, 0x0102], np.uint16))
    data = np.frombuffer(bytes(conv.cloud_to_msg(cloud).data), np.uint8).reshape(2, 20)
    rgb_bits = data[:, 12:16].copy().view("<u4").ravel()
    assert rgb_bits.tolist() == [0xFF0000, 0x123456]
    assert data[:, 12:16].copy().view("<f4").ravel()[0] == np.array([0xFF0000], "<u4").view("<f4")[0]
    assert data[:, 0:12].copy().view("<f4").tolist() == [[1, 2, 3], [4, 5, 6]]
    assert data[:, 16:18].copy().view("<u2").ravel().tolist() == [7, 0x0102]
    assert data[:, 18].tolist() == [0, 2]


def test_cloud_from_msg_generic_fields() -> None:
    """A foreign layout (big-endian, float64 x, count>1, padded rows) is read from its fields."""
    from sensor_msgs.msg import PointField
    n = 3
    dt = np.dtype({"names": ["intensity", "x", "rgb", "v"], "formats": [">f4", ">f8", ">u4", (">i2", (2,))],
                   "offsets": [0, 8, 16, 20], "itemsize": 28})
    pts = np.zeros(n, dt)
    pts["intensity"] = [0.5, 1.5, 2.5]
    pts["x"] = [1e-9, 2.0, -3.0]
    pts["rgb"] = [0x00FF00, 0x0000FF, 0xABCDEF]
    pts["v"] = [[1, -1], [2, -2], [3, -3]]
    row = pts.tobytes() + b"\xEE" * 4
    msg = PointCloud2(height=2, width=n, point_step=28, row_step=28 * n + 4, is_bigendian=True, data=row * 2)
    msg.fields = [PointField(name="intensity", offset=0, datatype=PointField.FLOAT32, count=1),
                  PointField(name="x", offset=8, datatype=PointField.FLOAT64, count=1),
                  PointField(name="rgb", offset=16, datatype=PointField.FLOAT32, count=1),
                  PointField(name="v", offset=20, datatype=PointField.INT16, count=2)]
    out = conv.cloud_from_msg(msg)
    np.testing.assert_array_equal(out["intensity"], np.tile(pts["intensity"], 2))
    np.testing.assert_array_equal(out["x"], np.tile(pts["x"], 2))
    np.testing.assert_array_equal(out["rgb"], np.tile([[0, 255, 0], [0, 0, 255], [0xAB, 0xCD, 0xEF]], (2, 1)))
    np.testing.assert_array_equal(out["v"], np.tile(pts["v"], (2, 1)))
    msg.data = (row * 2)[:-1]
    with pytest.raises(InputError) as e:
        conv.cloud_from_msg(msg)
    assert reason(e) == "truncated_data"


def test_cloud_size_mismatch_and_empty() -> None:
    with pytest.raises(InputError) as e:
        LayeredCloud.from_arrays(np.zeros((4, 3), np.float32), np.zeros((4, 3), np.uint8), np.zeros(3, np.uint8),
                                 np.zeros(4, np.uint16))
    assert reason(e) == "size_mismatch"
    with pytest.raises(InputError) as e:
        conv.cloud_to_msg(LayeredCloud(np.zeros((2, 2), np.float32)))
    assert reason(e) == "size_mismatch"
    empty = conv.cloud_to_msg(random_cloud(0))
    assert empty.width == 0 and len(empty.data) == 0
    out = conv.cloud_from_msg(empty)
    assert out["x"].shape == (0,) and out["rgb"].shape == (0, 3)


def test_serialisation_through_rclpy() -> None:
    cloud = random_cloud(2000)
    pc = conv.cloud_to_msg(cloud, header("optical"))
    back = deserialize_message(serialize_message(pc), PointCloud2)
    assert bytes(back.data) == bytes(pc.data) and back.header.frame_id == "optical"
    assert [f.name for f in back.fields] == ["x", "y", "z", "rgb", "instance", "layer"]
    out = conv.cloud_from_msg(back)
    np.testing.assert_array_equal(out["rgb"], cloud.colors)
    np.testing.assert_array_equal(out["z"], cloud.points[:, 2])

    rgb = random_rgb()
    img = conv.rgb_to_image(rgb, header(), "bgr8")
    back = deserialize_message(serialize_message(img), Image)
    assert bytes(back.data) == bytes(img.data) and back.step == img.step
    assert conv.stamp_to_ns(back.header.stamp) == 1_700_000_000_123_456_789
    np.testing.assert_array_equal(conv.image_to_rgb(back), rgb)

    depth = RNG.uniform(0.5, 5, (H, W)).astype(np.float32)
    back = deserialize_message(serialize_message(conv.depth_to_image(depth, header(), "16UC1")), Image)
    assert np.abs(conv.image_to_depth(back) - depth).max() <= 0.0005 + 1e-6


def test_data_field_accepts_our_buffer_with_field_checks() -> None:
    """With ROS_PYTHON_CHECK_FIELDS=1 semantics the setter must accept what we assign."""
    pc = PointCloud2(check_fields=True)
    pc.data = conv.cloud_to_msg(random_cloud(3)).data
    assert len(pc.data) == 60


def test_timing_cloud_and_image(capsys) -> None:
    cloud = random_cloud(300_000)
    conv.cloud_to_msg(cloud)  # warm-up
    runs = 10
    t0 = time.perf_counter()
    for _ in range(runs):
        msg = conv.cloud_to_msg(cloud)
    cloud_ms = (time.perf_counter() - t0) / runs * 1e3
    assert len(msg.data) == 300_000 * 20
    lines = [f"cloud_to_msg 300k points: {cloud_ms:.2f} ms"]
    for enc in ("rgb8", "bgr8", "rgba8", "mono8"):
        img = conv.rgb_to_image(random_rgb(480, 640), None, enc)
        conv.image_to_rgb(img)
        t0 = time.perf_counter()
        for _ in range(50):
            conv.image_to_rgb(img)
        lines.append(f"image_to_rgb 640x480 {enc}: {(time.perf_counter() - t0) / 50 * 1e3:.3f} ms")
    with capsys.disabled():
        print("\n" + "\n".join(lines), file=sys.stderr)


# ---------------------------------------------------------------- AmodalInstance messages

def make_instance() -> AmodalInstance:
    amodal = np.zeros((H, W), bool)
    amodal[2:6, 3:9] = True
    amodal[5, 8] = False  # not a rectangle: a bbox pixel outside the mask
    visible = amodal.copy()
    visible[2:6, 6:9] = False
    visible[2, 3] = False
    depth = np.full((H, W), np.nan, np.float32)
    depth[amodal] = RNG.uniform(1, 2, int(amodal.sum())).astype(np.float32)
    depth[0, 0] = 9.0  # outside the amodal mask: must not leak into the crop
    depth[5, 8] = 9.0  # inside the bbox, outside the mask: NaN in the crop
    return AmodalInstance.from_frame(id=3, label="cup", score=0.75, visible_mask=visible, amodal_mask=amodal,
                                     occluded_by=(1, 5), depth=depth, kind="structure")


def check_instance_msg(msg, inst: AmodalInstance) -> None:
    assert (msg.id, msg.label, msg.kind) == (3, "cup", 1)   # KIND_STRUCTURE
    assert msg.score == pytest.approx(0.75)
    b = msg.bbox
    assert (b.x_offset, b.y_offset, b.width, b.height, b.do_rectify) == (3, 2, 6, 4, False)
    crop = (slice(2, 6), slice(3, 9))
    np.testing.assert_array_equal(conv.image_to_mask(msg.amodal_mask), inst.amodal_mask[crop])
    np.testing.assert_array_equal(conv.image_to_mask(msg.visible_mask), inst.visible_mask[crop])
    assert msg.visible_mask.encoding == "mono8" and msg.amodal_depth.encoding == "32FC1"
    assert msg.visible_ratio == pytest.approx(inst.visible_ratio)
    assert list(msg.occluded_by) == [1, 5]
    expected = np.where(inst.amodal_mask[crop], inst.depth[crop], np.nan)
    assert np.isnan(expected[3, 5]) and np.isfinite(expected[0, 0])
    np.testing.assert_array_equal(conv.image_to_depth(msg.amodal_depth), expected)
    assert msg.amodal_mask.header.frame_id == "cam"


def test_instance_to_msg_real_class() -> None:
    msgs = pytest.importorskip("amodal_depth_ros.msg", reason="custom interfaces not built")
    inst = make_instance()
    msg = conv.instance_to_msg(inst, header())
    check_instance_msg(msg, inst)
    arr = conv.instances_to_msg([inst], header(), W, H)
    assert isinstance(arr, msgs.AmodalInstanceArray) and (arr.width, arr.height) == (W, H)
    back = deserialize_message(serialize_message(arr), msgs.AmodalInstanceArray)
    check_instance_msg(back.instances[0], inst)


class _StandInInstance:
    """Same fields as amodal_depth_ros/AmodalInstance; used only while the interfaces are not built."""

    def __init__(self) -> None:
        self.id, self.label, self.score, self.kind = 0, "", 0.0, 0
        self.bbox = RegionOfInterest()
        self.visible_mask, self.amodal_mask, self.amodal_depth = Image(), Image(), Image()
        self.visible_ratio, self.occluded_by = 0.0, []


class _StandInArray:
    def __init__(self) -> None:
        self.header, self.height, self.width, self.instances = Header(), 0, 0, []


def test_instance_to_msg_stand_in() -> None:
    try:
        import amodal_depth_ros.msg  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("real interfaces are built; test_instance_to_msg_real_class covers this")
    inst = make_instance()
    check_instance_msg(conv.instance_to_msg(inst, header(), _StandInInstance), inst)
    arr = conv.instances_to_msg([inst], header(), W, H, _StandInArray, _StandInInstance)
    assert (arr.width, arr.height, len(arr.instances)) == (W, H, 1)
    check_instance_msg(arr.instances[0], inst)
    with pytest.raises(InputError) as e:
        conv.instances_to_msg([inst], header(), W + 1, H, _StandInArray, _StandInInstance)
    assert reason(e) == "size_mismatch"
    no_depth = make_instance()
    no_depth.surface = None
    assert np.isnan(conv.image_to_depth(conv.instance_to_msg(no_depth, None, _StandInInstance).amodal_depth)).all()
    empty = AmodalInstance.from_frame(3, "cup", 0.75, np.zeros((H, W), bool), np.zeros((H, W), bool), ())
    msg = conv.instance_to_msg(empty, None, _StandInInstance)
    assert (msg.bbox.width, msg.amodal_mask.width, msg.amodal_depth.height) == (0, 0, 0)
