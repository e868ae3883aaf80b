"""The synthetic renderer against analytic geometry, and the ground-truth invariants it promises."""
import numpy as np
import pytest

from amodal_depth_ros.core import RGBDFrame
from amodal_depth_ros.synthetic import SyntheticCamera
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, random_scene, random_world, render
from amodal_depth_ros.synthetic.shapes import Box, Cylinder, Rectangle, Sphere, rotation_x, rotation_y

BACKGROUND = ("wall", "floor")


def pixel_rays(intr):
    """(H, W, 3) rays of the documented pixel convention, built independently of the renderer."""
    u, v = np.meshgrid(np.arange(intr.width, dtype=float), np.arange(intr.height, dtype=float))
    return np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)


def brute_force_depths(objects, intr):
    """Each object intersected with every pixel ray: no screen-space culling, no z-buffer."""
    rays = pixel_rays(intr).reshape(-1, 3)
    out = []
    for obj in objects:
        t, _ = obj.shape.intersect(None, rays)
        out.append(np.where(np.isfinite(t), t, np.nan).astype(np.float32).reshape(intr.height, intr.width))
    return np.stack(out)


def has_two_layer_chain(frame):
    """Some object is hidden by an object that is itself hidden by a third (background planes excluded)."""
    solids = {i + 1 for i, name in enumerate(frame.names) if name not in BACKGROUND}
    edges = {(a, b) for a, b in frame.occlusion_pairs.tolist() if a in solids and b in solids}
    return any((b, c) in edges for _, b in edges for c in solids)


@pytest.fixture(scope="module")
def wall_frame():
    objects, intr = box_in_front_of_wall()
    return render(objects, intr)


def test_box_in_front_of_wall_depths_are_analytic(wall_frame):
    f, intr = wall_frame, wall_frame.intrinsics
    wall, box = f.id_of("wall"), f.id_of("box")
    assert f.depth.dtype == np.float32 and f.depth.shape == (240, 320)
    # The cube's front face (|x|, |y| <= 0.3 at z = 1.5) covers exactly these pixels; its sides are
    # hidden behind the face because the cube sits on the optical axis.
    rays = pixel_rays(intr)
    x_face, y_face = np.abs(rays[..., 0]) * 1.5, np.abs(rays[..., 1]) * 1.5   # |x|, |y| where z = 1.5
    inside = (x_face < 0.3 - 1e-3) & (y_face < 0.3 - 1e-3)
    outside = (x_face > 0.3 + 1e-3) | (y_face > 0.3 + 1e-3)
    assert inside.sum() > 5000
    assert f.visible_mask(box)[inside].all() and not f.visible_mask(box)[outside].any()
    assert np.abs(f.depth[f.visible_mask(box)] - 1.5).max() <= 1e-5
    assert np.abs(f.depth[f.visible_mask(wall)] - 3.0).max() <= 1e-5
    points = rays[f.visible_mask(box)] * f.depth[f.visible_mask(box)][:, None]
    assert np.abs(points[:, :2]).max() <= 0.3 + 1e-6


def test_wall_hidden_behind_box_has_wall_depth(wall_frame):
    f, intr = wall_frame, wall_frame.intrinsics
    wall, box = f.id_of("wall"), f.id_of("box")
    behind = f.visible_mask(box)
    hidden_depth = f.object_depths[wall - 1][behind]
    assert np.abs(hidden_depth - 3.0).max() <= 1e-5
    # Back-projected, the hidden wall is the patch the cube's front face shadows: |x|, |y| <= 0.3 * 3 / 1.5.
    points = pixel_rays(intr)[behind] * hidden_depth[:, None]
    assert np.abs(points[:, 2] - 3.0).max() <= 1e-5 and np.abs(points[:, :2]).max() <= 0.6 + 1e-5
    assert np.abs(f.object_depths[box - 1][behind] - 1.5).max() <= 1e-5


def test_visible_masks_partition_the_valid_pixels(wall_frame):
    f = wall_frame
    wall, box = f.visible_mask(f.id_of("wall")), f.visible_mask(f.id_of("box"))
    assert not (wall & box).any()
    assert np.array_equal(wall | box, np.isfinite(f.depth))
    assert np.isfinite(f.depth).all()   # the wall fills the view
    assert f.instance_ids.dtype == np.int32 and set(np.unique(f.instance_ids)) == {1, 2}


