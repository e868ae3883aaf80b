"""UOIS / UOAIS segmentation metrics and occlusion-order accuracy, on scenes with known answers."""
import numpy as np
import pytest

from amodal_depth_ros.core import OcclusionGraph
from amodal_depth_ros.evaluation.segmentation import (
    SegmentationTable,
    boundary_map,
    boundary_tolerance,
    prf,
    score_segmentation,
    true_order_pairs,
)
from amodal_depth_ros.groundtruth import GroundTruthFrame
from amodal_depth_ros.synthetic.scene import SceneObject, box_in_front_of_wall, render
from amodal_depth_ros.synthetic.shapes import Box


def box_wall_and_cube():
    """Wall (1), box (2) in front of it, and a cube (3) partly hidden by the box."""
    objects, intr = box_in_front_of_wall(160, 120)
    cube = SceneObject("cube", Box(centre=(0.35, 0.1, 2.3), half_extents=(0.15, 0.15, 0.15)), (0.1, 0.8, 0.2))
    return render(objects + [cube], intr)


def graph(*edges):
    return OcclusionGraph(np.array(edges, np.int32).reshape(-1, 2), np.ones(len(edges), np.int32))


def test_boundary_map_is_the_one_pixel_outline():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    b = boundary_map(mask)
    assert b[2:5, 3:6].sum() + b[1:6, 2:7].sum() > 0
    assert not b[3, 4]            # an interior pixel
    assert b[4, 4] and b[2, 5]    # the last row and column of the square differ from their lower / right neighbour
    assert boundary_tolerance((240, 320)) == 2 and boundary_tolerance((480, 640)) == 3


def test_the_truth_scores_one_everywhere():
    truth = box_wall_and_cube()
    masks = truth.true_amodal_masks()
    order = graph(*truth.occlusion_pairs.tolist())
    score = score_segmentation(truth, truth.instance_ids, order, masks)
    assert all(v == pytest.approx(1.0) for v in score.visible.values())
    assert all(v == pytest.approx(1.0) for v in score.amodal.values())
    assert score.occluded["overlap_f"] == pytest.approx(1.0)
    assert score.order_pairs == score.order_matched == score.order_correct >= 2   # box hides wall and cube


def test_merging_two_instances_costs_overlap_and_f75_and_loses_their_order():
    truth = box_wall_and_cube()
    box, cube = truth.id_of("box"), truth.id_of("cube")
    merged = np.where(truth.instance_ids == cube, box, truth.instance_ids)
    score = score_segmentation(truth, merged, graph((box, truth.id_of("wall"))))
    v = score.visible
    cube_share = (truth.instance_ids == cube).sum() / truth.instance_ids.size
    assert v["overlap_r"] == pytest.approx(1.0 - cube_share, abs=1e-6)   # the cube's pixels went to the box
    assert v["overlap_p"] == pytest.approx(v["overlap_r"])
    assert v["f75"] == pytest.approx(2 / 3)                              # the cube has no prediction of its own
    assert score.order_matched < score.order_pairs                       # box-hides-cube cannot be scored


def test_a_reversed_order_is_wrong_and_a_chain_counts():
    truth = box_wall_and_cube()
    wall, box, cube = (truth.id_of(n) for n in ("wall", "box", "cube"))
    right = score_segmentation(truth, truth.instance_ids, graph((box, cube), (cube, wall)))
    assert right.order_correct == right.order_matched          # box hides the wall through the cube
    wrong = score_segmentation(truth, truth.instance_ids, graph((cube, box), (wall, cube), (wall, box)))
    assert wrong.order_correct == 0


def test_boundary_scores_tolerate_the_protocols_distance_not_more():
    truth = box_wall_and_cube()
    box = truth.id_of("box")
    assert boundary_tolerance(truth.depth.shape) == 1   # 160x120
    for shift, expected in ((1, True), (3, False)):
        labels = truth.instance_ids.copy()
        moved = np.roll(truth.instance_ids == box, shift, axis=1)
        labels[truth.instance_ids == box] = truth.id_of("wall")
        labels[moved] = box
        scores = prf([truth.instance_ids == box], [labels == box])
        assert (scores["boundary_f"] > 0.9) == expected, shift


