"""Learned amodal stages: crops, peeling order, weights loading and fallbacks, stage invariants, training."""
import json

import numpy as np
import pytest
import torch

from amodal_depth_ros.core import OcclusionGraph
from amodal_depth_ros.core.config import Settings
from amodal_depth_ros.errors import ModelLoadError
from amodal_depth_ros.learned.amodal import (
    WEIGHTS_DIR,
    LearnedAmodalMask,
    SpadeAmodalDepth,
    load_weights,
    peeling_levels,
)
from amodal_depth_ros.networks import AmodalMaskNet, SpadeAmodalDepthNet
from amodal_depth_ros.networks.crops import CROP_SIZE, INPUT_CHANNELS, CropBox, peeled_front
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.synthetic import generate
from amodal_depth_ros.tools import cli
from amodal_depth_ros.training import frame_samples


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Weight files of untrained networks in the format `amodal-depth train` writes."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name, net in (("mask.pt", AmodalMaskNet()), ("depth.pt", SpadeAmodalDepthNet())):
        torch.save({"model": net.state_dict(), "meta": {}}, folder / name)
    return folder


def test_crop_round_trip_and_image_border():
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    field = 1.0 + 0.01 * xx + 0.02 * yy
    mask = np.zeros((120, 160), bool)
    mask[40:80, 60:100] = True
    box = CropBox.around(mask, 0.25)
    crop = box.take(field, np.nan)   # nearest: up to a pixel and a third of the window off
    assert crop.shape == (CROP_SIZE, CROP_SIZE)
    window, back = box.put(crop, field.shape)
    assert np.abs(back - field[window]).max() < 0.05
    corner = np.zeros((120, 160), bool)
    corner[:10, :10] = True
    edge_box = CropBox.around(corner, 1.0)
    taken = edge_box.take(np.ones((120, 160), np.float32), 0.0)
    assert edge_box.top < 0 and edge_box.left < 0
    assert taken[0, 0] == 0.0 and taken[-1, -1] == 1.0   # outside the image: the fill value


def test_peeling_levels_follow_occlusion_chains_and_cut_cycles():
    chain = OcclusionGraph(np.array([[1, 2], [2, 3], [5, 3]], np.int32), np.ones(3, np.int32))
    assert peeling_levels([1, 2, 3, 4, 5], chain) == [[1, 4, 5], [2], [3]]
    cycle = OcclusionGraph(np.array([[1, 2], [2, 1]], np.int32), np.ones(2, np.int32))
    levels = peeling_levels([1, 2], cycle)
    assert sorted(sum(levels, [])) == [1, 2] and len(levels) == 2