def test_wall_amodal_mask_includes_the_pixels_behind_the_box(wall_frame):
    f = wall_frame
    wall, box = f.id_of("wall"), f.id_of("box")
    assert f.amodal_mask(wall).all()
    assert not f.visible_mask(wall)[f.visible_mask(box)].any()
    assert np.array_equal(f.amodal_mask(box), f.visible_mask(box))   # nothing hides the box


def test_occlusion_pairs_of_box_and_wall(wall_frame):
    f = wall_frame
    assert f.occlusion_pairs.dtype == np.int32
    assert f.occlusion_pairs.tolist() == [[f.id_of("box"), f.id_of("wall")]]


def test_box_and_wall_colours_differ_and_convert_to_rgbd_frame(wall_frame):
    f = wall_frame
    box_rgb = f.rgb[f.visible_mask(f.id_of("box"))].astype(float).mean(axis=0)
    wall_rgb = f.rgb[f.visible_mask(f.id_of("wall"))].astype(float).mean(axis=0)
    assert box_rgb[0] > 2 * max(box_rgb[1], box_rgb[2])        # saturated red
    assert wall_rgb.max() - wall_rgb.min() < 15 and wall_rgb.min() > 80   # light grey
    assert f.rgb[f.visible_mask(f.id_of("wall"))].std() > 1.0    # textured, not flat
    frame = f.to_rgbd_frame(stamp_ns=42, frame_id="cam")
    assert isinstance(frame, RGBDFrame) and frame.stamp_ns == 42 and frame.frame_id == "cam"
    assert frame.depth is f.depth and frame.rgb is f.rgb and frame.intrinsics == f.intrinsics


def first_positive_root(origin, direction, centre, radius):
    """Closed form via numpy's polynomial roots of |o + t d - c|^2 = r^2."""
    offset = origin - centre
    roots = np.roots([direction @ direction, 2 * direction @ offset, offset @ offset - radius ** 2])
    positive = [r.real for r in roots if abs(r.imag) < 1e-12 and r.real > 0]
    return min(positive) if positive else np.inf


def test_sphere_intersection_matches_closed_form():
    centre, radius = np.array([0.2, -0.1, 4.0]), 0.5
    sphere = Sphere(centre=centre, radius=radius)
    dirs = np.array([[0.05, -0.025, 1.0], [0.1, 0.0, 1.0], [0.16, -0.02, 1.0], [0.5, 0.5, 1.0], [0.0, 0.0, -1.0]])
    t, normals = sphere.intersect(None, dirs)
    # Through the centre: the hit is one radius before it along the ray.
    assert t[0] == pytest.approx(4.0 - radius / np.linalg.norm(dirs[0]), abs=1e-12)
    for i, d in enumerate(dirs):
        assert t[i] == pytest.approx(first_positive_root(np.zeros(3), d, centre, radius), abs=1e-9)
    assert np.isinf(t[3:]).all() and not normals[3:].any()
    hits = t[:3, None] * dirs[:3]
    np.testing.assert_allclose(normals[:3], (hits - centre) / radius, atol=1e-9)
    # From inside, the ray meets the far side; the normal still faces the ray.
    origin = centre + np.array([0.1, 0.0, 0.0])
    t, normals = sphere.intersect(origin, np.array([[1.0, 0.0, 0.0]]))
    assert t[0] == pytest.approx(first_positive_root(origin, np.array([1.0, 0.0, 0.0]), centre, radius))
    np.testing.assert_allclose(normals[0], [-1.0, 0.0, 0.0], atol=1e-12)


