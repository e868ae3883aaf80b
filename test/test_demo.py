"""`amodal-depth demo` end to end (node process + DDS), and the visualisation helpers it writes with."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT

from amodal_depth_ros.core import LayeredCloud
from amodal_depth_ros.visualize import PLY_DTYPE, colorize_depth, colormap_rgb, hidden_overlay, write_ply

WIDTH, HEIGHT = 320, 240
PLY_TYPES = {"float": "<f4", "uchar": "u1", "ushort": "<u2"}


def read_ply(path):
    """Independent reader: parse the header, then read the binary body with the dtype it declares."""
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    lines = raw[:end].decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    count = int(next(line.split()[2] for line in lines if line.startswith("element vertex")))
    fields = [(line.split()[2], PLY_TYPES[line.split()[1]]) for line in lines if line.startswith("property")]
    dtype = np.dtype(fields)
    assert len(raw) - end == count * dtype.itemsize
    return np.frombuffer(raw, dtype, count=count, offset=end)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    # A subprocess: rclpy init/shutdown and the node's lifetime stay out of the test process.
    result = subprocess.run([sys.executable, "-m", "amodal_depth_ros.tools.cli", "demo", "--out", str(out),
                             "--frames", "6", "--rate", "4", "--width", str(WIDTH), "--height", str(HEIGHT)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    return out, result


def test_demo_runs_and_reports(demo_run):
    out, result = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_published"] == 6
    # The newest frame is always processed, frames come back in order, none twice; every image published is
    # accounted for (how many were superseded while the node was busy depends on the machine's load).
    assert summary["returned_indices"][-1] == 5
    assert summary["returned_indices"] == sorted(set(summary["returned_indices"]))
    counters = summary["node_counters"]
    assert counters["frames_out"] == summary["frames_returned"]
    assert counters["frames_in"] + counters["superseded_in_queue_image"] == 6, counters
    assert counters["frames_in"] == counters["frames_out"] + sum(
        counters[k] for k in ("dropped_superseded", "dropped_unsynchronized", "dropped_out_of_order",
                              "skipped_no_subscriber", "images_waiting", "rejected_total")), counters
    assert summary["latency_ms"]["p50"] > 0
    assert "total" in summary["stage_ms"]
    last = summary["last_frame"]
    assert last["visible_depth_max_abs_err_m"] < 1e-3   # visible depth is the depth topic itself
    assert last["hidden_surface_pixels"] > 0
    assert last["hidden_surface_abs_err_m"]["mean"] is not None
    assert last["instances"] >= 2 and any(inst["occluded_by"] for inst in last["occlusion"])
    assert "frames_returned" in result.stdout   # the human-readable table


def test_demo_images(demo_run):
    out, _ = demo_run
    for name in ("input_rgb", "visible_depth", "amodal_depth", "hidden_layers"):
        image = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_COLOR)
        assert image is not None, name
        assert image.shape == (HEIGHT, WIDTH, 3), name
    visible = cv2.imread(str(out / "visible_depth.png"))
    amodal = cv2.imread(str(out / "amodal_depth.png"))
    assert np.any(visible != amodal)   # hidden surfaces change the amodal image


def test_demo_cloud(demo_run):
    out, _ = demo_run
    points = read_ply(out / "amodal_cloud.ply")
    summary = json.loads((out / "summary.json").read_text())
    by_layer = {str(k): int(n) for k, n in zip(*np.unique(points["layer"], return_counts=True), strict=False)}
    assert by_layer == summary["last_frame"]["cloud_points_by_layer"]
    assert by_layer.get("1", 0) > 0
    assert np.isfinite(points["x"]).all() and (points["z"] > 0).all()


def test_write_ply_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    cloud = LayeredCloud.from_arrays(points=rng.normal(size=(50, 3)).astype(np.float32),
                         colors=rng.integers(0, 256, (50, 3), dtype=np.uint8),
                         layer=rng.integers(0, 3, 50, dtype=np.uint8),
                         instance=rng.integers(0, 65536, 50, dtype=np.uint16))
    as_dict = {"x": cloud.points[:, 0], "y": cloud.points[:, 1], "z": cloud.points[:, 2], "rgb": cloud.colors,
               "layer": cloud.layer, "instance": cloud.instance}
    for name, source in (("a.ply", cloud), ("b.ply", as_dict)):
        assert write_ply(tmp_path / name, source) == 50
        back = read_ply(tmp_path / name)
        assert back.dtype == PLY_DTYPE
        np.testing.assert_array_equal(np.stack([back["x"], back["y"], back["z"]], axis=1), cloud.points)
        np.testing.assert_array_equal(np.stack([back["red"], back["green"], back["blue"]], axis=1), cloud.colors)
        np.testing.assert_array_equal(back["layer"], cloud.layer)
        np.testing.assert_array_equal(back["instance"], cloud.instance)
    empty = LayeredCloud.from_arrays(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.uint8),
                         np.zeros(0, np.uint16))
    assert write_ply(tmp_path / "empty.ply", empty) == 0 and len(read_ply(tmp_path / "empty.ply")) == 0


def test_colorize_depth():
    depth = np.array([[np.nan, 1.0, 3.0], [0.5, 5.0, np.inf]], np.float32)
    image = colorize_depth(depth, vmin=1.0, vmax=3.0)
    lut = colormap_rgb()
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    assert (image[0, 0] == 0).all() and (image[1, 2] == 0).all()   # NaN and inf: black
    np.testing.assert_array_equal(image[0, 1], lut[0])             # vmin: first colour
    np.testing.assert_array_equal(image[0, 2], lut[255])           # vmax: last colour
    np.testing.assert_array_equal(image[1, 0], lut[0])             # clipped below
    np.testing.assert_array_equal(image[1, 1], lut[255])           # clipped above
    # RGB order: TURBO starts dark blue-violet (more blue than red) and ends dark red.
    assert lut[0, 2] > lut[0, 0] and lut[255, 0] > lut[255, 2]


def test_hidden_overlay_marks_only_hidden_pixels():
    rgb = np.full((2, 2, 3), 200, np.uint8)
    visible = np.array([[1.0, 1.0], [np.nan, 2.0]], np.float32)
    amodal = np.array([[1.0, 1.5], [np.nan, 2.0]], np.float32)
    out = hidden_overlay(rgb, visible, amodal, vmin=1.5, vmax=3.0)
    # The hidden pixel takes the colour of its hidden depth (vmin: first colour), blended with the image.
    expected = (0.75 * colormap_rgb()[0] + 0.25 * 200).astype(np.uint8)
    np.testing.assert_array_equal(out[0, 1], expected)
    np.testing.assert_array_equal(out[[0, 1, 1], [0, 0, 1]], np.full((3, 3), 70, np.uint8))   # darkened
