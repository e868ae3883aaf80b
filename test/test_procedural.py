"""Procedural rooms: determinism, variety, deep occlusion and the ground-truth invariants."""
import numpy as np
import pytest

from amodal_depth_ros.synthetic.procedural import FLOOR_KINDS, SMALL_KINDS, generate, random_room
from amodal_depth_ros.synthetic.shapes import Compound, TriangleMesh

SEEDS = range(12)


@pytest.fixture(scope="module")
def frames():
    return {seed: generate(seed) for seed in SEEDS}


def longest_chain(frame) -> int:
    """Objects in the longest occluder -> occluded chain among non-structure objects."""
    things = {i for i in frame.object_ids if not frame.stuff[i - 1]}
    occluders = {}
    for a, b in frame.occlusion_pairs.tolist():
        if a in things and b in things:
            occluders.setdefault(b, set()).add(a)

    def depth(node, seen):
        return 1 + max((depth(a, seen | {a}) for a in occluders.get(node, ()) if a not in seen), default=0)

    return max((depth(b, {b}) for b in occluders), default=1)


def test_same_seed_same_frame_other_seed_other_frame(frames):
    again = generate(3)
    for field in ("rgb", "depth", "instance_ids", "amodal_masks", "object_depths", "occlusion_pairs", "stuff"):
        assert np.array_equal(getattr(again, field), getattr(frames[3], field), equal_nan=True), field
    assert again.names == frames[3].names and again.intrinsics == frames[3].intrinsics
    assert not np.array_equal(frames[3].rgb, frames[4].rgb)
    assert frames[3].intrinsics != frames[4].intrinsics   # random intrinsics


def test_room_structure_table_and_many_varied_objects(frames):
    kinds = set()
    for frame in frames.values():
        names = frame.names
        assert {"floor", "back_wall", "left_wall", "right_wall"} <= set(names)
        assert "table" in names
        assert frame.stuff.tolist() == [n in ("floor", "back_wall", "left_wall", "right_wall") for n in names]
        assert sum(not s for s in frame.stuff) >= 4
        kinds |= {n.rsplit("_", 1)[0] for n in names}
    # primitives, deformed primitives, composed objects and generated meshes all occur
    assert {"box", "cylinder", "ellipsoid", "cone", "vase", "rock"} <= kinds, kinds
    shapes = [obj.shape for seed in SEEDS for obj in random_room(seed).objects]
    assert any(isinstance(s, TriangleMesh) for s in shapes) and any(isinstance(s, Compound) for s in shapes)
    assert set(SMALL_KINDS) >= {"torus", "prism", "rock", "vase"} and "chair" in FLOOR_KINDS


def test_occlusion_is_several_layers_deep(frames):
    chains = [longest_chain(f) for f in frames.values()]
    assert min(chains) >= 2 and np.mean([c >= 3 for c in chains]) >= 0.75, chains


def test_ground_truth_invariants(frames):
    for frame in frames.values():
        assert np.array_equal(frame.amodal_masks, np.isfinite(frame.object_depths))
        # the visible depth is the nearest of the objects' own surfaces, and each object is seen where it is nearest
        assert np.array_equal(frame.depth, np.fmin.reduce(frame.object_depths, axis=0), equal_nan=True)
        for i in frame.object_ids:
            visible = frame.visible_mask(i)
            assert not (visible & ~frame.amodal_mask(i)).any()
            assert np.array_equal(frame.object_depths[i - 1][visible], frame.depth[visible])
        for occluder, occluded in frame.occlusion_pairs.tolist():
            covered = frame.visible_mask(occluder) & frame.amodal_mask(occluded)
            assert covered.any() and (frame.object_depths[occluded - 1][covered] >= frame.depth[covered]).all()
        # the camera sees the room from inside: every pixel has a surface
        assert np.isfinite(frame.depth).all() and (frame.depth > 0.05).all()


def test_camera_frame_is_the_optical_frame(frames):
    # y down: the floor (stuff, below the camera) is seen in the lower image part
    frame = frames[0]
    floor = frame.visible_mask(frame.id_of("floor"))
    rows = np.nonzero(floor)[0]
    assert rows.mean() > frame.depth.shape[0] / 2


def test_other_resolutions_keep_the_scene():
    small, large = generate(5, 160, 120), generate(5, 320, 240)
    assert small.names == large.names
    # same field of view: the scaled intrinsics agree
    assert small.intrinsics.fx * 2 == pytest.approx(large.intrinsics.fx)
