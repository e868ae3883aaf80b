"""Ground-truth frames on disk and in bags, and the dataset names the tools accept."""
import numpy as np
import pytest

from amodal_depth_ros.datasets import open_dataset, parse_seeds
from amodal_depth_ros.datasets.bag import (
    TOPICS,
    count_ground_truth_frames,
    read_ground_truth_bag,
    write_ground_truth_bag,
)
from amodal_depth_ros.groundtruth import GroundTruthFrame
from amodal_depth_ros.ros.bag import topics_of
from amodal_depth_ros.synthetic import generate

FIELDS = ("rgb", "depth", "instance_ids", "amodal_masks", "object_depths", "occlusion_pairs", "stuff")


@pytest.fixture(scope="module")
def frames():
    return [generate(seed, 160, 120) for seed in (0, 1)]


def test_frame_save_load_is_exact(frames, tmp_path):
    path = tmp_path / "f.npz"
    frames[0].save(path)
    back = GroundTruthFrame.load(path)
    for field in FIELDS:
        assert np.array_equal(getattr(back, field), getattr(frames[0], field), equal_nan=True), field
    assert back.names == frames[0].names and back.intrinsics == frames[0].intrinsics


def test_truncated_frame_file_is_a_clear_error(frames, tmp_path):
    path = tmp_path / "f.npz"
    frames[0].save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable ground-truth frame"):
        GroundTruthFrame.load(path)


def test_true_segmentation_occlusion_and_masks(frames):
    frame = frames[0]
    seg = frame.segmentation()
    assert set(seg.ids.tolist()) == set(np.unique(frame.instance_ids).tolist()) - {0}
    occlusion = frame.occlusion()
    assert occlusion.edges.tolist() == frame.occlusion_pairs.tolist()
    assert (occlusion.support > 0).all()
    masks = frame.true_amodal_masks()
    assert set(masks) == set(seg.ids.tolist())
    assert all(np.array_equal(masks[i], frame.amodal_mask(i)) for i in masks)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_ground_truth_bag_round_trip(frames, tmp_path, storage):
    path = tmp_path / f"gt_{storage}"
    assert write_ground_truth_bag(path, frames, storage) == 2
    topics = topics_of(path)
    assert topics[TOPICS["truth"]] == ("amodal_depth_ros/msg/AmodalInstanceArray", 2)
    assert topics[TOPICS["image"]] == ("sensor_msgs/msg/Image", 2)
    assert count_ground_truth_frames(path) == 2
    back = list(read_ground_truth_bag(path))
    assert len(back) == 2
    for truth, read in zip(frames, back, strict=False):
        assert np.array_equal(read.rgb, truth.rgb)
        assert np.array_equal(read.depth, truth.depth, equal_nan=True)
        assert read.intrinsics.fx == pytest.approx(truth.intrinsics.fx)
        things = [i for i in truth.object_ids if not truth.stuff[i - 1] and truth.amodal_mask(i).any()]
        assert read.names == tuple(truth.names[i - 1] for i in things)
        for k, i in enumerate(things, 1):
            assert np.array_equal(read.visible_mask(k), truth.visible_mask(i))
            assert np.array_equal(read.amodal_mask(k), truth.amodal_mask(i))
            assert np.array_equal(read.object_depths[k - 1], truth.object_depths[i - 1], equal_nan=True)
        renumber = {i: k for k, i in enumerate(things, 1)}
        expected = sorted((renumber[a], renumber[b]) for a, b in truth.occlusion_pairs.tolist()
                          if a in renumber and b in renumber)
        assert read.occlusion_pairs.tolist() == [list(p) for p in expected]


def test_bag_without_ground_truth_topics_is_refused(frames, tmp_path):
    path = tmp_path / "gt"
    write_ground_truth_bag(path, frames[:1], topics={**TOPICS, "truth": "/elsewhere"})
    with pytest.raises(ValueError, match="no ground-truth topics"):
        count_ground_truth_frames(path)


def test_dataset_names():
    assert parse_seeds("0-499") == range(0, 500) and parse_seeds("20") == range(0, 20)
    for bad in ("a-b", "5-3", "", "1-2-3"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
    dataset = open_dataset("synthetic:3-4", 160, 120)
    assert dataset.count == 2 and dataset.name == "synthetic_3-4"
    first = next(iter(dataset))
    assert np.array_equal(first.rgb, generate(3, 160, 120).rgb)
    with pytest.raises(ValueError, match="no such file"):
        open_dataset("/nonexistent/folder")
