"""The learned segmentation stage: decoding outlines into instances, learned occlusion votes, weights,
fallbacks, backends, and the training command."""
import json

import numpy as np
import pytest
import torch

from amodal_depth_ros.core import BoundaryDepthOrder, CameraIntrinsics, Segmentation
from amodal_depth_ros.core.config import Settings
from amodal_depth_ros.learned.segmentation import LearnedSegmenter, decode
from amodal_depth_ros.networks import SegmentationNet, segmentation_inputs
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render
from amodal_depth_ros.tools import cli


def segmenter(weights, params) -> LearnedSegmenter:
    """The learned segmentation stage with ``weights`` and the given parameters (the rest at their defaults)."""
    settings = Settings.from_values({"segmentation.weights": str(weights), **params})
    return LearnedSegmenter(settings.segmentation, settings.inference)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("segmentation") / "segmentation.pt"
    torch.manual_seed(0)
    torch.save({"model": SegmentationNet().state_dict(), "meta": {}}, path)
    return path


def two_halves(split_col: int = 33):
    """Network logits (16 x 32) with an outline at columns 15-16; full-resolution depth (32 x 64) that steps
    from 1 m to 2 m at ``split_col``, near but not on the outline's position at full resolution."""
    logits = np.full((3, 16, 32), -6.0, np.float32)
    logits[0, :, 15:17] = 6.0                      # outline
    logits[1, :, 16:] = 6.0                        # the right half is room structure
    logits[2, :, 15] = 6.0                         # the left side of the outline hides the right
    depth = np.ones((32, 64), np.float32)
    depth[:, split_col:] = 2.0
    return logits, depth


def test_decoding_puts_instance_borders_on_the_full_resolution_depth_edge():
    logits, depth = two_halves(split_col=33)
    segmentation = decode(logits, depth, min_core=4, depth_jump=0.04)
    assert segmentation.ids.tolist() == [1, 2]
    left, right = segmentation.labels[:, :33], segmentation.labels[:, 33:]
    assert (left == left[0, 0]).all() and (right == right[0, 0]).all() and left[0, 0] != right[0, 0]
    assert [segmentation.kind(k) for k in range(2)] == ["object", "structure"]
    assert segmentation.occluder.shape == depth.shape and segmentation.occluder[0, 31] > 0.9


def test_a_depth_step_separates_surfaces_where_the_outline_is_faint():
    logits, depth = two_halves(split_col=32)
    logits[0, :, 15:17] = -1.0                     # probability 0.27: below the default outline threshold, 0.3
    assert decode(logits, np.ones_like(depth), min_core=4, depth_jump=0.04).ids.size == 2   # structure changes
    logits[1] = -6.0                               # ... and without that, one surface
    assert decode(logits, np.ones_like(depth), min_core=4, depth_jump=0.04).ids.size == 1
    split = decode(logits, depth, min_core=4, depth_jump=0.04)   # unless the depth steps
    assert split.ids.tolist() == [1, 2]
    assert (split.labels[:, :32] == split.labels[0, 0]).all() and (split.labels[:, 32:] == split.labels[0, 63]).all()
    # A lower threshold makes the faint outline one.
    assert decode(logits, np.ones_like(depth), min_core=4, depth_jump=0.04, outline_threshold=0.2).ids.size == 2


def test_small_cores_and_pixels_without_depth():
    logits, depth = two_halves()
    logits[0, 4:6, 4:6] = 6.0                      # an outline ring around a 1-pixel core: too small
    logits[0, 5, 5] = -6.0
    depth[0:4, 0:4] = np.nan
    segmentation = decode(logits, depth, min_core=4, depth_jump=0.04)
    assert segmentation.ids.size == 2             # the speck joined its neighbour
    assert (segmentation.labels[0:4, 0:4] > 0).all()   # no depth there, but inside the left core


def test_learned_votes_order_neighbours_that_depth_cannot():
    labels = np.zeros((20, 20), np.int32)
    labels[:, :10], labels[:, 10:] = 1, 2
    depth = np.full((20, 20), 1.0, np.float32)     # continuous: a contact, no depth step
    occluder = np.zeros((20, 20), np.float32)
    occluder[:, 8:10] = 0.9                        # 1's side of the outline hides 2
    order = BoundaryDepthOrder(Settings.from_values().occlusion)
    plain = Segmentation(labels, np.array([1, 2], np.int32), np.ones(2, np.float32))
    intrinsics = CameraIntrinsics(20.0, 20.0, 9.5, 9.5, 20, 20)
    assert order(plain, depth, intrinsics).edges.size == 0
    learned = Segmentation(labels, plain.ids, plain.scores, occluder=occluder)
    assert order(learned, depth, intrinsics).edges.tolist() == [[1, 2]]


