"""Real RGB-D folders (datasets.rgbd_folder) and real-image amodal composites (datasets.composites,
`amodal-depth composites`), on small folders written from the synthetic renderer: no ROS, no shared data."""
import argparse
import json

import cv2
import numpy as np
import pytest

from amodal_depth_ros.core import CameraIntrinsics
from amodal_depth_ros.datasets import (
    RGBDSample,
    iter_composite_set,
    load_rgbd_folder,
    read_composite_set,
    write_composite_set,
)
from amodal_depth_ros.datasets.composites import HIDDEN_RATIO, build_composites, find_targets, generated
from amodal_depth_ros.synthetic import random_scene, render
from amodal_depth_ros.tools import composites as tool

W, H = 160, 120


@pytest.fixture(scope="module")
def rendered():
    """Three rendered frames with unmeasured depth punched in (a block and scattered pixels), as a sensor has."""
    frames = []
    for seed in range(3):
        frame = render(*random_scene(seed, W, H))
        rng = np.random.default_rng(seed)
        frame.depth[rng.random((H, W)) < 0.01] = np.nan
        frame.depth[5:15, 100:115] = np.nan
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def samples(rendered):
    return [RGBDSample(f"frame{i}", f.rgb, f.depth, f.intrinsics) for i, f in enumerate(rendered)]


def write_pair(rgb_path, depth_path, frame, scale=1000.0):
    rgb_path.parent.mkdir(parents=True, exist_ok=True)
    depth_path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(rgb_path), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    units = np.rint(np.nan_to_num(frame.depth, nan=0.0) * scale).astype(np.uint16)   # 0 = no reading
    assert cv2.imwrite(str(depth_path), units)


def cam(frame):
    i = frame.intrinsics
    return [i.fx, i.fy, i.cx, i.cy]


def write_metric3d(root, frames):
    """Metric3D layout: paths in the json carry the repository's "data/" prefix."""
    files = []
    for i, frame in enumerate(frames):
        rgb, depth = f"data/nyu_demo/rgb/rgb_{i:05d}.png", f"data/nyu_demo/depth/sync_depth_{i:05d}.png"
        write_pair(root / rgb.removeprefix("data/nyu_demo/"), root / depth.removeprefix("data/nyu_demo/"), frame)
        files.append({"cam_in": cam(frame), "rgb": rgb, "depth": depth, "depth_scale": 1000.0})
    (root / "test_annotations.json").write_text(json.dumps({"files": files}))
    return root


def write_intrinsics_folder(root, frames, layout="stems", intrinsics=True):
    for i, frame in enumerate(frames):
        if layout == "stems":
            write_pair(root / "rgb" / f"frame{i}.png", root / "depth" / f"frame{i}.png", frame)
        elif layout == "numbers":
            write_pair(root / "image" / f"rgb_{50 * i:05d}.png", root / "depth" / f"sync_depth_{50 * i:05d}.png", frame)
        elif layout == "uoais":
            write_pair(root / "image_color" / f"test{i}.png", root / "disparity" / f"test{i}.png", frame)
        else:
            write_pair(root / "color.png", root / "depth.png", frame)
    if intrinsics:
        fx, fy, cx, cy = cam(frames[0])
        (root / "intrinsics.json").write_text(
            json.dumps({"fx": fx, "fy": fy, "cx": cx, "cy": cy, "depth_scale": 1000.0})
        )
    return root


def assert_loaded(sample, frame, intrinsics=None):
    np.testing.assert_array_equal(sample.rgb, frame.rgb)
    assert sample.depth.dtype == np.float32 and sample.depth.shape == (H, W)
    np.testing.assert_array_equal(np.isnan(sample.depth), np.isnan(frame.depth))
    assert np.nanmax(np.abs(sample.depth - frame.depth)) <= 0.001
    assert sample.intrinsics == (intrinsics or frame.intrinsics)


# ---------------------------------------------------------------- loading folders

def test_metric3d_layout_resolves_repository_paths(tmp_path, rendered):
    loaded = load_rgbd_folder(write_metric3d(tmp_path / "nyu_demo", rendered))
    assert [s.name for s in loaded] == ["rgb_00000", "rgb_00001", "rgb_00002"]
    for sample, frame in zip(loaded, rendered, strict=False):
        assert_loaded(sample, frame)


