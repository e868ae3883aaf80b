"""The evaluation harness, its baselines and the `amodal-depth eval` command, on scenes with known answers."""
import json

import cv2
import numpy as np

from amodal_depth_ros.core import AmodalInstance, config
from amodal_depth_ros.datasets import write_ground_truth_bag
from amodal_depth_ros.evaluation.harness import (
    END_TO_END,
    ORACLE_PLANE,
    build_methods,
    evaluate,
    match_instances,
    oracle_plane_depth,
    targets,
)
from amodal_depth_ros.pipeline import STAGE_FACTORIES
from amodal_depth_ros.synthetic import generate
from amodal_depth_ros.synthetic.scene import SceneObject, box_in_front_of_wall, render
from amodal_depth_ros.synthetic.shapes import Box, Rectangle, rotation_y
from amodal_depth_ros.tools import cli


def tilted_wall_behind_box():
    """A wall turned 35 degrees about the vertical axis, 3 m away, half hidden by a box at 1.5 m."""
    _, intr = box_in_front_of_wall(160, 120)
    wall = SceneObject("wall", Rectangle(centre=(0.0, 0.0, 3.0), rotation=rotation_y(0.6), half_size=(6.0, 4.0)),
                       (0.7, 0.7, 0.7))
    box = SceneObject("box", Box(centre=(0.2, 0.0, 1.8), half_extents=(0.3, 0.3, 0.3)), (0.9, 0.1, 0.1))
    return render([wall, box], intr)


def depth_stage(name):
    return STAGE_FACTORIES["amodal_depth"][name](config.Settings.from_values())


def hidden_error(truth, stage, object_id):
    result = {inst.id: inst for inst in stage(truth.to_rgbd_frame(), truth.depth, truth.segmentation(),
                                              truth.occlusion(), truth.true_amodal_masks())}
    hidden = truth.hidden_mask(object_id)
    return np.abs(result[object_id].depth[hidden] - truth.object_depths[object_id - 1][hidden])


def test_baselines_on_a_fronto_parallel_wall_are_exact():
    truth = render(*box_in_front_of_wall(160, 120))
    wall = truth.id_of("wall")
    for name in ("nearest", "plane_fit"):
        assert hidden_error(truth, depth_stage(name), wall).max() < 1e-4, name
    # Telea works on the depth quantised to 16 bits of the crop's range
    assert hidden_error(truth, depth_stage("telea"), wall).max() < 1e-3


def test_on_a_tilted_wall_only_the_plane_fit_is_exact():
    truth = tilted_wall_behind_box()
    wall = truth.id_of("wall")
    assert hidden_error(truth, depth_stage("plane_fit"), wall).max() < 1e-3
    assert hidden_error(truth, depth_stage("nearest"), wall).mean() > 0.05
    assert hidden_error(truth, depth_stage("telea"), wall).mean() > 0.02


GEOMETRIC = {
    "segmentation.method": "geometric",
    "amodal_mask.method": "convex_hull",
    "amodal_depth.method": "plane_fit",
}


def test_harness_scores_the_tilted_wall():
    truth = tilted_wall_behind_box()
    table, kept = evaluate([truth], build_methods(GEOMETRIC, end_to_end=True), keep=lambda i, p: True)
    depth = table.summary()["depth"]
    assert depth["plane_fit"]["all"]["objects"] == 1               # the wall; the box is not hidden
    assert depth["plane_fit"]["all"]["aligned"]["abs_rel"] < 1e-3
    assert depth["nearest"]["all"]["aligned"]["abs_rel"] > 0.01
    # end to end the pipeline finds the wall itself and completes most of its hidden part
    assert depth[END_TO_END]["all"]["coverage"] > 0.8
    assert depth[END_TO_END]["all"]["raw"]["abs_rel"] < 0.01
    masks = table.summary()["mask"]
    assert masks["visible_only"]["all"]["occluded_iou"] == 0.0
    assert masks["convex_hull"]["all"]["iou"] > 0.99                # a rectangle is convex
    assert kept[0].targets == [truth.id_of("wall")]