def test_objects_hide_the_room_surface_whose_plane_runs_on_behind_them():
    """A wall (structure) seen only at the bottom of the frame; two objects with no outline on it, one in front of
    its plane, one behind it (outside the room). Only the one in front hides the wall, with its pixel count as
    support; and never against the boundary votes."""
    intrinsics = CameraIntrinsics(80.0, 80.0, 39.5, 39.5, 80, 80)
    labels = np.zeros((80, 80), np.int32)
    depth = np.full((80, 80), np.nan, np.float32)
    labels[50:], depth[50:] = 1, 2.0                         # the wall, 2 m away: its plane spans the frame
    labels[5:25, 5:25], depth[5:25, 5:25] = 2, 1.0           # in front of the wall's plane
    labels[5:25, 50:70], depth[5:25, 50:70] = 3, 3.0         # behind it
    order = BoundaryDepthOrder(Settings.from_values().occlusion)
    segmentation = Segmentation(labels, np.array([1, 2, 3], np.int32), np.ones(3, np.float32),
                                structure=np.array([True, False, False]))
    graph = order(segmentation, depth, intrinsics)
    assert graph.edges.tolist() == [[2, 1]] and graph.support.tolist() == [100]   # 20x20 pixels on a 2-pixel grid
    # Objects only: without a structure instance the same frame has no edge.
    assert order(Segmentation(labels, segmentation.ids, segmentation.scores), depth, intrinsics).edges.size == 0
    # An outline on which the wall is voted in front of the object keeps the object in front of nothing.
    labels[25:50, 5:25], depth[25:50, 5:25] = 2, 2.5
    graph = order(segmentation, depth, intrinsics)
    assert graph.edges.tolist() == [[1, 2]]


def test_stage_partitions_the_frame_and_falls_back_without_weights(random_weights, tmp_path):
    truth = render(*box_in_front_of_wall(160, 120))
    stage = segmenter(random_weights, {"inference.device": "cpu", "segmentation.network_size": 160})
    segmentation = stage(truth.to_rgbd_frame(), truth.depth)
    assert segmentation.labels.shape == truth.depth.shape and segmentation.occluder.shape == truth.depth.shape
    assert {segmentation.kind(k) for k in range(segmentation.ids.size)} <= {"object", "structure"}
    assert segmentation.structure is not None and segmentation.structure.shape == segmentation.ids.shape
    # The default backend ('auto') on the CPU: onnxruntime, once the graph of the first frame's shape is exported.
    # Random weights have no int8 ranges: fp32, and the status says why.
    assert stage.wait_ready(120) and stage.backend_status.startswith("onnxruntime (CPUExecutionProvider, fp32: no int8")
    assert stage.backend_error == ""
    missing = str(tmp_path / "none.pt")
    pipeline = AmodalDepthPipeline({"segmentation.method": "learned", "segmentation.weights": missing})
    assert type(pipeline.segmentation).__name__ == "GeometricSegmenter"
    assert "segmentation" in pipeline.fallbacks and "none.pt" in pipeline.fallbacks["segmentation"]


def test_onnxruntime_backend_matches_torch_per_camera_shape(random_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path / "cache"))
    truth = render(*box_in_front_of_wall(160, 120))
    frame = truth.to_rgbd_frame()
    small = {"inference.device": "cpu", "segmentation.network_size": 160}
    reference = segmenter(random_weights, {**small, "inference.backend": "torch"})(frame, truth.depth)
    stage = segmenter(random_weights, {**small, "inference.backend": "onnxruntime"})
    first = stage(frame, truth.depth)   # served by torch while the 128x160 graph is exported
    assert stage.backend_status.startswith("building onnxruntime graph 128x160, serving torch on cpu")
    assert stage.wait_ready(120) and stage.backend_status.startswith("onnxruntime (CPUExecutionProvider, fp32")
    served = stage(frame, truth.depth)
    for result in (first, served):
        assert np.array_equal(result.labels, reference.labels)
        assert np.abs(result.occluder - reference.occluder).max() < 1e-4
    assert len(list((tmp_path / "cache" / "onnx").glob("segmentation-*-128x160-*.onnx"))) == 1