@pytest.mark.parametrize("layout", ["stems", "numbers", "single"])
def test_intrinsics_json_layouts(tmp_path, rendered, layout):
    frames = rendered[:1] if layout == "single" else rendered
    loaded = load_rgbd_folder(write_intrinsics_folder(tmp_path / "set", frames, layout))
    assert len(loaded) == len(frames)
    for sample, frame in zip(loaded, frames, strict=False):
        assert_loaded(sample, frame, frames[0].intrinsics)   # one intrinsics.json for the folder
    if layout == "numbers":
        assert [s.name for s in loaded] == ["rgb_00000", "rgb_00050", "rgb_00100"]


def test_arguments_override_the_files(tmp_path, rendered):
    root = write_intrinsics_folder(tmp_path / "set", rendered[:1])
    (sample,) = load_rgbd_folder(root, intrinsics=(100.0, 101.0, 80.0, 60.0), depth_scale=500.0)
    assert sample.intrinsics == CameraIntrinsics(100.0, 101.0, 80.0, 60.0, W, H)
    assert np.nanmax(np.abs(sample.depth - 2.0 * rendered[0].depth)) <= 0.002   # millimetres read as 1/500 m


def test_folder_without_intrinsics_needs_arguments(tmp_path, rendered):
    root = write_intrinsics_folder(tmp_path / "osd", rendered, "uoais", intrinsics=False)
    with pytest.raises(ValueError, match=f"{root}: missing intrinsics"):
        load_rgbd_folder(root)
    with pytest.raises(ValueError, match="depth_scale"):
        load_rgbd_folder(root, intrinsics=tuple(cam(rendered[0])))
    loaded = load_rgbd_folder(root, intrinsics=tuple(cam(rendered[0])), depth_scale=1000.0)
    for sample, frame in zip(loaded, rendered, strict=False):
        assert_loaded(sample, frame, rendered[0].intrinsics)


def test_greyscale_colour_becomes_three_channels(tmp_path, rendered):
    root = write_intrinsics_folder(tmp_path / "set", rendered[:1], "single")
    grey = cv2.cvtColor(rendered[0].rgb, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(root / "color.png"), grey)
    (sample,) = load_rgbd_folder(root)
    assert sample.rgb.shape == (H, W, 3) and (sample.rgb == grey[..., None]).all()