def test_oracle_plane_fits_the_hidden_truth_itself():
    truth = tilted_wall_behind_box()
    wall = truth.id_of("wall")
    oracle, hidden = oracle_plane_depth(truth, wall), truth.hidden_mask(wall)
    assert np.abs(oracle[hidden] - truth.object_depths[wall - 1][hidden]).max() < 1e-4   # the wall is a plane
    visible = truth.visible_mask(wall)
    assert np.array_equal(oracle[visible], truth.depth[visible], equal_nan=True)
    assert np.isnan(oracle[~(visible | hidden)]).all()
    # A curved hidden truth is not planar: the reference keeps an error there.
    bent = truth.object_depths[wall - 1].copy()
    rows, cols = np.nonzero(hidden)
    bent[rows, cols] += 0.2 * ((cols - cols.mean()) / np.ptp(cols)) ** 2
    truth.object_depths[wall - 1] = bent
    assert np.abs(oracle_plane_depth(truth, wall)[hidden] - bent[hidden]).mean() > 1e-3
    methods = build_methods(GEOMETRIC, end_to_end=False, oracle=False)
    assert ORACLE_PLANE not in evaluate([tilted_wall_behind_box()], methods)[0].summary()["depth"]


def test_targets_skip_room_structure_and_unoccluded_objects():
    truth = generate(2, 160, 120)
    ids = targets(truth)
    assert ids and all(not truth.stuff[i - 1] for i in ids)
    assert all(truth.hidden_mask(i).any() for i in ids)


def test_matching_needs_half_overlap():
    truth = render(*box_in_front_of_wall(160, 120))
    stage = depth_stage("nearest")
    predicted = stage(truth.to_rgbd_frame(), truth.depth, truth.segmentation(), truth.occlusion(),
                      truth.true_amodal_masks())
    ids = [truth.id_of("wall"), truth.id_of("box")]
    matched = match_instances(predicted, truth, ids)
    assert {i: m.id for i, m in matched.items()} == {i: i for i in ids}
    box = predicted[1]   # moved by more than its width:
    shifted = AmodalInstance.from_frame(box.id, box.label, box.score, np.roll(box.visible_mask, 40, axis=1),
                                        np.roll(box.amodal_mask, 40, axis=1), box.occluded_by)
    assert match_instances([shifted], truth, [truth.id_of("box")]) == {truth.id_of("box"): None}


def run_eval(*args):
    return cli.main(["eval", *args])


def test_eval_command_on_synthetic_frames(tmp_path, capsys):
    assert (
        run_eval("synthetic:0-1", "--width", "160", "--height", "120", "--out", str(tmp_path), "--examples", "2") == 0
    )
    out = tmp_path / "synthetic_0-1"
    report = json.loads((out / "results.json").read_text())
    assert report["frames"] == 2
    # the baselines, the configured (default) method, the reference row and the pipeline end to end
    assert set(report["depth"]) == {"nearest", "telea", "plane_fit", "spade", ORACLE_PLANE, END_TO_END}
    abs_rel = {name: row["all"]["aligned"]["abs_rel"] for name, row in report["depth"].items()}
    assert abs_rel[ORACLE_PLANE] <= abs_rel["plane_fit"]   # it bounds every planar completion
    assert set(report["mask"]) == {"visible_only", "convex_hull", "learned", END_TO_END}
    assert report["depth"]["nearest"]["all"]["objects"] > 0
    assert 0.0 < report["depth"]["nearest"]["all"]["aligned"]["abs_rel"] < 0.5
    table = (out / "table.txt").read_text()
    assert "plane_fit" in table and "a reference, not a method" in table
    for png in [out / "abs_rel.png", *sorted((out / "examples").glob("*.png"))]:
        assert cv2.imread(str(png)) is not None
    assert len(list((out / "examples").glob("*.png"))) >= 1
    assert "aligned" in capsys.readouterr().out
    # Segmentation rows (UOIS protocol): the configured segmenter and the geometric baseline.
    assert "geometric" in report["segmentation"]
    for method, row in report["segmentation"].items():
        assert row["frames"] == 2, method
        assert 0.0 < row["visible"]["overlap_f"] <= 1.0 and 0.0 <= row["visible"]["boundary_f"] <= 1.0
        assert row["order"]["pairs"] > 0 and row["order"]["matched"] <= row["order"]["pairs"]
    assert "instance segmentation" in table


