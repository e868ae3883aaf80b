"""Each ROS-free pipeline stage against scenes with known geometry."""
import numpy as np
import pytest

from amodal_depth_ros.core import (
    AmodalInstance,
    CameraIntrinsics,
    RGBDFrame,
    Segmentation,
    amodal_depth_image,
    config,
    stack_hidden_surfaces,
)
from amodal_depth_ros.core.amodal_mask import convex_hull_mask
from amodal_depth_ros.core.geometry import backproject, fit_inverse_depth_plane, normalized_coords
from amodal_depth_ros.errors import InputError
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, random_scene, render


def test_backprojection_matches_analytic_plane():
    intr = CameraIntrinsics(300.0, 310.0, 79.0, 59.0, 160, 120)
    depth = np.full((120, 160), 2.0, np.float32)
    points = backproject(depth, intr)
    assert np.allclose(points[59, 79], [0.0, 0.0, 2.0], atol=1e-6)
    assert np.allclose(points[0, 0], [-79.0 / 300.0 * 2.0, -59.0 / 310.0 * 2.0, 2.0], atol=1e-6)
    assert np.isnan(backproject(np.full((120, 160), np.nan, np.float32), intr)).all()


def test_inverse_depth_plane_fit_is_exact_for_a_tilted_plane():
    intr = CameraIntrinsics(200.0, 200.0, 49.5, 39.5, 100, 80)
    x, y = normalized_coords(intr)
    xx, yy = np.meshgrid(x, y)
    normal, offset = np.array([0.2, -0.5, 1.0]), 2.5            # plane n.X = d
    depth = offset / (normal[0] * xx + normal[1] * yy + normal[2])
    coef = fit_inverse_depth_plane(xx.ravel(), yy.ravel(), depth.ravel(), np.ones(depth.size))
    assert np.allclose(coef, normal / offset, atol=1e-9)


@pytest.mark.parametrize("bad", [dict(fx=np.nan), dict(fx=0.0), dict(fy=-1.0), dict(width=0)])
def test_invalid_intrinsics_are_refused(bad):
    values = dict(fx=100.0, fy=100.0, cx=10.0, cy=10.0, width=20, height=20) | bad
    with pytest.raises(InputError) as error:
        CameraIntrinsics(**values)
    assert error.value.reason == "invalid_intrinsics"


def test_frame_size_mismatch_is_refused():
    intr = CameraIntrinsics(100.0, 100.0, 10.0, 10.0, 20, 20)
    with pytest.raises(InputError) as error:
        RGBDFrame(np.zeros((10, 20, 3), np.uint8), intr)
    assert error.value.reason == "size_mismatch"


def test_convex_hull_fills_a_notch():
    mask = np.zeros((50, 50), bool)
    mask[10:40, 10:40] = True
    mask[20:30, 25:40] = False                                 # notch cut by an occluder
    hull = convex_hull_mask(mask)
    assert hull[20:30, 25:38].all() and not hull[:9].any()


def box_scene_result(**params):
    objects, intr = box_in_front_of_wall(320, 240)
    frame = render(objects, intr)
    return frame, AmodalDepthPipeline(params)(frame.to_rgbd_frame())


GEOMETRIC = {
    "segmentation.method": "geometric",
    "amodal_mask.method": "convex_hull",
    "amodal_depth.method": "plane_fit",
}


def test_box_in_front_of_wall_end_to_end():
    # The geometric stages are exact on this scene; the learned default is held to its own bounds in
    # test_learned_stages.
    truth, result = box_scene_result(**GEOMETRIC)
    wall_id, box_id = truth.id_of("wall"), truth.id_of("box")
    # Segmentation: two instances that overlap the true visible masks almost exactly.
    seg = result.segmentation
    assert seg.ids.size == 2
    overlaps = {}
    for instance_id in seg.ids:
        mask = seg.labels == instance_id
        ious = {name_id: (mask & truth.visible_mask(name_id)).sum() / (mask | truth.visible_mask(name_id)).sum()
                for name_id in (wall_id, box_id)}
        best = max(ious, key=ious.get)
        assert ious[best] > 0.97
        overlaps[best] = int(instance_id)
    # Occlusion: the box hides the wall and nothing hides the box.
    assert result.occlusion.edges.tolist() == [[overlaps[box_id], overlaps[wall_id]]]
    wall = next(i for i in result.instances if i.id == overlaps[wall_id])
    box = next(i for i in result.instances if i.id == overlaps[box_id])
    assert wall.occluded_by == (overlaps[box_id],) and box.occluded_by == ()
    # Amodal mask of the wall covers what the box hides; its hidden depth is the wall's 3.0 m.
    true_hidden = truth.amodal_mask(wall_id) & ~truth.visible_mask(wall_id)
    assert (wall.amodal_mask & true_hidden).sum() / true_hidden.sum() > 0.98
    assert np.allclose(wall.depth[wall.hidden_mask], 3.0, atol=0.01)
    # Amodal depth image: wall depth behind the box, visible depth elsewhere.
    assert np.allclose(result.amodal_depth[true_hidden], 3.0, atol=0.01)
    outside = ~wall.hidden_mask
    assert np.array_equal(result.amodal_depth[outside], result.visible_depth[outside], equal_nan=True)
    assert np.allclose(result.visible_depth, truth.depth, atol=1e-6)
    # Cloud: every visible pixel plus one layer-1 point per hidden pixel, all at z = 3 m.
    cloud = result.cloud
    assert len(cloud) == np.isfinite(truth.depth).sum() + wall.hidden_mask.sum()
    hidden_points = cloud.points[cloud.layer == 1]
    assert np.allclose(hidden_points[:, 2], 3.0, atol=0.01)
    assert set(np.unique(cloud.instance[cloud.layer == 1])) == {overlaps[wall_id]}
    assert np.isfinite(cloud.points).all()


