"""Training material of the segmentation network: table-top scenes, the depth sensor model, label maps, crops."""
import numpy as np

from amodal_depth_ros.networks.segmentation_net import INPUT_CHANNELS, network_size, surface_normals
from amodal_depth_ros.synthetic import generate_tabletop, random_tabletop, rgbd_camera_depth
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render
from amodal_depth_ros.training.segmentation_samples import (
    UNKNOWN,
    FrameCache,
    cache_row,
    frame_labels,
    outline,
    training_crop,
)


def test_tabletops_are_deterministic_packed_and_stacked():
    a, b = generate_tabletop(3), generate_tabletop(3)
    assert np.array_equal(a.rgb, b.rgb) and a.names == b.names
    gaps, stacked = [], 0
    for seed in range(12):
        world = random_tabletop(seed)
        table = next(o for o in world.objects if o.name == "table")
        table_top = table.shape.corners()[:, 1].min()        # y points down: the top is the smallest y
        objects = [o for o in world.objects if not o.stuff and o.name != "table"]
        stacked += sum(o.shape.corners()[:, 1].max() < table_top - 0.01 for o in objects)
        centres = np.array([o.shape.centre[[0, 2]] for o in objects])
        if len(centres) > 1:
            d = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(len(centres)) * 9
            gaps.append(d.min())
    assert np.median(gaps) < 0.15          # objects stand close together
    assert stacked >= 2                    # some stand on others, above the table top


def test_sensor_model_quantises_shadows_and_drops_readings():
    truth = render(*box_in_front_of_wall(320, 240))
    rng = np.random.default_rng(0)
    noisy = rgbd_camera_depth(truth.depth, truth.intrinsics, rng, 1.0)
    assert np.array_equal(rgbd_camera_depth(truth.depth, truth.intrinsics, rng, 0.0), truth.depth)
    valid = np.isfinite(noisy)
    assert 0.7 < valid.mean() < 0.999
    error = np.abs(noisy - truth.depth)[valid & (np.abs(truth.depth - 3.0) < 1e-3)]
    assert np.median(error) < 0.05 and np.median(error) > 0     # a few cm of noise on the wall at 3 m
    # The projector's shadow: wall pixels just left of the box lose their reading more often than right of it.
    box = truth.instance_ids == truth.id_of("box")
    cols = np.flatnonzero(box.any(axis=0))
    row = slice(110, 130)
    left, right = ~valid[row, cols[0] - 6:cols[0]], ~valid[row, cols[-1] + 1:cols[-1] + 7]
    assert left.mean() > right.mean() + 0.3


def test_occluder_labels_say_who_is_in_front_at_outlines():
    truth = render(*box_in_front_of_wall(160, 120))
    ids, structure, occluder = frame_labels(truth)
    box, wall = truth.id_of("box"), truth.id_of("wall")
    edge = outline(ids)
    assert set(np.unique(occluder[edge & (ids == box)])) == {1}    # the box hides the wall
    assert set(np.unique(occluder[edge & (ids == wall)])) == {0}   # the wall hides nothing
    assert (occluder[~edge] == UNKNOWN).mean() > 0.9
    assert structure[ids == box].max() == 0


def test_training_crops_are_network_inputs_with_their_targets(tmp_path):
    truth = render(*box_in_front_of_wall(160, 120))
    cache = FrameCache.create(tmp_path, 1, 120, 160)
    cache.put(0, cache_row(truth, 160, 120, rendered=True))
    crop = training_crop(cache, 0, np.random.default_rng(0), (64, 48))
    assert crop.inputs.shape == (INPUT_CHANNELS, 48, 64) and crop.boundary.shape == (48, 64)
    assert np.isfinite(crop.inputs).all()
    assert set(np.unique(crop.boundary)) <= {0, 1}
    assert (crop.occluder[crop.boundary != 1] == UNKNOWN).all()   # scored on the outline only
    assert 0 < crop.boundary.mean() < 0.3


def test_normals_of_a_fronto_parallel_wall_face_the_camera():
    truth = render(*box_in_front_of_wall(160, 120))
    n = surface_normals(truth.depth, truth.intrinsics)
    assert np.allclose(n[:, 1:-1, 1:20], np.array([0.0, 0.0, -1.0])[:, None, None], atol=1e-4)   # left of the box
    assert (n[:, 0] == 0).all()   # the border row has no neighbour above: no normal
    assert network_size(640, 480, 320) == (320, 240) and network_size(1280, 720, 320) == (320, 176)
    assert network_size(320, 240, 640) == (320, 240)    # never enlarged