def test_loading_errors_name_the_problem(tmp_path, rendered):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"{empty}: no frames found"):
        load_rgbd_folder(empty)
    with pytest.raises(ValueError, match="not a folder"):
        load_rgbd_folder(tmp_path / "absent")
    root = write_intrinsics_folder(tmp_path / "set", rendered[:1], "single")
    with pytest.raises(ValueError, match="depth_scale must be positive"):
        load_rgbd_folder(root, depth_scale=0.0)
    cv2.imwrite(str(root / "depth.png"), np.zeros((H // 2, W // 2), np.uint16))
    with pytest.raises(ValueError, match=f"depth is {W // 2}x{H // 2} but colour image .* is {W}x{H}"):
        load_rgbd_folder(root)
    (root / "depth.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="depth.png: unreadable depth image"):
        load_rgbd_folder(root)
    metric = write_metric3d(tmp_path / "m3d", rendered[:1])
    (metric / "rgb" / "rgb_00000.png").unlink()
    with pytest.raises(ValueError, match="data/nyu_demo/rgb/rgb_00000.png not found"):
        load_rgbd_folder(metric)


# ---------------------------------------------------------------- composites

@pytest.fixture(scope="module")
def composites(samples):
    return list(build_composites(samples, 6, seed=0))


def test_find_targets_keeps_compact_inner_regions():
    depth = np.full((H, W), 2.0, np.float32)
    depth[40:60, 50:70] = 1.5     # a box: the target
    depth[0:20, 0:20] = 1.2       # cut off by the image border
    depth[75:115, 100:104] = 1.4  # an L: far from convex
    depth[111:115, 100:140] = 1.4
    depth[10:20, 120:130] = 1.3   # too small (100 pixels < 1 %); the wall is too large
    rgb = np.full((H, W, 3), 128, np.uint8)
    targets = find_targets(RGBDSample("box", rgb, depth, CameraIntrinsics(150, 150, 79.5, 59.5, W, H)))
    box = np.zeros((H, W), bool)
    box[40:60, 50:70] = True
    assert len(targets) == 1 and (targets[0] == box).all()


def test_generated_occluder_is_a_textured_shape_with_gentle_relief():
    occ = generated(np.random.default_rng(3), 40, 60)
    assert occ.mask.shape == (40, 60) and 0.4 < occ.mask.mean() < 0.95
    assert occ.rgb.dtype == np.uint8 and occ.rgb[occ.mask].std() > 2   # textured, not flat
    assert np.abs(occ.relief).max() <= 0.1 and (occ.relief[~occ.mask] == 0).all()


def frames_equal(a, b):
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=np.asarray(getattr(a, f)).dtype.kind == "f")
               for f in ("rgb", "depth", "instance_ids", "amodal_masks", "object_depths", "occlusion_pairs", "stuff"))


def test_composites_are_deterministic(samples, composites):
    again = list(build_composites(samples, 6, seed=0))
    assert len(again) == len(composites) > 0
    assert all(frames_equal(a, b) and pa == pb for (a, pa), (b, pb) in zip(composites, again, strict=False))
    other = list(build_composites(samples, 6, seed=1))
    assert not (
        len(other) == len(composites)
        and all(frames_equal(a, b) for (a, _), (b, _) in zip(composites, other, strict=False))
    )


def test_composite_invariants(samples, composites):
    assert {p["occluder"] for _, p in composites} == {"cutout", "generated"}
    assert {p["frame_index"] for _, p in composites} == {0, 1, 2}
    for frame, p in composites:
        src = samples[p["frame_index"]]
        assert p["source"] == src.name
        assert frame.names == ("target", "occluder") and frame.intrinsics == src.intrinsics
        assert frame.occlusion_pairs.tolist() == [[2, 1]] and not frame.stuff.any()
        target, occ = frame.amodal_mask(1), frame.amodal_mask(2)
        assert (target == find_targets(src)[p["target_index"]]).all() and p["target_area"] == target.sum()
        # The target's own depth is the real measurement, hidden part included.
        np.testing.assert_array_equal(frame.object_depths[0], np.where(target, src.depth, np.nan))
        occ_depth = frame.object_depths[1]
        assert np.isfinite(occ_depth[occ]).all() and np.isnan(occ_depth[~occ]).all() and (occ_depth[occ] >= 0.2).all()
        np.testing.assert_array_equal(frame.depth, np.where(occ, occ_depth, src.depth))
        covered = occ & np.isfinite(src.depth)
        assert (frame.depth[covered] < src.depth[covered]).all()   # in front of the target and all else it hides
        hidden = (target & occ).sum() / target.sum()
        assert HIDDEN_RATIO[0] <= hidden <= HIDDEN_RATIO[1]
        assert p["visible_ratio"] == pytest.approx(1.0 - hidden, abs=1e-4)
        np.testing.assert_array_equal(frame.instance_ids, np.where(occ, 2, np.where(target, 1, 0)))
        near = cv2.dilate(occ.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        np.testing.assert_array_equal(frame.rgb[~near], src.rgb[~near])
        assert (frame.rgb[occ] != src.rgb[occ]).any()


def test_single_frame_set_still_gets_cutouts(samples):
    made = list(build_composites(samples[1:2], 8, seed=0))
    assert made and all(p["occluder_source"] is None or p["occluder_source"].startswith("frame1#") for _, p in made)


def test_set_round_trip(tmp_path, composites):
    out = tmp_path / "set"
    index = write_composite_set(out, composites, "somewhere", 0, previews=2)
    assert json.loads((out / "index.json").read_text()) == index
    assert index["count"] == len(composites) and index["seed"] == 0 and index["source"] == "somewhere"
    assert sum(index["occluder_kinds"].values()) == len(composites)
    assert sorted(p.name for p in (out / "previews").iterdir()) == ["000000.png", "000001.png"]
    assert cv2.imread(str(out / "previews" / "000000.png")).shape == (H, 2 * W, 3)
    assert not [p for p in out.rglob(".*")]   # no temporary files left
    files = read_composite_set(out)
    assert [f.name for f in files] == [f"{n:06d}.npz" for n in range(len(composites))]
    for (frame, _), loaded in zip(composites, iter_composite_set(out), strict=True):
        assert frames_equal(frame, loaded) and loaded.names == frame.names
    write_composite_set(out, composites[:1], "smaller", 1, previews=2)   # rewritten in place: nothing stale stays
    assert [p.name for p in (out / "frames").iterdir()] == ["000000.npz"]
    assert [p.name for p in (out / "previews").iterdir()] == ["000000.png"]


def test_reading_a_broken_set_fails_clearly(tmp_path, composites):
    with pytest.raises(ValueError, match="not a composite set"):
        read_composite_set(tmp_path)
    out = tmp_path / "set"
    write_composite_set(out, composites[:2], "somewhere", 0, previews=0)
    (out / "frames" / "000001.npz").unlink()
    with pytest.raises(ValueError, match="1 frame file.*missing.*000001.npz"):
        read_composite_set(out)


# ---------------------------------------------------------------- command

def run_tool(*argv):
    parser = argparse.ArgumentParser()
    tool.add_arguments(parser)
    return tool.run(parser.parse_args([str(a) for a in argv]))


def test_command_end_to_end(tmp_path, rendered, capsys):
    src = write_metric3d(tmp_path / "nyu_demo", rendered)
    out = tmp_path / "out"
    assert run_tool(src, out, "--per-frame", 4, "--seed", 7, "--previews", 3) == 0
    expected = list(build_composites(load_rgbd_folder(src), 4, 7))
    index = json.loads((out / "index.json").read_text())
    assert index["count"] == len(expected) > 0 and index["seed"] == 7
    assert len(list((out / "previews").iterdir())) == min(3, len(expected))
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"3 frames in, {len(expected)} composites written") and "mean visible ratio" in line
    assert all(frames_equal(a, b) for (a, _), b in zip(expected, iter_composite_set(out), strict=True))


def test_command_with_intrinsics_arguments(tmp_path, rendered, capsys):
    src = write_intrinsics_folder(tmp_path / "osd", rendered, "uoais", intrinsics=False)
    assert run_tool(src, tmp_path / "out", "--per-frame", 2) == 2
    assert "missing intrinsics" in capsys.readouterr().err
    fx, fy, cx, cy = cam(rendered[0])
    assert run_tool(src, tmp_path / "out", "--per-frame", 2, "--intrinsics", f"{fx},{fy},{cx},{cy}",
                    "--depth-scale", 1000) == 0
    assert read_composite_set(tmp_path / "out")


def test_command_rejects_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_tool(tmp_path / "empty", tmp_path / "out") == 2
    assert "no frames found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_tool(tmp_path / "empty", tmp_path / "out", "--intrinsics", "1,2,3")
    assert tool.__doc__.splitlines()[0]


def test_synthetic_source_composites(tmp_path, capsys):
    from amodal_depth_ros.datasets import SyntheticRGBD
    from amodal_depth_ros.synthetic import generate

    source = SyntheticRGBD(range(10_000, 10_003))
    sample = source[1]
    clean = generate(10_001).depth
    noisy = np.isfinite(sample.depth)
    assert 0.97 < noisy.mean() <= 1.0                                  # ~1 % of the readings dropped
    error = np.abs(sample.depth[noisy] - clean[noisy])
    assert 0 < np.median(error) < 0.01 and error.max() < 0.1          # structured-light noise, mm steps
    assert np.array_equal(source[1].depth, sample.depth, equal_nan=True)   # deterministic
    with pytest.raises(IndexError):
        source[3]
    out = tmp_path / "out"
    assert run_tool("synthetic:10000-10002", out, "--per-frame", 2, "--previews", 0) == 0
    assert capsys.readouterr().out.startswith("3 frames in")
    index = json.loads((out / "index.json").read_text())
    assert index["source"] == "synthetic:10000-10002" and index["count"] > 0
    for frame in iter_composite_set(out):
        # The hidden part's truth is the sensor's depth of the source frame under the occluder.
        hidden = frame.hidden_mask(1)
        assert hidden.any()
        matches = [np.allclose(frame.object_depths[0][hidden], source[k].depth[hidden], equal_nan=True)
                   for k in range(3)]
        assert any(matches)
    assert run_tool("synthetic:10000-10002", tmp_path / "o2", "--depth-scale", 1000) == 2
    assert "apply to folders" in capsys.readouterr().err