def test_box_normals():
    box = Box(centre=(0.0, 0.0, 2.0), half_extents=(0.5, 0.5, 0.5))
    t, n = box.intersect(None, np.array([[0.1, -0.2, 1.0], [0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(t, [1.5, 1.5])
    np.testing.assert_allclose(n, [[0, 0, -1], [0, 0, -1]], atol=1e-12)
    t, n = box.intersect(np.array([-3.0, 0.1, 2.2]), np.array([[1.0, 0.0, 0.0]]))
    assert t[0] == pytest.approx(2.5) and np.allclose(n[0], [-1, 0, 0])
    t, n = box.intersect(np.array([0.0, 0.0, 2.0]), np.array([[0.0, 1.0, 0.0]]))   # from inside
    assert t[0] == pytest.approx(0.5) and np.allclose(n[0], [0, -1, 0])
    turned = Box(centre=(0.0, 0.0, 2.0), half_extents=(0.5, 0.5, 0.5), rotation=rotation_y(np.pi / 4))
    t, n = turned.intersect(None, np.array([[0.05, 0.0, 1.0]]))
    np.testing.assert_allclose(n[0], [np.sqrt(0.5), 0.0, -np.sqrt(0.5)], atol=1e-12)   # the face turned right
    hit = t[0] * np.array([0.05, 0.0, 1.0])
    assert (hit - turned.centre) @ n[0] == pytest.approx(0.5)   # on that face (outward normal)
    t, n = box.intersect(None, np.array([[1.0, 0.0, 1.0]]))
    assert np.isinf(t[0]) and not n.any()


def test_cylinder_normals():
    cylinder = Cylinder(centre=(0.0, 0.0, 3.0), radius=0.4, half_height=0.5)
    d = np.array([[0.1, 0.05, 1.0]])
    t, n = cylinder.intersect(None, d)
    hit = t[0] * d[0]
    assert np.hypot(hit[0], hit[2] - 3.0) == pytest.approx(0.4)   # on the side wall
    np.testing.assert_allclose(n[0], [hit[0] / 0.4, 0.0, (hit[2] - 3.0) / 0.4], atol=1e-12)   # radial
    assert n[0] @ d[0] < 0
    down, up = np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, -1.0, 0.0]])
    t, n = cylinder.intersect(np.array([0.1, -2.0, 3.0]), down)   # onto the top cap (y is down)
    assert t[0] == pytest.approx(1.5) and np.allclose(n[0], [0, -1, 0])
    t, n = cylinder.intersect(np.array([0.1, 2.0, 3.0]), up)
    assert t[0] == pytest.approx(1.5) and np.allclose(n[0], [0, 1, 0])
    lying = Cylinder(centre=(0.0, 0.0, 3.0), radius=0.4, half_height=0.5, rotation=rotation_x(np.pi / 2))
    t, n = lying.intersect(None, np.array([[0.0, 0.0, 1.0], [0.3, 0.0, 1.0]]))   # axis along z
    assert t[0] == pytest.approx(2.5) and np.allclose(n[0], [0, 0, -1])
    assert np.isinf(t[1])


def test_rectangle_is_two_sided_and_finite():
    patch = Rectangle(centre=(0.0, 0.0, 2.0), half_size=(1.0, 0.5))
    t, n = patch.intersect(None, np.array([[0.4, 0.2, 1.0], [0.4, 0.3, 1.0], [0.0, 0.0, -1.0]]))
    assert t[0] == 2.0 and np.isinf(t[1]) and np.isinf(t[2])
    np.testing.assert_allclose(n[0], [0, 0, -1])
    t, n = patch.intersect(np.array([0.0, 0.0, 5.0]), np.array([[0.0, 0.0, -1.0]]))
    assert t[0] == 3.0 and np.allclose(n[0], [0, 0, 1])


def test_random_scene_is_deterministic_in_the_seed():
    a, b, c = (render(*random_scene(seed)) for seed in (3, 3, 4))
    assert a.names == b.names and a.intrinsics == b.intrinsics
    for field in ("rgb", "depth", "instance_ids", "object_depths", "occlusion_pairs"):
        assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
    assert a.intrinsics != c.intrinsics
    assert not np.array_equal(a.depth, c.depth, equal_nan=True)
    assert not np.array_equal(a.rgb, c.rgb)


def test_random_scenes_hide_objects_several_layers_deep():
    deep = [has_two_layer_chain(render(*random_scene(seed))) for seed in range(10)]
    assert sum(deep) >= 8, deep


@pytest.mark.parametrize("seed", range(4))
def test_visible_depth_is_the_nearest_object_depth(seed):
    objects, intr = random_scene(seed)
    f = render(objects, intr)
    assert 3 <= len(objects) - len(BACKGROUND) <= 8
    assert np.array_equal(f.depth, np.fmin.reduce(f.object_depths, axis=0), equal_nan=True)
    assert np.array_equal(f.instance_ids == 0, np.isnan(f.depth))
    for k in range(1, len(objects) + 1):
        visible = f.visible_mask(k)
        assert np.array_equal(f.depth[visible], f.object_depths[k - 1][visible])
        assert not (visible & ~f.amodal_mask(k)).any()
    for occluder, occluded in f.occlusion_pairs.tolist():
        covered = f.visible_mask(occluder) & f.amodal_mask(occluded)
        assert covered.any() and (f.object_depths[occluded - 1][covered] >= f.depth[covered]).all()
    # Every object that is seen somewhere inside another's amodal mask appears as its occluder.
    pairs = {tuple(p) for p in f.occlusion_pairs.tolist()}
    for k in range(1, len(objects) + 1):
        seen = set(np.unique(f.instance_ids[f.amodal_mask(k)]).tolist()) - {0, k}
        assert seen == {a for a, b in pairs if b == k}


@pytest.mark.parametrize("seed", range(3))
def test_culled_rendering_matches_brute_force(seed):
    objects, intr = random_scene(seed, width=160, height=120)
    assert np.array_equal(render(objects, intr).object_depths, brute_force_depths(objects, intr), equal_nan=True)


@pytest.mark.parametrize("seed", range(10))
def test_random_world_objects_stand_on_the_floor_without_touching(seed):
    world = random_world(seed)
    solids = [obj for obj in world.objects if obj.name not in BACKGROUND]
    up = np.array([[0.0, -1.0, 0.0]])
    for obj in solids:   # a ray up from 1 m under the floor meets the object's bottom at the floor
        t, _ = obj.shape.intersect(obj.shape.centre * [1, 0, 1] + [0, 1, 0], up)
        assert t[0] == pytest.approx(1.0, abs=1e-9), obj.name
    # Vertical rays over the whole area: none passes through two objects' footprints.
    xs, zs = np.meshgrid(np.linspace(-3, 3, 200), np.linspace(0, 6, 200))
    origins = np.stack([xs.ravel(), np.ones(xs.size), zs.ravel()], axis=1)
    dirs = np.broadcast_to(up, origins.shape)
    hits = sum(np.isfinite(obj.shape.intersect(origins, dirs)[0]).astype(int) for obj in solids)
    assert hits.max() == 1


def test_depth_noise_only_perturbs_the_sensor_depth():
    objects, intr = random_scene(1)
    clean = render(objects, intr)
    noisy, again = (render(objects, intr, depth_noise_std=0.01, seed=7) for _ in range(2))
    assert np.array_equal(noisy.depth, again.depth, equal_nan=True)
    assert np.array_equal(noisy.object_depths, clean.object_depths, equal_nan=True)
    assert np.array_equal(np.isnan(noisy.depth), np.isnan(clean.depth))
    assert np.nanstd(noisy.depth - clean.depth) == pytest.approx(0.01, rel=0.1)


def test_synthetic_camera_stream_moves_deterministically():
    camera = SyntheticCamera(seed=2, width=160, height=120)
    assert (camera.intrinsics.width, camera.intrinsics.height) == (160, 120)
    first = next(iter(camera))
    assert np.array_equal(first.rgb, render(*random_scene(2, width=160, height=120)).rgb)
    a, b = camera.frame(7), SyntheticCamera(seed=2, width=160, height=120).frame(7)
    assert np.array_equal(a.depth, b.depth, equal_nan=True) and np.array_equal(a.rgb, b.rgb)
    later = camera.frame(10)
    assert not np.array_equal(first.depth, later.depth, equal_nan=True)
    assert camera.stamp_ns(10) == 1_000_000_000
    # The moving camera sees the floor plane cross behind it: culling must stay exact there too.
    expected = brute_force_depths(camera.objects(10), camera.intrinsics)
    assert np.array_equal(later.object_depths, expected, equal_nan=True)