def test_partial_truth_is_scored_on_its_labelled_pixels_only():
    truth = box_wall_and_cube()
    ids = truth.instance_ids.copy()
    ids[ids == truth.id_of("wall")] = 0   # as in a composite: only some instances are labelled
    partial = GroundTruthFrame(truth.rgb, truth.depth, ids, truth.amodal_masks, truth.object_depths, truth.names,
                               truth.intrinsics, truth.occlusion_pairs, truth.stuff)
    noisy = truth.instance_ids.copy()
    noisy[:5] = 99                        # whatever is predicted on unlabelled pixels does not count
    score = score_segmentation(partial, noisy, graph())
    assert score.visible["overlap_f"] == pytest.approx(1.0)


def test_stuff_pairs_are_not_order_targets():
    truth = box_wall_and_cube()
    stuff = truth.stuff.copy()
    stuff[:] = True
    everything_stuff = GroundTruthFrame(truth.rgb, truth.depth, truth.instance_ids, truth.amodal_masks,
                                        truth.object_depths, truth.names, truth.intrinsics, truth.occlusion_pairs,
                                        stuff)
    assert true_order_pairs(everything_stuff) == [] and len(true_order_pairs(truth)) >= 2


def test_table_summary_averages_frames():
    truth = box_wall_and_cube()
    table = SegmentationTable()
    table.add("truth", score_segmentation(truth, truth.instance_ids, graph(*truth.occlusion_pairs.tolist())))
    blank = np.zeros_like(truth.instance_ids)
    table.add("truth", score_segmentation(truth, blank, graph()))
    s = table.summary()["truth"]
    assert s["frames"] == 2 and s["visible"]["overlap_f"] == pytest.approx(0.5)
    assert s["order"]["accuracy"] == pytest.approx(1.0) and s["order"]["recall"] == pytest.approx(0.5)


def write_labelled_folder(folder, truth, labels):
    """A folder in the mosd_learn layout: NAME_{color,depth,labels}.png and intrinsics.json."""
    import json

    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    intr = truth.intrinsics
    (folder / "intrinsics.json").write_text(json.dumps({"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy,
                                                        "depth_scale": 1000}))
    cv2.imwrite(str(folder / "f0_color.png"), truth.rgb[..., ::-1])
    cv2.imwrite(str(folder / "f0_depth.png"), np.nan_to_num(truth.depth * 1000).astype(np.uint16))
    cv2.imwrite(str(folder / "f0_labels.png"), labels.astype(np.uint16))


def test_labelled_real_frames_score_objects_only_with_structure_as_background(tmp_path):
    from amodal_depth_ros.datasets import open_dataset

    truth = render(*box_in_front_of_wall(80, 60))
    box, wall = truth.id_of("box"), truth.id_of("wall")
    labels = np.where(truth.instance_ids == box, 2, np.where(truth.instance_ids == wall, 1, 0))
    labels[:, :5] = 0                                      # unlabelled: no depth there in mOSD
    write_labelled_folder(tmp_path / "real", truth, labels)
    dataset = open_dataset(str(tmp_path / "real"))
    [frame] = list(dataset)
    assert dataset.count == 1 and frame.visible_labels_only and frame.names == ("table", "object_2")
    assert frame.stuff.tolist() == [True, False] and np.array_equal(frame.visible_mask(2), labels == 2)
    assert np.allclose(frame.depth[labels == 2], truth.depth[labels == 2], atol=1e-3)
    predicted = np.where(labels == 2, 7, 3).astype(np.int32)   # the box, and the rest as one instance
    # The rest is an object: it counts against precision; called structure, it is background.
    as_object = score_segmentation(frame, predicted, OcclusionGraph(), None, set())
    as_structure = score_segmentation(frame, predicted, OcclusionGraph(), None, {3})
    assert as_object.visible["overlap_p"] < 0.5 and as_object.visible["overlap_r"] == 1.0
    assert as_structure.visible["overlap_f"] == 1.0 and as_structure.amodal is None
    # Predictions over unlabelled pixels are not scored: a box spilling into them is still perfect.
    spilled = np.where((labels == 2) | (np.arange(80)[None, :] < 5), 7, 3).astype(np.int32)
    assert score_segmentation(frame, spilled, OcclusionGraph(), None, {3}).visible["overlap_f"] == 1.0