def test_front_depth_peels_in_the_deepest_surface_in_front():
    observed = np.full((2, 3), 1.0, np.float32)
    whole = (0, 0, 2, 3)
    a = np.array([[np.nan, 2.0, 2.0], [np.nan, np.nan, np.nan]], np.float32)
    b = np.array([[np.nan, 1.5, 3.0], [np.nan, np.nan, 0.5]], np.float32)
    assert np.array_equal(peeled_front(observed, whole, [(whole, a), (whole, b)]), [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    assert peeled_front(observed, whole, []) is observed
    # Surfaces held in windows of their own: only their overlap with the window counts.
    assert np.array_equal(peeled_front(observed, whole, [((0, 1, 1, 3), a[:1, 1:]), ((1, 2, 2, 3), b[1:, 2:]),
                                                         ((5, 5, 6, 6), np.full((1, 1), 9.0, np.float32))]),
                          [[1.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    # The window itself may be a part of the frame: (row 1, col 1) on.
    assert np.array_equal(peeled_front(observed[1:, 1:], (1, 1, 2, 3), [((0, 1, 2, 3), b[:, 1:])]), [[1.0, 1.0]])


def test_weight_files_missing_truncated_or_foreign_are_clear_errors(random_weights, tmp_path):
    with pytest.raises(ModelLoadError, match="do not exist"):
        load_weights(AmodalMaskNet(), tmp_path / "none.pt", "amodal mask")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((random_weights / "mask.pt").read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_weights(AmodalMaskNet(), truncated, "amodal mask")
    with pytest.raises(ModelLoadError, match="do not fit the AmodalMaskNet"):
        load_weights(AmodalMaskNet(), random_weights / "depth.pt", "amodal mask")


def test_pipeline_falls_back_to_geometry_when_weights_cannot_load(tmp_path):
    pipeline = AmodalDepthPipeline({"amodal_mask.method": "learned", "amodal_depth.method": "spade",
                                    "amodal_mask.weights": str(tmp_path / "missing.pt"),
                                    "amodal_depth.weights": str(tmp_path / "missing.pt")})
    assert type(pipeline.amodal_mask).__name__ == "ConvexHullCompletion"
    assert type(pipeline.amodal_depth).__name__ == "PlaneFitCompletion"
    assert set(pipeline.fallbacks) == {"amodal_mask", "amodal_depth"}
    assert "missing.pt do not exist" in pipeline.fallbacks["amodal_mask"]
    truth = generate(1, 160, 120)
    assert pipeline(truth.to_rgbd_frame()).instances   # and it still works


def test_learned_stages_keep_their_promises_even_untrained(random_weights):
    truth = generate(4, 160, 120)
    seg, occlusion = truth.segmentation(), truth.occlusion()
    s = Settings.from_values({"amodal_mask.weights": str(random_weights / "mask.pt"), "inference.device": "cpu"})
    masks = LearnedAmodalMask(s.amodal_mask, s.inference)(seg, occlusion, truth.depth)
    for i in seg.ids.tolist():
        visible = truth.visible_mask(i)
        assert not (visible & ~masks[i]).any()
        in_front = np.zeros_like(visible)
        for a in occlusion.ancestors_of(i):
            in_front |= masks[a]
        assert not (masks[i] & ~visible & ~in_front).any()   # hidden parts only under occluders (PCNet-M)
    s = Settings.from_values({"amodal_depth.weights": str(random_weights / "depth.pt"), "amodal_depth.min_gap": 0.01,
                              "amodal_depth.planar_tolerance": 0.0, "inference.device": "cpu"})
    stage = SpadeAmodalDepth(s.amodal_depth, s.inference)
    instances = stage(truth.to_rgbd_frame(), truth.depth, seg, occlusion, truth.true_amodal_masks())
    completed = 0
    for inst in instances:
        assert np.array_equal(inst.depth[inst.visible_mask], truth.depth[inst.visible_mask], equal_nan=True)
        hidden = inst.hidden_mask
        completed += int(hidden.sum())
        assert np.isfinite(inst.depth[hidden]).all() and (inst.depth[hidden] >= truth.depth[hidden] + 0.01 - 1e-6).all()
    assert completed > 100


def test_training_samples_match_the_ground_truth():
    truth = generate(10_001, 160, 120)
    batch = frame_samples(truth, np.random.default_rng(0), noise=False)
    assert batch is not None and batch.mask_inputs.shape[1:] == (INPUT_CHANNELS, CROP_SIZE, CROP_SIZE)
    visible, target = batch.mask_inputs[:, 0] > 0.5, batch.mask_targets > 0.5
    assert (visible <= target).all()                       # the amodal mask contains the visible one
    assert (batch.depth_valid <= batch.depth_amodal).all()
    assert (batch.depth_valid.sum(axis=(1, 2)) > 0).all()


def test_training_learns_and_resumes(tmp_path):
    args = ["train", "--out", str(tmp_path), "--train-seeds", "10000-10011", "--val-seeds", "1000000-1000003",
            "--batch", "16", "--workers", "1", "--checkpoint-every", "15", "--lr", "0.003", "--width", "160",
            "--height", "120"]
    assert cli.main(args + ["--steps", "15"]) == 0
    assert cli.main(args + ["--steps", "30", "--resume"]) == 0
    history = json.loads((tmp_path / "summary.json").read_text())["history"]
    assert [h["step"] for h in history] == [15, 30]
    assert history[-1]["depth"] < history[0]["depth"] * 1.05 or history[-1]["mask"] < history[0]["mask"]
    load_weights(AmodalMaskNet(), tmp_path / "amodal_mask.pt", "amodal mask")
    load_weights(SpadeAmodalDepthNet(), tmp_path / "amodal_depth.pt", "amodal depth")


@pytest.mark.skipif(not (WEIGHTS_DIR / "amodal_depth.pt").is_file(), reason="no weights shipped yet")
def test_fine_tuning_starts_from_the_given_weights(tmp_path, capsys):
    args = ["train", "--out", str(tmp_path), "--train-seeds", "10000-10003", "--val-seeds", "1000000-1000001",
            "--batch", "4", "--workers", "1", "--steps", "1", "--lr", "1e-9", "--width", "160", "--height", "120"]
    assert cli.main(args + ["--init", str(tmp_path / "nowhere")]) == 2
    assert "lacks amodal_mask.pt" in capsys.readouterr().err
    assert cli.main(args + ["--composite-share", "0.5"]) == 2            # a share of no composite set
    assert cli.main(args + ["--init", "package"]) == 0
    for name, net in (("amodal_mask.pt", AmodalMaskNet()), ("amodal_depth.pt", SpadeAmodalDepthNet())):
        shipped = dict(load_weights(net, WEIGHTS_DIR / name, name).named_parameters())
        tuned = dict(load_weights(type(net)(), tmp_path / name, name).named_parameters())
        assert all(torch.allclose(shipped[k], tuned[k], atol=1e-6) for k in shipped), name   # one step of lr 1e-9
    assert "Initialised from** the package's shipped weights" in (tmp_path / "MODEL_CARD.md").read_text()


def test_composite_share_sets_the_mix_of_each_batch():
    from amodal_depth_ros.training.trainer import TrainConfig, _draw

    rng = np.random.default_rng(0)
    shared = np.concatenate([_draw(rng, TrainConfig(batch=64, composite_share=0.25), 1000, 1100) for _ in range(200)])
    assert shared.min() >= 0 and shared.max() < 1100
    assert abs((shared >= 1000).mean() - 0.25) < 0.02                  # a quarter from the 100 composites
    proportional = np.concatenate([_draw(rng, TrainConfig(batch=64), 1000, 1100) for _ in range(200)])
    assert abs((proportional >= 1000).mean() - 100 / 1100) < 0.02       # share 0: in proportion to size


def test_segmented_samples_are_the_mask_stage_inputs_with_true_targets():
    from amodal_depth_ros.evaluation.harness import match_visible, targets
    from amodal_depth_ros.training import segmented_samples

    truth = generate(15_000, 320, 240)
    pipeline = AmodalDepthPipeline()
    batch = segmented_samples(truth, pipeline, np.random.default_rng(0))
    assert batch is not None and batch.mask_inputs.shape[1:] == (INPUT_CHANNELS, CROP_SIZE, CROP_SIZE)
    visible, occluder, target = batch.mask_inputs[:, 0] > 0.5, batch.mask_inputs[:, 1] > 0.5, batch.mask_targets > 0.5
    assert (visible <= target).all() and occluder.any(axis=(1, 2)).all()   # only instances the network completes
    assert (target & occluder).any()                                       # hidden parts to learn
    # The inputs are the stage's own: recording them does not change its masks.
    frame = truth.to_rgbd_frame()
    segmentation = pipeline.segmentation(frame, truth.depth)
    occlusion = pipeline.occlusion(segmentation, truth.depth, truth.intrinsics)
    record: dict = {}
    recorded = pipeline.amodal_mask(segmentation, occlusion, truth.depth, record)
    plain = pipeline.amodal_mask(segmentation, occlusion, truth.depth)
    assert record and all(np.array_equal(recorded[i], plain[i]) for i in segmentation.ids.tolist())
    # Matched to the truth by visible overlap: every recorded instance that matches a target is the target's.
    ids = targets(truth, include_stuff=True)
    matched = match_visible([segmentation.labels == k for k in record], truth, ids)
    assert sum(k is not None for k in matched.values()) >= len(batch) // 2


def test_segmented_share_and_mask_only_fine_tuning(tmp_path, capsys):
    from amodal_depth_ros.training.trainer import TrainConfig, _draw

    rng = np.random.default_rng(0)
    drawn = np.concatenate([_draw(rng, TrainConfig(batch=64, segmented_share=0.5), 1000, 1200, 100)
                            for _ in range(200)])
    assert drawn.min() >= 0 and drawn.max() < 1200 and abs((drawn >= 1100).mean() - 0.5) < 0.02
    args = ["train", "--out", str(tmp_path), "--train-seeds", "10000-10003", "--val-seeds", "1000000-1000001",
            "--batch", "8", "--workers", "1", "--steps", "2", "--lr", "1e-3", "--width", "160", "--height", "120"]
    assert cli.main(args + ["--segmented-share", "0.5"]) == 2              # a share of no segmented rooms
    assert cli.main(args + ["--segmented", "0-9"]) == 2                    # evaluation rooms
    assert "held out" in capsys.readouterr().err
    assert cli.main(args + ["--init", "package", "--mask-only", "--segmented", "15000-15003",
                            "--segmented-share", "0.5"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["segmented_samples"] > 0
    shipped = dict(load_weights(SpadeAmodalDepthNet(), WEIGHTS_DIR / "amodal_depth.pt", "d").named_parameters())
    tuned = dict(load_weights(SpadeAmodalDepthNet(), tmp_path / "amodal_depth.pt", "d").named_parameters())
    assert all(torch.equal(shipped[k], tuned[k]) for k in shipped)       # the depth network as initialised
    shipped = dict(load_weights(AmodalMaskNet(), WEIGHTS_DIR / "amodal_mask.pt", "m").named_parameters())
    tuned = dict(load_weights(AmodalMaskNet(), tmp_path / "amodal_mask.pt", "m").named_parameters())
    assert not all(torch.equal(shipped[k], tuned[k]) for k in shipped)
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "amodal mask network only" in card and "learned segmentation" in card


def test_training_refuses_eval_seeds(tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path), "--train-seeds", "0-99"]) == 2
    assert "held out" in capsys.readouterr().err


LEARNED = {"amodal_mask.method": "learned", "amodal_depth.method": "spade"}


@pytest.mark.skipif(not (WEIGHTS_DIR / "amodal_depth.pt").is_file(), reason="no weights shipped yet")
def test_shipped_weights_load_when_selected():
    pipeline = AmodalDepthPipeline(LEARNED)
    assert pipeline.fallbacks == {}
    assert type(pipeline.amodal_mask).__name__ == "LearnedAmodalMask"
    assert type(pipeline.amodal_depth).__name__ == "SpadeAmodalDepth"


def test_composite_sets_add_real_image_samples(tmp_path):
    from amodal_depth_ros.datasets import RGBDSample, build_composites, write_composite_set
    from amodal_depth_ros.synthetic import random_scene, render
    from amodal_depth_ros.training.trainer import composite_samples

    frames = [render(*random_scene(seed, 160, 120)) for seed in (0, 1)]
    sources = [RGBDSample(f"f{i}", f.rgb, f.depth, f.intrinsics) for i, f in enumerate(frames)]
    items = list(build_composites(sources, per_frame=3, seed=0))
    assert items
    write_composite_set(tmp_path / "set", items, "test", 0, previews=0)
    batches = composite_samples((str(tmp_path / "set"),), seed=0)
    assert sum(len(b) for b in batches) == len(items)        # one target per composite
    for batch in batches:
        occluder = batch.mask_inputs[:, 1] > 0.5
        assert occluder.any() and ((batch.mask_targets > 0.5) >= (batch.mask_inputs[:, 0] > 0.5)).all()


@pytest.mark.skipif(not (WEIGHTS_DIR / "amodal_depth.pt").is_file(), reason="no weights shipped yet")
def test_shipped_networks_complete_a_wall_behind_a_box():
    from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render

    truth = render(*box_in_front_of_wall(320, 240))
    behind_box = truth.hidden_mask(truth.id_of("wall"))

    def wall_error(params):
        result = AmodalDepthPipeline({**LEARNED, **params})(truth.to_rgbd_frame())
        wall = [inst for inst in result.instances if (inst.hidden_mask & behind_box).sum() > 0.9 * behind_box.sum()]
        assert len(wall) == 1                                               # the learned mask covers the hidden wall
        return np.abs(wall[0].depth[behind_box] - 3.0)

    # The wall is large and planar: extended as its plane, exactly.
    assert wall_error({}).max() < 1e-3
    # The network alone, from its coarse crop of the wall.
    error = wall_error({"amodal_depth.planar_tolerance": 0.0})
    assert np.median(error) < 0.04 and error.max() < 0.15                  # 1.3 % / 5 % of 3 m


@pytest.mark.skipif(not (WEIGHTS_DIR / "amodal_depth.pt").is_file(), reason="no weights shipped yet")
def test_shipped_networks_beat_the_baselines_on_held_out_rooms():
    from amodal_depth_ros.evaluation import build_methods, evaluate

    table, _ = evaluate(
        (generate(seed, 320, 240) for seed in range(9000, 9012)), build_methods(LEARNED, end_to_end=False)
    )
    depth, mask = table.summary()["depth"], table.summary()["mask"]
    best_baseline = min(depth[m]["all"]["aligned"]["abs_rel"] for m in ("nearest", "telea", "plane_fit"))
    assert depth["spade"]["all"]["aligned"]["abs_rel"] < best_baseline
    assert mask["learned"]["all"]["occluded_iou"] > mask["convex_hull"]["all"]["occluded_iou"] + 0.1


def test_nearest_fill_extends_the_visible_depth_and_keeps_it():
    from amodal_depth_ros.networks.crops import DEPTH_CHANNELS, FILL_CHANNEL, INPUT_CHANNELS, with_nearest_fill

    crops = np.zeros((2, INPUT_CHANNELS, 8, 8), np.float32)
    crops[0, 0, :, :3] = crops[0, 3, :, :3] = 1.0       # visible, valid: columns 0-2 at 0.1, ...
    crops[0, 2, :, :3] = 0.1
    crops[0, 0, :, 6:] = crops[0, 3, :, 6:] = 1.0       # ... columns 6-7 at -0.2
    crops[0, 2, :, 6:] = -0.2
    crops[0, 2, :, 3:6] = 0.7                          # front depth of an occluder: not the object's
    filled = with_nearest_fill(crops)
    assert filled.shape == (2, DEPTH_CHANNELS, 8, 8)
    np.testing.assert_array_equal(filled[:, :INPUT_CHANNELS], crops)
    fill = filled[0, FILL_CHANNEL]
    assert (fill[:, :4] == np.float32(0.1)).all() and (fill[:, 5:] == np.float32(-0.2)).all()
    assert (filled[1, FILL_CHANNEL] == 0).all()        # nothing visible: z0 (log ratio 0)


def test_the_nearer_room_surface_ends_the_farther_where_their_hidden_parts_meet():
    from amodal_depth_ros.learned.amodal import nearest_room_surface

    visible = np.zeros((4, 6), bool)
    hidden_all = np.ones((4, 6), bool)
    floor = np.full((4, 6), 2.0, np.float32)          # hidden behind a desk, 2 m away
    wall = np.full((4, 6), 3.0, np.float32)           # the wall behind the desk, 3 m: below the floor line there
    wall[:, :2] = 1.5                                 # ... except where it is nearer (not a room's shape, a test's)
    crops = {1: (visible, hidden_all, floor), 2: (visible.copy(), hidden_all.copy(), wall)}
    # The wall's window starts one column to the right: only the overlap is compared.
    nearest_room_surface([1, 2], {1: (0, 0, 4, 6), 2: (0, 1, 4, 7)}, crops)
    assert np.isnan(wall[:, 2:5]).all() and np.isfinite(wall[:, 5]).all()     # farther than the floor: gone
    assert (wall[:, :2] == 1.5).all() and np.isnan(floor[:, 1:3]).all()       # nearer: the floor gives way
    assert (floor[:, 0] == 2.0).all() and (floor[:, 3:] == 2.0).all()


def test_network_takes_the_largest_hidden_parts_up_to_its_cap():
    """amodal_depth.max_instances: the network completes at most that many hidden parts, the largest; every
    other hidden part still gets depth (the nearest visible one)."""
    from amodal_depth_ros.tools.calibrate import RecordingRunner

    truth = generate(4, 320, 240)
    seg, occlusion, masks = truth.segmentation(), truth.occlusion(), truth.true_amodal_masks()
    parts = sum(int((masks[i] & ~truth.visible_mask(i)).any()) for i in seg.ids.tolist())
    assert parts >= 4

    def network_crops(cap: int) -> int:
        s = Settings.from_values({"inference.device": "cpu", "amodal_depth.planar_tolerance": 0.0,
                                  "amodal_depth.max_instances": cap})
        stage = SpadeAmodalDepth(s.amodal_depth, s.inference)
        stage.run = recording = RecordingRunner(stage.run)
        for inst in stage(truth.to_rgbd_frame(), truth.depth, seg, occlusion, masks):
            assert np.isfinite(inst.depth[inst.hidden_mask]).all()
        return sum(len(c) for c in recording.calls)

    assert network_crops(100) == parts and network_crops(2) == 2 and network_crops(0) == 0
