"""The fused map (mapping.FusedMap): observations integrated, predictions behind them weighing less and
cleared by observation, memory bounded; and `amodal-depth map-eval` on a synthetic camera path."""
import json

import numpy as np
import pytest

from amodal_depth_ros.core.types import CameraIntrinsics, HiddenSurfaces
from amodal_depth_ros.mapping import FusedMap
from amodal_depth_ros.synthetic.paths import camera_to_world, eye_offsets, path_frames, scene_world, true_surface_points
from amodal_depth_ros.tools.cli import main as cli

INTR = CameraIntrinsics(256.0, 256.0, 159.5, 119.5, 320, 240)
WALL, BOX = 2.013, 1.207   # metres: a wall and a box face in front of it (off the voxel grid's sample planes)


def box_before_wall() -> tuple[np.ndarray, np.ndarray]:
    depth = np.full((240, 320), WALL, np.float32)
    box = np.zeros(depth.shape, bool)
    box[80:160, 100:220] = True
    depth[box] = BOX
    return depth, box


def hidden_at(box: np.ndarray, depth: float) -> HiddenSurfaces:
    rows, cols = np.nonzero(box)
    return HiddenSurfaces(rows, cols, np.full(rows.size, depth, np.float32), np.ones(rows.size, np.int32),
                          np.ones(rows.size, np.uint8))


def rgb() -> np.ndarray:
    return np.full((240, 320, 3), 90, np.uint8)


def test_predicted_wall_fills_the_hole_until_the_camera_sees_it():
    depth, box = box_before_wall()
    fused = FusedMap(voxel_size=0.02)
    fused.integrate(depth, rgb(), INTR, np.eye(4), hidden_at(box, WALL))
    cloud = fused.extract()
    predicted = cloud.points[cloud.predicted]
    assert len(predicted) > 0 and np.allclose(predicted[:, 2], WALL, atol=0.015)
    # Behind the box only: inside the box's view cone at the wall's depth.
    half = np.abs(predicted[:, :2] / predicted[:, 2:3])
    assert (half[:, 0] <= 60 / 256 + 0.02).all() and (half[:, 1] <= 40 / 256 + 0.02).all()
    observed = cloud.points[~cloud.predicted]
    on_a_face = (np.abs(observed[:, 2] - WALL) < 0.015) | (np.abs(observed[:, 2] - BOX) < 0.015)
    assert on_a_face.all()
    # The box is taken away: the camera sees the wall there, and the observation replaces the prediction.
    fused.integrate(np.full((240, 320), WALL, np.float32), rgb(), INTR, np.eye(4))
    cloud = fused.extract()
    assert not cloud.predicted.any()
    behind = np.abs(cloud.points[:, 0] / cloud.points[:, 2]) < 0.2
    assert behind.any() and np.allclose(cloud.points[behind & (cloud.points[:, 2] > 1.9), 2], WALL, atol=0.015)


def test_no_surface_is_extracted_across_a_silhouette():
    """A TSDF's signed distance also changes sign across the silhouette of a near surface in front of a far
    one (from in front of the far one to behind the near one): Open3D's own extraction puts points and
    triangles there, between the box and the wall. The map's points and mesh lie on the two faces only."""
    depth, _ = box_before_wall()
    fused = FusedMap(voxel_size=0.02)
    fused.integrate(depth, rgb(), INTR, np.eye(4))

    def on_a_face(points: np.ndarray) -> np.ndarray:
        return (np.abs(points[:, 2] - WALL) < 0.015) | (np.abs(points[:, 2] - BOX) < 0.015)

    skirts = fused.observed.extract_point_cloud(0.5).point.positions.numpy()
    assert (~on_a_face(skirts)).sum() > 100
    cloud = fused.extract()
    assert len(cloud.points) > 0.95 * len(skirts) and on_a_face(cloud.points).all()
    assert (cloud.colors == 90).all()   # the frame's colour
    vertices, triangles, _, _ = fused.extract_mesh()
    assert len(triangles) > 10000 and on_a_face(vertices[triangles.ravel()]).all()