def test_cloud_stride_subsamples_both_layers():
    _, full = box_scene_result()
    _, strided = box_scene_result(**{"output.cloud_stride": 2})
    for layer in (0, 1):
        n_full, n_strided = (full.cloud.layer == layer).sum(), (strided.cloud.layer == layer).sum()
        assert abs(n_strided - n_full / 4) <= 0.02 * n_full


def test_layers_rank_hidden_surfaces_per_pixel():
    shape = (4, 4)
    visible = np.zeros(shape, bool)
    amodal = np.zeros(shape, bool)
    amodal[1, 1] = True
    near = AmodalInstance.from_frame(1, "object", 1.0, visible, amodal, (3,),
                                     np.where(amodal, 2.0, np.nan).astype(np.float32))
    far = AmodalInstance.from_frame(2, "object", 1.0, visible, amodal.copy(), (1,),
                                    np.where(amodal, 5.0, np.nan).astype(np.float32))
    hidden = stack_hidden_surfaces([far, near], shape)
    assert sorted(zip(hidden.depth.tolist(), hidden.layer.tolist(), strict=False)) == [(2.0, 1), (5.0, 2)]
    image = amodal_depth_image(np.ones(shape, np.float32), hidden)
    assert image[1, 1] == 2.0 and image[0, 0] == 1.0


def test_random_scenes_occlusion_order_matches_ground_truth():
    """On multi-layer scenes every detected occlusion edge is a true one (precision), most true ones are found."""
    pipeline = AmodalDepthPipeline()
    pipeline(render(*random_scene(0, 320, 240)).to_rgbd_frame())
    assert pipeline.segmentation.wait_ready(120)   # every frame on the default backend, not torch while it builds
    correct = found = 0
    for seed in range(4):
        objects, intr = random_scene(seed, 320, 240)
        truth = render(objects, intr)
        result = pipeline(truth.to_rgbd_frame())
        labels = result.segmentation.labels
        # Map each predicted instance to the true object it mostly covers.
        mapping = {int(i): int(np.bincount(truth.instance_ids[labels == i]).argmax()) for i in result.segmentation.ids}
        true_pairs = {tuple(p) for p in truth.occlusion_pairs.tolist()}
        for front, back in result.occlusion.edges.tolist():
            if mapping[front] == mapping[back]:
                continue   # two pieces of one object: a split, which the segmentation tests score, not an order
            found += 1
            correct += (mapping[front], mapping[back]) in true_pairs
    assert found > 0 and correct / found >= 0.8


def test_unknown_or_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="segmentation.depth_jump"):
        config.validated({"segmentation.depth_jump": 5.0})
    with pytest.raises(ValueError, match="unknown parameter"):
        config.validated({"segmentation.no_such_thing": 1})
    with pytest.raises(ValueError, match="one of"):
        config.validated({"amodal_depth.method": "magic"})
    assert config.validated({"sync.slop": 0})["sync.slop"] == 0.0   # ints are fine for float parameters


def test_missing_depth_is_an_input_error():
    objects, intr = box_in_front_of_wall(64, 48)
    frame = render(objects, intr).to_rgbd_frame()
    frame.depth = None
    with pytest.raises(InputError) as error:
        AmodalDepthPipeline()(frame)
    assert error.value.reason == "missing_depth"