def test_eval_scores_the_true_segmentation_as_perfect_and_table_tops_load(tmp_path):
    from amodal_depth_ros.datasets import open_dataset
    from amodal_depth_ros.evaluation import ResultTable, score_segmentation

    dataset = open_dataset("tabletop:3-4", 160, 120)
    assert dataset.count == 2 and dataset.name == "tabletop_3-4"
    table = ResultTable()
    for truth in dataset:
        table.add_segmentation("truth", score_segmentation(truth, truth.instance_ids, truth.occlusion(),
                                                           truth.true_amodal_masks()))
    row = table.summary()["segmentation"]["truth"]
    assert row["visible"]["overlap_f"] == 1.0 and row["amodal"]["overlap_f"] == 1.0
    assert row["order"]["accuracy"] == 1.0


def test_eval_command_on_a_ground_truth_bag(tmp_path):
    bag = tmp_path / "truth_bag"
    write_ground_truth_bag(bag, [tilted_wall_behind_box()])
    assert run_eval(str(bag), "--out", str(tmp_path / "eval"), "--no-pipeline") == 0
    report = json.loads((tmp_path / "eval" / "truth_bag" / "results.json").read_text())
    assert report["depth"]["plane_fit"]["all"]["objects"] == 1
    assert report["depth"]["plane_fit"]["all"]["aligned"]["abs_rel"] < 1e-3


def test_eval_command_refuses_unknown_datasets(tmp_path, capsys):
    assert run_eval("/no/such/set", "--out", str(tmp_path)) == 2
    assert "no such file" in capsys.readouterr().err


def test_real_occluder_benchmark_scores_every_hidden_pixel(tmp_path):
    """On a flat wall every baseline fills the occluder's region exactly; the pipeline finds the pasted occluder
    and the wall behind it; the command writes per-source and pooled figures and pictures."""
    from amodal_depth_ros.core import CameraIntrinsics
    from amodal_depth_ros.datasets.occluded_frames import occluded_frames
    from amodal_depth_ros.datasets.rgbd_folder import RGBDSample
    from amodal_depth_ros.evaluation.occluders import evaluate_occluders

    intr = CameraIntrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(150, 20, (120, 160, 3)), 0, 255).astype(np.uint8)
    wall = RGBDSample("wall", rgb, np.full((120, 160), 2.0, np.float32), intr)
    items = list(occluded_frames([wall], 2, seed=0, source="walls"))
    assert [i.name for i in items] == ["wall#0", "wall#1"]
    again = list(occluded_frames([wall], 2, seed=0, source="walls"))
    for item, same in zip(items, again, strict=True):
        assert np.array_equal(item.occluder, same.occluder)                 # deterministic
        hidden = item.hidden
        assert 0.03 < hidden.mean() < 0.2 and np.all(item.truth[hidden] == 2.0)
        assert np.all(item.frame.depth[item.occluder] < 2.0)                 # in front of what it hides
        assert np.array_equal(item.frame.depth[~item.occluder], wall.depth[~item.occluder])
    table, kept = evaluate_occluders(items, {}, config.Settings.from_values().amodal_depth, keep=1)
    summary = table.summary()
    assert set(summary) == {"all", "walls"} and len(kept) == 1
    for method in ("telea", "nearest", "plane_fit"):
        row = summary["all"][method]
        assert row["composites"] == 2 and row["coverage"] == 1.0 and row["abs_rel"] < 1e-3, (method, row)
    folder = tmp_path / "walls"
    folder.mkdir()
    import cv2
    cv2.imwrite(str(folder / "color.png"), rgb[..., ::-1])
    cv2.imwrite(str(folder / "depth.png"), np.full((120, 160), 2000, np.uint16))
    (folder / "intrinsics.json").write_text('{"fx": 100, "fy": 100, "cx": 79.5, "cy": 59.5, "depth_scale": 1000}')
    assert run_eval(f"occluders:{folder}", "--per-frame", "2", "--out", str(tmp_path / "out"), "--examples", "1") == 0
    report = json.loads((tmp_path / "out" / "occluders_walls" / "results.json").read_text())
    rows = report["occluders"]["all"]
    assert set(rows) == {"telea", "nearest", "plane_fit", END_TO_END, f"{END_TO_END}_geometric"}
    assert rows[END_TO_END]["coverage"] > 0.5 and rows[END_TO_END]["abs_rel"] < 0.05, rows[END_TO_END]
    assert cv2.imread(str(tmp_path / "out" / "occluders_walls" / "examples" / "000.png")) is not None