def test_training_command_learns_and_resumes_exactly(tmp_path, monkeypatch):
    from amodal_depth_ros.training import segmentation_trainer

    common = ["train", "--network", "segmentation", "--train-seeds", "10000-10002", "--tabletop-seeds", "10000-10002",
              "--val-seeds", "1000000-1000000", "--width", "128", "--height", "96", "--crop", "64x48", "--batch", "2",
              "--workers", "1", "--checkpoint-every", "2", "--steps", "4", "--device", "cpu"]
    assert cli.main(common + ["--out", str(tmp_path / "straight")]) == 0
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert [h["step"] for h in summary["history"]] == [2, 4]
    assert all(np.isfinite(h["total"]) for h in summary["history"])
    card = (tmp_path / "straight" / "MODEL_CARD.segmentation.md").read_text()
    assert "--network segmentation" in card and "10000..10002" in card

    # A run killed after its step-2 checkpoint, then resumed, ends exactly where the straight run did.
    validate, calls = segmentation_trainer.validate, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return validate(*args)
    monkeypatch.setattr(segmentation_trainer, "validate", interrupted)
    assert cli.main(common + ["--out", str(tmp_path / "resumed")]) == 130   # as Ctrl-C would
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(segmentation_trainer, "validate", validate)
    assert cli.main(common + ["--out", str(tmp_path / "resumed"), "--resume"]) == 0
    straight = torch.load(tmp_path / "straight" / "segmentation.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "resumed" / "segmentation.pt", weights_only=True)["model"]
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    runs = json.loads((tmp_path / "resumed" / "summary.json").read_text())["runs"]
    assert [r["from_step"] for r in runs] == [0, 2] and "--resume" in runs[1]["argv"]
    card = (tmp_path / "resumed" / "MODEL_CARD.segmentation.md").read_text()
    assert "--resume    # from step 2" in card


def test_training_command_refuses_eval_seeds_and_bad_crops(tmp_path, capsys):
    base = ["train", "--network", "segmentation", "--out", str(tmp_path)]
    assert cli.main(base + ["--tabletop-seeds", "0-99"]) == 2
    assert cli.main(base + ["--crop", "50x50"]) == 2
    assert "multiples of 16" in capsys.readouterr().err


# --- on a CUDA GPU (scripts/gpu_check.sh) -----------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.cuda
@needs_cuda
def test_segmentation_on_cuda_fp16_matches_the_cpu(random_weights):
    truth = render(*box_in_front_of_wall(320, 240))
    x = segmentation_inputs(truth.rgb, truth.depth, truth.intrinsics, (320, 240))[None]
    cpu = segmenter(random_weights, {"inference.device": "cpu"})
    gpu = segmenter(random_weights, {"inference.device": "cuda", "inference.precision": "fp16"})
    assert gpu.backend_status == "torch on cuda (fp16)"
    expected = cpu.run(x)
    assert np.abs(gpu.run(x) - expected).max() < 2e-2 * np.abs(expected).max() + 1e-2
    fp32 = segmenter(random_weights, {"inference.device": "cuda", "inference.precision": "fp32"})
    assert np.abs(fp32.run(x) - expected).max() < 1e-3 * np.abs(expected).max() + 1e-4


@pytest.mark.cuda
@pytest.mark.skipif(bool(__import__("amodal_depth_ros.runtime.tensorrt_engine", fromlist=["x"]).tensorrt_unavailable()),
                    reason="tensorrt cannot run here")
def test_segmentation_tensorrt_engine_takes_over_and_matches_torch(random_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path / "cache"))
    truth = render(*box_in_front_of_wall(320, 240))
    x = segmentation_inputs(truth.rgb, truth.depth, truth.intrinsics, (320, 240))[None]
    expected = segmenter(random_weights, {"inference.device": "cpu"}).run(x)
    stage = segmenter(random_weights, {"inference.device": "cuda", "inference.backend": "tensorrt",
                                       "inference.precision": "fp16"})
    stage.run(x)
    assert stage.wait_ready(600) and stage.backend_error == ""
    assert stage.backend_status.startswith("tensorrt")
    assert np.abs(stage.run(x) - expected).max() < 2e-2 * np.abs(expected).max() + 1e-2


def test_composite_sets_join_the_training_frames_partly_labelled(tmp_path):
    from amodal_depth_ros.datasets import RGBDSample, build_composites, write_composite_set
    from amodal_depth_ros.synthetic import random_scene
    from amodal_depth_ros.training.segmentation_samples import UNKNOWN, FrameCache

    frames = [render(*random_scene(seed, 160, 120)) for seed in (0, 1)]
    sources = [RGBDSample(f"f{i}", f.rgb, f.depth, f.intrinsics) for i, f in enumerate(frames)]
    items = list(build_composites(sources, per_frame=2, seed=0))
    write_composite_set(tmp_path / "set", items, "test", 0, previews=0)
    out = tmp_path / "train"
    assert cli.main(["train", "--network", "segmentation", "--out", str(out), "--train-seeds", "10000-10000",
                     "--tabletop-seeds", "10000-10000", "--val-seeds", "1000000-1000000", "--width", "128",
                     "--height", "96", "--crop", "64x48", "--batch", "2", "--workers", "1", "--steps", "2",
                     "--device", "cpu", "--composites", str(tmp_path / "set"), "--composite-share", "0.5"]) == 0
    cache = FrameCache.open(out / "frames")
    assert len(cache) == 2 + len(items) and not cache.rendered[2:].any()
    composite = cache.ids[2]
    assert set(np.unique(composite)) == {0, 1, 2}                   # target, occluder, the rest unlabelled
    assert (cache.structure[2] == UNKNOWN).all()                    # a real frame's structure is not known
    assert set(np.unique(cache.occluder[2][cache.occluder[2] != UNKNOWN])) == {0, 1}   # the occluder hides the target
    assert "composite sets" in (out / "MODEL_CARD.segmentation.md").read_text()