def test_plane_fit_tells_planes_from_boxes():
    from amodal_depth_ros.core.amodal_depth import HiddenPart, PlaneFitCompletion

    yy, xx = np.mgrid[-1:1:100j, -1:1:100j]
    xs, ys = xx[0], yy[:, 0]
    hidden = np.zeros((100, 100), bool)
    hidden[40:60, 40:60] = True
    fit = PlaneFitCompletion(config.Settings.from_values().amodal_depth)

    def residual(depth):
        return fit.plane(HiddenPart((slice(0, 100), slice(0, 100)), ~hidden, hidden, depth.astype(np.float32),
                                    xs, ys))[1]
    plane = 1.0 / (0.1 * xx + 0.2 * yy + 0.5)                        # a tilted plane, 1.25-2.5 m away
    assert residual(plane) < 1e-5
    assert residual(2.0 + 0.5 * np.abs(xx)) > 0.02                   # two faces meeting at a ridge
    noisy = plane * (1 + 0.002 * np.random.default_rng(0).standard_normal(plane.shape))
    assert 0.002 < residual(noisy) < 0.005                           # 90th percentile of 0.2 % noise
    observed = np.where(hidden, 1.0, plane).astype(np.float32)        # an occluder 1 m away hides the middle
    own = np.where(~hidden, plane, np.nan).astype(np.float32)
    got = fit.complete_if_planar(~hidden, hidden, observed, own, xs, ys, 0.005)
    assert got is not None and got[hidden].all() and np.allclose(own[hidden], plane[hidden], rtol=1e-4)
    roof = np.where(hidden, 1.0, 2.0 + 0.5 * np.abs(xx)).astype(np.float32)
    assert fit.complete_if_planar(~hidden, hidden, roof, own.copy(), xs, ys, 0.005) is None


def test_hidden_surfaces_rank_three_deep_with_ties_by_id():
    shape = (3, 3)
    visible = np.zeros(shape, bool)
    amodal = np.zeros(shape, bool)
    amodal[1, :] = True
    surfaces = {5: [2.0, 2.0, 4.0], 7: [3.0, 2.0, np.nan], 9: [1.0, 2.0, 5.0]}
    instances = [AmodalInstance.from_frame(i, "object", 1.0, visible, amodal, (),
                                           np.where(amodal, np.array(z, np.float32)[None], np.nan).astype(np.float32))
                 for i, z in surfaces.items()]
    hidden = stack_hidden_surfaces(instances, shape)
    ranks = {(int(c), int(i)): int(layer) for c, i, layer in zip(hidden.cols, hidden.instance, hidden.layer,
                                                                 strict=True)}
    # column 0: 9 (1 m), 5 (2 m), 7 (3 m); column 1: equal depths, the lower id nearer; column 2: two surfaces
    assert ranks == {(0, 9): 1, (0, 5): 2, (0, 7): 3, (1, 5): 1, (1, 7): 2, (1, 9): 3, (2, 5): 1, (2, 9): 2}


def test_fragments_merge_into_the_surface_they_continue_and_objects_stay():
    from amodal_depth_ros.core.segmentation import merge_fragments, present_only

    labels = np.ones((20, 20), np.int32)
    depth = np.full((20, 20), 2.0, np.float32)
    labels[2:5, 2:5] = 2                                   # a fragment of the same surface (same depth)
    labels[10:13, 10:13] = 3                               # a small object standing 0.5 m in front
    depth[10:13, 10:13] = 1.5
    labels[15:20, 15:20] = 4                               # large enough to stay, whatever its depth
    merged = merge_fragments(labels, depth, 16, 0.04)
    assert (merged[2:5, 2:5] == 1).all() and (merged[10:13, 10:13] == 3).all() and (merged[15:, 15:] == 4).all()
    # Two fragments of one surface, nothing larger around: the higher id joins the lower, once.
    pair = np.zeros((6, 6), np.int32)
    pair[:, :3], pair[:, 3:] = 5, 9
    assert np.array_equal(merge_fragments(pair, np.ones((6, 6), np.float32), 40, 0.04), np.full((6, 6), 5))
    segmentation = present_only(Segmentation(merged, np.array([1, 2, 3, 4], np.int32), np.arange(4, dtype=np.float32),
                                             structure=np.array([True, False, False, False])))
    assert segmentation.ids.tolist() == [1, 3, 4] and segmentation.scores.tolist() == [0.0, 2.0, 3.0]
    assert segmentation.structure.tolist() == [True, False, False]