def test_a_wrong_prediction_is_cleared_by_free_space():
    """Predicted at 1.6 m where there is nothing: once the camera sees the wall at 2 m through that space,
    the prediction is gone, while a frame that still cannot see there leaves it."""
    depth, box = box_before_wall()
    fused = FusedMap(voxel_size=0.02)
    fused.integrate(depth, rgb(), INTR, np.eye(4), hidden_at(box, 1.607))
    assert fused.extract().predicted.sum() > 100
    fused.integrate(depth, rgb(), INTR, np.eye(4))   # still hidden: the prediction stays
    assert fused.extract().predicted.sum() > 100
    fused.integrate(np.full((240, 320), WALL, np.float32), rgb(), INTR, np.eye(4))
    assert fused.extract().predicted.sum() == 0


def test_a_prediction_for_space_already_observed_is_not_integrated():
    depth, box = box_before_wall()
    fused = FusedMap(voxel_size=0.02)
    fused.integrate(np.full((240, 320), WALL, np.float32), rgb(), INTR, np.eye(4))   # the wall, seen whole
    fused.integrate(depth, rgb(), INTR, np.eye(4), hidden_at(box, WALL + 0.04))      # then hidden, mispredicted
    assert fused.blocks()[1] == 0 and not fused.extract().predicted.any()


def test_poses_place_frames_in_the_map_and_bad_poses_are_refused():
    depth, _ = box_before_wall()
    moved = np.eye(4)
    moved[:3, 3] = (0.5, 0.0, 1.0)   # the camera half a metre right and a metre forward
    fused = FusedMap(voxel_size=0.02)
    fused.integrate(np.full((240, 320), WALL, np.float32), rgb(), INTR, moved)
    points = fused.extract().points
    assert np.allclose(points[:, 2], WALL + 1.0, atol=0.015)
    assert np.median(points[:, 0]) == pytest.approx(0.5, abs=0.05)
    bad = moved.copy()
    bad[0, 3] = np.nan
    before = fused.blocks()
    with pytest.raises(ValueError, match="non-finite"):
        fused.integrate(depth, rgb(), INTR, bad)
    assert fused.blocks() == before and fused.frames == 1


def test_memory_stops_at_max_blocks():
    fused = FusedMap(voxel_size=0.02, max_blocks=300)
    for k in range(4):   # four walls at different depths: more blocks than allowed
        fused.integrate(np.full((240, 320), 1.013 + 0.7 * k, np.float32), rgb(), INTR, np.eye(4))
        assert fused.blocks()[0] <= 300
    assert fused.blocks()[0] == 300 and fused.blocks_refused > 0
    assert len(fused.extract().points) > 0   # the blocks it holds still make a surface


def test_camera_path_poses_match_the_rendered_views():
    """A frame's visible depth, placed with its pose, lies on the true surfaces of the path."""
    world = scene_world("synthetic", 3, 160, 120)
    frames = list(path_frames(world, 3))
    assert np.allclose(frames[0].camera_to_world, camera_to_world(world, eye_offsets(world, 3)[0]))
    truth = np.concatenate([true_surface_points(f, 1) for f in frames])
    from scipy.spatial import cKDTree

    from amodal_depth_ros.core.geometry import backproject
    last = frames[-1]
    points = backproject(last.truth.depth, last.truth.intrinsics).reshape(-1, 3)
    points = points[np.isfinite(points[:, 2])]
    placed = points @ last.camera_to_world[:3, :3].T + last.camera_to_world[:3, 3]
    distance, _ = cKDTree(truth).query(placed[::7])
    assert np.percentile(distance, 99) < 1e-3


def test_map_eval_writes_scores_and_picture(tmp_path, capsys):
    out = tmp_path / "maps"
    assert cli(["map-eval", "tabletop:5-5", "--frames", "3", "--width", "160", "--height", "120",
                "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for variant in ("visible_only", "with_hidden"):
        for point in ("frames_1", "frames_3"):
            scores = results["map"][variant][point]
            assert 0.0 < scores["completeness"] <= 1.0 and 0.0 < scores["accuracy"] <= 1.0
            assert 0.0 < scores["chamfer_m"] < 0.5
    assert (out / "maps.png").stat().st_size > 1000 and "with_hidden" in (out / "table.txt").read_text()
    assert cli(["map-eval", "rooms:1-2"]) == 2 and "SCENES must be" in capsys.readouterr().err