def test_a_box_the_segmentation_left_in_the_table_top_becomes_an_object():
    from amodal_depth_ros.core.segmentation import split_support_planes

    intr = CameraIntrinsics(100.0, 100.0, 63.5, 47.5, 128, 96)
    x_n, y_n = normalized_coords(intr)
    depth = (1.0 / (0.4 * y_n[:, None] + 0.5 + 0.0 * x_n[None, :])).astype(np.float32)   # a table seen from above
    depth[40:60, 50:80] *= 0.9                                                             # a box on it, 10 % nearer
    labels = np.ones(depth.shape, np.int32)                                                # ... in the table's segment
    segmentation = Segmentation(labels, np.array([1], np.int32), np.ones(1, np.float32))
    split = split_support_planes(segmentation, depth, intr, 0.05, 0.01, 50)
    assert split.ids.tolist() == [1, 2] and split.structure.tolist() == [True, False]
    assert (split.labels[40:60, 50:80] == 2).all() and (split.labels[:40] == 1).all()
    assert [split.kind(k) for k in range(2)] == ["structure", "object"]
    narrow = np.where(np.arange(128)[None, :] < 50, labels, 0).astype(np.int32)           # not half the width
    small = Segmentation(narrow, np.array([1], np.int32), np.ones(1, np.float32))
    assert split_support_planes(small, depth, intr, 0.05, 0.01, 50).structure.tolist() == [False]


def test_amodal_masks_grow_their_window_and_read_through_others():
    from amodal_depth_ros.core.types import AmodalMasks

    masks = AmodalMasks((10, 12))
    masks.set(1, (2, 2, 4, 4), np.ones((2, 2), bool))
    masks.add(1, (3, 3, 6, 8), np.eye(3, 5, dtype=bool))
    assert masks.window(1) == (2, 2, 6, 8) and masks.bounds(1) == (2, 2, 6, 6)   # the crop holds the mask
    full = masks[1]
    assert full.shape == (10, 12) and full[2:4, 2:4].all() and full[3, 3] and full[5, 5] and full.sum() == 4 + 2
    assert np.array_equal(masks.within(1, (0, 0, 4, 4)), full[:4, :4])
    assert np.array_equal(AmodalMasks.of({1: full}, (10, 12))[1], full)


# ---------------------------------------------------------------- typed settings, live parameters

GEOMETRIC_STAGES = {"segmentation.method": "geometric", "amodal_mask.method": "convex_hull",
                    "amodal_depth.method": "plane_fit"}


def test_settings_cover_the_table_and_every_entry_says_how_it_applies():
    assert config.settings_param_names() == set(config.SPECS)
    assert {spec.change for spec in config.PARAMS} == {config.READ_ONLY, config.LIVE, config.REBUILD}
    s = config.Settings.from_values({"segmentation.depth_jump": 0.07, "amodal_mask.threshold": 0.4})
    assert s.segmentation.depth_jump == s.occlusion.depth_jump == 0.07   # one entry, two readers
    assert s.amodal_mask.threshold == 0.4 and s.amodal_depth.min_gap == config.SPECS["amodal_depth.min_gap"].default
    with pytest.raises(ValueError, match="must be in"):
        config.Settings.from_values({"segmentation.depth_jump": 5.0})


def test_live_parameters_apply_to_the_running_stages_without_rebuilding():
    truth = render(*box_in_front_of_wall(160, 120))
    frame = truth.to_rgbd_frame()
    pipeline = AmodalDepthPipeline(GEOMETRIC_STAGES)
    stages = (pipeline.visible_depth, pipeline.segmentation, pipeline.occlusion, pipeline.amodal_depth)
    live = {"visible_depth.max_depth": 2.5, "amodal_depth.min_gap": 0.3, "output.cloud_stride": 2}
    assert set(live) <= config.LIVE_NAMES
    pipeline.apply_live(live)
    assert (pipeline.visible_depth, pipeline.segmentation, pipeline.occlusion, pipeline.amodal_depth) == stages
    changed, fresh = pipeline(frame), AmodalDepthPipeline({**GEOMETRIC_STAGES, **live})(frame)
    # Same content as a pipeline built with those values: depth cut at 2.5 m, hidden surfaces 0.3 m back.
    assert np.nanmax(changed.visible_depth) <= 2.5 and np.isnan(changed.visible_depth).any()
    np.testing.assert_array_equal(changed.amodal_depth, fresh.amodal_depth)
    np.testing.assert_array_equal(changed.cloud.records, fresh.cloud.records)
    assert len(changed.cloud) < len(AmodalDepthPipeline(GEOMETRIC_STAGES)(frame).cloud)
    with pytest.raises(ValueError, match="not live"):
        pipeline.apply_live({"amodal_depth.method": "nearest"})
