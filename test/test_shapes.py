"""Ellipsoid, Frustum, Compound and TriangleMesh ray casting, and the procedural meshes, against analytic values."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

from amodal_depth_ros.core import CameraIntrinsics
from amodal_depth_ros.synthetic import meshes
from amodal_depth_ros.synthetic.scene import _screen_window
from amodal_depth_ros.synthetic.shapes import (
    Box,
    Compound,
    Cylinder,
    Ellipsoid,
    Frustum,
    Sphere,
    TriangleMesh,
    _MeshRaycaster,
    rotation_x,
    rotation_y,
)

UP, DOWN = np.array([[0.0, -1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])   # y is down


def tilted(a=0.4, b=-0.7):
    return rotation_x(a) @ rotation_y(b)


def cube_mesh(half=0.5):
    """The box ``|x|, |y|, |z| <= half`` as 12 outward-wound triangles, written out by hand."""
    v = half * np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                         [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float)
    t = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                  [3, 6, 2], [3, 7, 6], [0, 4, 7], [0, 7, 3], [1, 2, 6], [1, 6, 5]])
    return v, t


def edge_counts(triangles):
    """How many triangles share each undirected edge, and whether any directed edge repeats."""
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    _, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    return counts, len(np.unique(directed, axis=0)) < len(directed)


def volume(vertices, triangles):
    a, b, c = (vertices[triangles[:, j]] for j in range(3))
    return np.sum(a * np.cross(b, c)) / 6.0


def grid_dirs(n=41, half_width=0.4):
    s = np.linspace(-half_width, half_width, n) + 1e-3 * np.sqrt(2)   # off the symmetry planes
    x, y = np.meshgrid(s, s)
    return np.stack([x.ravel(), y.ravel(), np.ones(x.size)], axis=1)


# --- Ellipsoid ----------------------------------------------------------------------------------------------

def test_ellipsoid_depths_along_the_axes():
    e = Ellipsoid(centre=(0.0, 0.0, 2.0), radii=(0.5, 0.3, 0.2))
    t, n = e.intersect(None, np.array([[0.0, 0.0, 1.0]]))
    assert t[0] == pytest.approx(1.8, abs=1e-12) and np.allclose(n[0], [0, 0, -1])
    t, n = e.intersect(np.array([-3.0, 0.0, 2.0]), np.array([[1.0, 0.0, 0.0]]))
    assert t[0] == pytest.approx(2.5, abs=1e-12) and np.allclose(n[0], [-1, 0, 0])
    t, n = e.intersect(np.array([0.0, -3.0, 2.0]), DOWN)
    assert t[0] == pytest.approx(2.7, abs=1e-12) and np.allclose(n[0], [0, -1, 0])
    # From the centre (inside) the wall is one semi-axis away; the normal faces the ray.
    for axis, radius in enumerate((0.5, 0.3, 0.2)):
        d = np.eye(3)[axis:axis + 1]
        t, n = e.intersect(np.array([0.0, 0.0, 2.0]), d)
        assert t[0] == pytest.approx(radius, abs=1e-12) and np.allclose(n[0], -d[0])
    t, n = e.intersect(None, np.array([[0.3, 0.0, 1.0], [0.0, 0.0, -1.0]]))
    assert np.isinf(t).all() and not n.any()


def test_ellipsoid_off_axis_hits_lie_on_the_surface():
    radii, centre = np.array([0.5, 0.3, 0.2]), np.array([0.1, -0.05, 2.0])
    e = Ellipsoid(centre=centre, radii=radii, rotation=tilted())
    dirs = grid_dirs(31, 0.3)
    t, n = e.intersect(None, dirs)
    hit = np.isfinite(t)
    assert 200 < hit.sum() < len(t)
    local = ((t[hit, None] * dirs[hit] - centre) @ e.rotation) / radii
    np.testing.assert_allclose(np.linalg.norm(local, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(n[hit], axis=1), 1.0, atol=1e-12)
    assert (np.einsum("ij,ij->i", n[hit], dirs[hit]) < 0).all()
    gradient = (local / radii) @ e.rotation.T
    gradient /= np.linalg.norm(gradient, axis=1, keepdims=True)
    np.testing.assert_allclose(n[hit], gradient, atol=1e-9)   # the outward gradient faces rays from outside
    assert not n[~hit].any()
    # Misses are real misses: the ray's closest approach (in the scaled frame) stays outside.
    d_local = (dirs[~hit] @ e.rotation) / radii
    o_local = ((-centre) @ e.rotation) / radii
    s = -(d_local @ o_local) / np.einsum("ij,ij->i", d_local, d_local)
    assert (np.linalg.norm(o_local + s[:, None] * d_local, axis=1) > 1.0).all()


def test_ellipsoid_with_equal_radii_is_a_sphere():
    e = Ellipsoid(centre=(0.2, -0.1, 3.0), radii=(0.4, 0.4, 0.4), rotation=tilted())
    s = Sphere(centre=(0.2, -0.1, 3.0), radius=0.4)
    dirs = grid_dirs(21, 0.2)
    (t1, n1), (t2, n2) = e.intersect(None, dirs), s.intersect(None, dirs)
    assert np.isfinite(t1).sum() > 50
    np.testing.assert_array_equal(np.isfinite(t1), np.isfinite(t2))
    np.testing.assert_allclose(t1[np.isfinite(t1)], t2[np.isfinite(t2)], atol=1e-12)
    np.testing.assert_allclose(n1, n2, atol=1e-12)


# --- Frustum ------------------------------------------------------------------------------------------------

def test_cone_apex_side_and_base():
    # Apex at the top (y = -0.5), base of radius 0.5 at y = +0.5: R(y) = 0.5 (y + 0.5) in local coordinates.
    cone = Frustum(centre=(0.0, 0.0, 3.0), radius_bottom=0.5, radius_top=0.0, half_height=0.5)
    t, n = cone.intersect(np.array([0.0, -2.0, 3.0]), DOWN)   # straight down onto the apex
    assert t[0] == pytest.approx(1.5, abs=1e-12) and np.allclose(n[0], [0, -1, 0])
    t, n = cone.intersect(np.array([0.0, 2.0, 3.0]), UP)   # up onto the base
    assert t[0] == pytest.approx(1.5, abs=1e-12) and np.allclose(n[0], [0, 1, 0])
    # Horizontal at mid height the radius is 0.25; the slope 1/2 tilts the side normal up by atan(1/2).
    t, n = cone.intersect(np.array([-2.0, 0.0, 3.0]), np.array([[1.0, 0.0, 0.0]]))
    assert t[0] == pytest.approx(1.75, abs=1e-12)
    np.testing.assert_allclose(n[0], np.array([-2.0, -1.0, 0.0]) / np.sqrt(5.0), atol=1e-12)
    t, n = cone.intersect(None, np.array([[0.0, 0.0, 1.0]]))   # camera ray along the optical axis
    assert t[0] == pytest.approx(2.75, abs=1e-12)
    np.testing.assert_allclose(n[0], np.array([0.0, -1.0, -2.0]) / np.sqrt(5.0), atol=1e-12)
    # Parallel to a generatrix (the quadratic degenerates to a linear equation): x = 0.3 - 0.5 s,
    # y = -0.6 + s meets x = R(y) at s = 0.35, y = -0.25.
    t, n = cone.intersect(np.array([0.3, -0.6, 3.0]), np.array([[-0.5, 1.0, 0.0]]))
    assert t[0] == pytest.approx(0.35, abs=1e-12)
    np.testing.assert_allclose(n[0], np.array([2.0, -1.0, 0.0]) / np.sqrt(5.0), atol=1e-12)
    # Above the apex height and beside the base: misses.
    t, n = cone.intersect(np.array([[0.0, -0.6, 0.0], [0.0, 0.51, 0.0]]), np.array([[0.0, 0.0, 1.0]] * 2))
    assert np.isinf(t).all() and not n.any()


def test_cone_with_the_apex_at_the_bottom():
    cone = Frustum(centre=(0.0, 0.0, 3.0), radius_bottom=0.0, radius_top=0.4, half_height=0.2)
    t, n = cone.intersect(np.array([0.0, 1.0, 3.0]), UP)
    assert t[0] == pytest.approx(0.8, abs=1e-12) and np.allclose(n[0], [0, 1, 0])
    t, n = cone.intersect(np.array([0.1, -1.0, 3.0]), DOWN)   # onto the top cap
    assert t[0] == pytest.approx(0.8, abs=1e-12) and np.allclose(n[0], [0, -1, 0])
    # R(y) = 0.2 - y: at y = 0.1 the radius is 0.1.
    t, _ = cone.intersect(np.array([-1.0, 0.1, 3.0]), np.array([[1.0, 0.0, 0.0]]))
    assert t[0] == pytest.approx(0.9, abs=1e-12)


def test_frustum_caps_and_rays_from_inside():
    f = Frustum(centre=(0.0, 0.0, 2.0), radius_bottom=0.4, radius_top=0.2, half_height=0.3)
    inside = np.array([0.0, 0.0, 2.0])
    t, n = f.intersect(inside, np.array([[1.0, 0.0, 0.0]]))   # R(0) = 0.3
    assert t[0] == pytest.approx(0.3, abs=1e-12)
    np.testing.assert_allclose(n[0], -np.array([1.0, -1.0 / 3.0, 0.0]) / np.sqrt(1 + 1 / 9), atol=1e-12)
    t, n = f.intersect(inside, UP)
    assert t[0] == pytest.approx(0.3, abs=1e-12) and np.allclose(n[0], [0, 1, 0])
    t, n = f.intersect(inside, DOWN)
    assert t[0] == pytest.approx(0.3, abs=1e-12) and np.allclose(n[0], [0, -1, 0])
    # Caps from outside: the top cap has radius 0.2, the bottom one 0.4.
    t, _ = f.intersect(np.array([[0.19, -1.0, 2.0], [0.21, -1.0, 2.0]]), np.repeat(DOWN, 2, axis=0))
    assert t[0] == pytest.approx(0.7, abs=1e-12) and t[1] > 0.7   # the second misses the cap, hits the side
    t, _ = f.intersect(np.array([[0.39, 1.0, 2.0], [0.41, 1.0, 2.0]]), np.repeat(UP, 2, axis=0))
    assert t[0] == pytest.approx(0.7, abs=1e-12) and np.isinf(t[1])
    # Equal radii: the frustum is a cylinder.
    c = Frustum(centre=(0.1, 0.0, 2.5), radius_bottom=0.3, radius_top=0.3, half_height=0.4, rotation=tilted())
    cyl = Cylinder(centre=(0.1, 0.0, 2.5), radius=0.3, half_height=0.4, rotation=tilted())
    dirs = grid_dirs(31, 0.25)
    (t1, n1), (t2, n2) = c.intersect(None, dirs), cyl.intersect(None, dirs)
    assert np.isfinite(t1).sum() > 100
    np.testing.assert_array_equal(np.isfinite(t1), np.isfinite(t2))
    np.testing.assert_allclose(t1, t2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(n1, n2, atol=1e-12)


def test_frustum_side_hits_lie_on_the_cone():
    f = Frustum(centre=(-0.1, 0.1, 2.0), radius_bottom=0.35, radius_top=0.1, half_height=0.3, rotation=tilted())
    dirs = grid_dirs(81, 0.3)
    t, n = f.intersect(None, dirs)
    hit = np.isfinite(t)
    assert hit.sum() > 800
    local = (t[hit, None] * dirs[hit] - f.centre) @ f.rotation
    radius_at = 0.225 + (0.25 / 0.6) * local[:, 1]
    on_side = np.abs(np.abs(local[:, 1]) - 0.3) > 1e-9
    assert on_side.sum() > 200 and (~on_side).sum() > 40
    np.testing.assert_allclose(np.hypot(local[on_side, 0], local[on_side, 2]), radius_at[on_side], atol=1e-9)
    assert (np.hypot(local[~on_side, 0], local[~on_side, 2]) <= radius_at[~on_side] + 1e-9).all()
    np.testing.assert_allclose(np.linalg.norm(n[hit], axis=1), 1.0, atol=1e-12)
    assert (np.einsum("ij,ij->i", n[hit], dirs[hit]) < 0).all()


# --- Compound -----------------------------------------------------------------------------------------------

def table(centre=(0.0, 0.0, 2.5), rotation=None):
    top = Box(centre=(0.0, -0.3, 0.0), half_extents=(0.5, 0.03, 0.3))
    legs = tuple(Cylinder(centre=(sx * 0.42, 0.03, sz * 0.24), radius=0.03, half_height=0.3)
                 for sx in (-1, 1) for sz in (-1, 1))
    vase = Frustum(centre=(0.1, -0.45, 0.0), radius_bottom=0.08, radius_top=0.12, half_height=0.12)
    ball = Ellipsoid(centre=(-0.2, -0.4, 0.05), radii=(0.1, 0.08, 0.12), rotation=rotation_y(0.3))
    return Compound(centre=centre, rotation=np.eye(3) if rotation is None else rotation,
                    parts=(top, *legs, vase, ball))


def test_compound_is_the_nearest_of_its_parts():
    compound = table(rotation=tilted(0.5, 0.8))
    dirs = grid_dirs(61, 0.35)
    t, n = compound.intersect(None, dirs)
    # The parts posed in the camera frame on their own.
    posed = [p.transformed(compound.rotation, compound.centre) for p in compound.parts]
    results = [p.intersect(None, dirs) for p in posed]
    part_t = np.stack([r[0] for r in results])
    np.testing.assert_allclose(t, part_t.min(axis=0), rtol=0, atol=1e-12)
    nearest = part_t.argmin(axis=0)
    expected_n = np.stack([r[1] for r in results])[nearest, np.arange(len(dirs))]
    np.testing.assert_allclose(n, expected_n, atol=1e-12)
    assert len(np.unique(nearest[np.isfinite(t)])) >= 4   # several parts seen
    assert not n[np.isinf(t)].any()
    # The renderer's call: a 2-D window of rays from one point, as component arrays.
    x, y = np.meshgrid(np.linspace(-0.3, 0.3, 50), np.linspace(-0.2, 0.25, 40))
    t2, n2 = compound.cast((0.0, 0.0, 0.0), (x, y, 1.0))
    flat = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], axis=1)
    t_ref = np.min([p.intersect(None, flat)[0] for p in posed], axis=0)
    assert t2.shape == (40, 50) and np.isfinite(t2).sum() > 300
    np.testing.assert_allclose(t2.ravel(), t_ref, rtol=0, atol=1e-12)
    assert all(np.shape(c) == (40, 50) for c in n2)
    # Rays from everywhere, in every direction, also from inside parts (the top and legs overlap).
    rng = np.random.default_rng(0)
    origins = compound.centre + rng.uniform(-0.7, 0.7, (3000, 3))
    dirs = rng.normal(size=(3000, 3))
    t, n = compound.intersect(origins, dirs)
    results = [p.intersect(origins, dirs) for p in posed]
    part_t = np.stack([r[0] for r in results])
    np.testing.assert_allclose(t, part_t.min(axis=0), rtol=0, atol=1e-12)
    nearest = part_t.argmin(axis=0)
    np.testing.assert_allclose(n, np.stack([r[1] for r in results])[nearest, np.arange(len(dirs))], atol=1e-12)
    assert np.isfinite(t).mean() > 0.1 and np.isinf(t).any()


def test_compound_box_contains_the_parts_and_moves_with_it():
    compound = table(rotation=tilted())
    corners = np.concatenate([p.transformed(compound.rotation, compound.centre).corners() for p in compound.parts])
    local = (corners - compound.centre) @ compound.rotation
    assert (np.abs(local) <= compound.local_extent + 1e-12).all()
    np.testing.assert_allclose(compound.local_extent, [0.5, 0.57, 0.3], atol=1e-12)   # legs' feet at y = 0.33
    moved = compound.transformed(rotation_y(0.3), (0.1, 0.0, 0.5))
    assert moved.parts is compound.parts
    dirs = grid_dirs(21, 0.3)
    t, _ = moved.intersect(None, dirs)
    expected = np.min([p.transformed(moved.rotation, moved.centre).intersect(None, dirs)[0] for p in moved.parts], 0)
    np.testing.assert_allclose(t, expected, atol=1e-12)
    with pytest.raises(ValueError):
        Compound(centre=(0, 0, 0), parts=())
    with pytest.raises(ValueError):
        Compound(centre=(0, 0, 0), parts=("box",))


# --- TriangleMesh -------------------------------------------------------------------------------------------

def test_mesh_cube_matches_the_box():
    v, tri = cube_mesh()
    pose = dict(centre=(0.1, -0.2, 2.5), rotation=tilted())
    mesh, box = TriangleMesh(vertices=v, triangles=tri, **pose), Box(half_extents=(0.5,) * 3, **pose)
    dirs = grid_dirs(61, 0.5)
    (t_mesh, n_mesh), (t_box, n_box) = mesh.intersect(None, dirs), box.intersect(None, dirs)
    # Compare where a ray clears the silhouette by a margin (float32 inside open3d).
    bigger = Box(half_extents=(0.5 + 1e-4,) * 3, **pose).intersect(None, dirs)[0]
    smaller = Box(half_extents=(0.5 - 1e-4,) * 3, **pose).intersect(None, dirs)[0]
    safe = np.isfinite(bigger) == np.isfinite(smaller)
    hit = safe & np.isfinite(t_box)
    assert hit.sum() > 800 and (safe & ~hit).sum() > 500
    assert np.isinf(t_mesh[safe & ~hit]).all() and not n_mesh[safe & ~hit].any()
    np.testing.assert_allclose(t_mesh[hit], t_box[hit], atol=1e-5)
    # Edges: the mesh and the box may pick different faces at a tie; away from them normals agree.
    local = (np.where(hit, t_box, 0.0)[:, None] * dirs - box.centre) @ box.rotation
    away = hit & ((np.abs(np.abs(local) - 0.5) > 1e-4).sum(axis=1) == 2)   # on one face, off its edges
    assert away.sum() > 800
    np.testing.assert_allclose(n_mesh[away], n_box[away], atol=1e-5)
    assert t_mesh.dtype == np.float64 and n_mesh.dtype == np.float64


def test_mesh_rays_from_inside_and_from_the_surface():
    v, tri = cube_mesh()
    mesh, box = (
        TriangleMesh(centre=(0, 0, 0), vertices=v, triangles=tri),
        Box(centre=(0, 0, 0), half_extents=(0.5,) * 3),
    )
    dirs = np.array([[1.0, 0.0, 0.0], [0.3, -0.2, 0.9], [0.0, -1.0, 0.0], [-0.7, 0.1, -0.1]])
    for origin in (np.zeros(3), np.array([0.1, 0.2, -0.3])):
        (t1, n1), (t2, n2) = mesh.intersect(origin, dirs), box.intersect(origin, dirs)
        np.testing.assert_allclose(t1, t2, atol=1e-5)
        np.testing.assert_allclose(n1, n2, atol=1e-5)
    # On the face x = -0.5: leaving it misses, entering it crosses the cube (MIN_HIT_DISTANCE semantics).
    on_face = np.array([-0.5, 0.1, 0.2])
    t, n = mesh.intersect(on_face, np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]))
    assert np.isinf(t[0]) and not n[0].any()
    assert t[1] == pytest.approx(1.0, abs=1e-5) and np.allclose(n[1], [-1, 0, 0], atol=1e-6)
    assert t[2] == pytest.approx(box.intersect(on_face, np.array([[1.0, 0.0, 1.0]]))[0][0], abs=1e-5)


def test_transformed_mesh_copies_share_the_raycaster():
    v, tri = cube_mesh()
    mesh = TriangleMesh(centre=(0.0, 0.0, 3.0), vertices=v, triangles=tri)
    box = Box(centre=(0.0, 0.0, 3.0), half_extents=(0.5,) * 3)
    dirs = grid_dirs(41, 0.3)
    mesh.intersect(None, dirs)
    builds = _MeshRaycaster.builds
    rotation = tilted(0.3, 1.1)
    translation = np.array([0.1, -0.1, 2.5]) - rotation @ mesh.centre   # the moved centre stays in view
    moved, moved_box = mesh.transformed(rotation, translation), box.transformed(rotation, translation)
    assert moved._raycaster is mesh._raycaster and moved.vertices is mesh.vertices
    (t1, _), (t2, _) = moved.intersect(None, dirs), moved_box.intersect(None, dirs)
    assert _MeshRaycaster.builds == builds   # no rebuild for the copy
    bigger = Box(half_extents=(0.5 + 1e-4,) * 3, centre=moved_box.centre, rotation=moved_box.rotation)
    smaller = Box(half_extents=(0.5 - 1e-4,) * 3, centre=moved_box.centre, rotation=moved_box.rotation)
    safe = np.isfinite(bigger.intersect(None, dirs)[0]) == np.isfinite(smaller.intersect(None, dirs)[0])
    assert (safe & np.isfinite(t2)).sum() > 300
    np.testing.assert_allclose(t1[safe], t2[safe], atol=1e-5)
    # A new mesh from other arrays gets its own ray caster; pickling drops and rebuilds the open3d scene.
    other = TriangleMesh(centre=(0, 0, 3.0), vertices=v * 2, triangles=tri)
    assert other._raycaster is not mesh._raycaster
    clone = pickle.loads(pickle.dumps(moved))
    np.testing.assert_array_equal(clone.intersect(None, dirs)[0], t1)
    assert _MeshRaycaster.builds == builds + 1


def test_mesh_validation_and_lazy_open3d_import():
    v, tri = cube_mesh()
    for bad_v, bad_t in ((v[:, :2], tri), (np.where(v > 0, np.nan, v), tri), (v, tri[:0]), (v, tri + 1),
                         (v, tri - 1), (v, tri.astype(float)), (v, tri[:, :2])):
        with pytest.raises(ValueError):
            TriangleMesh(centre=(0, 0, 0), vertices=bad_v, triangles=bad_t)
    mesh = TriangleMesh(centre=(0, 0, 0), vertices=v, triangles=tri)
    assert not mesh.vertices.flags.writeable and not mesh.triangles.flags.writeable
    np.testing.assert_array_equal(mesh.local_extent, [0.5, 0.5, 0.5])
    for bad in (dict(radii=(1, 0, 1)), dict(radii=(1, 1))):
        with pytest.raises(ValueError):
            Ellipsoid(centre=(0, 0, 0), **bad)
    for bad in ((0, 0, 1), (-0.1, 1, 1), (1, 1, 0)):
        with pytest.raises(ValueError):
            Frustum(centre=(0, 0, 0), radius_bottom=bad[0], radius_top=bad[1], half_height=bad[2])
    code = ("import sys; import amodal_depth_ros.synthetic.shapes, amodal_depth_ros.synthetic.meshes, "
            "amodal_depth_ros.synthetic.scene; assert 'open3d' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- meshes -------------------------------------------------------------------------------------------------

def generated():
    rng = np.random.default_rng(11)
    return {
        "cylinder": meshes.lathe([0.3, 0.3], [-0.5, 0.5]),
        "vase": meshes.lathe([0.06, 0.12, 0.15, 0.08, 0.1], [-0.2, -0.1, 0.05, 0.15, 0.2], segments=20),
        "cone": meshes.lathe([0.0, 0.2], [-0.3, 0.3]),
        "bowl": meshes.lathe([0.2, 0.1, 0.0, 0.08, 0.18], [-0.1, 0.1, 0.1, 0.05, -0.1]),
        "rock": meshes.rock(rng, 0.3),
        "rough_rock": meshes.rock(rng, 0.2, roughness=0.6, subdivisions=3),
        "prism": meshes.prism(meshes.star_polygon(rng, 9, 0.1, 0.3), 0.15),
        "square": meshes.prism(np.array([[0, 0], [0, 1], [1, 1], [1, 0]]), 0.5),   # clockwise input
        "torus": meshes.torus(0.3, 0.08),
    }


@pytest.mark.parametrize("name", list(generated()))
def test_generated_meshes_are_closed_outward_and_centred(name):
    vertices, triangles = generated()[name]
    assert vertices.dtype == np.float64 and vertices.shape[1] == 3 and np.isfinite(vertices).all()
    assert triangles.dtype == np.int64 and triangles.min() >= 0 and triangles.max() < len(vertices)
    counts, repeated = edge_counts(triangles)
    assert (counts == 2).all() and not repeated   # watertight and consistently wound
    assert len(np.unique(triangles)) == len(vertices)   # no stray vertices
    assert volume(vertices, triangles) > 0
    assert meshes.signed_volume(vertices, triangles) == pytest.approx(volume(vertices, triangles))
    np.testing.assert_allclose(vertices.min(axis=0) + vertices.max(axis=0), 0.0, atol=1e-12)


def test_generated_volumes_match_the_solids():
    v, t = meshes.lathe([0.3, 0.3], [-0.5, 0.5])   # 24-gon prism: 12 sin(15 deg) r^2 h = 0.9886 pi r^2 h
    assert volume(v, t) == pytest.approx(12 * np.sin(np.pi / 12) * 0.09, rel=1e-12)
    assert volume(v, t) == pytest.approx(np.pi * 0.09, rel=0.02)
    v, t = meshes.lathe(np.r_[0.0, 0.3 * np.sin(np.linspace(0, np.pi, 64)[1:-1]), 0.0],
                        -0.3 * np.cos(np.linspace(0, np.pi, 64)), segments=64)
    assert volume(v, t) == pytest.approx(4 / 3 * np.pi * 0.3 ** 3, rel=0.01)   # a sphere
    assert volume(*meshes.torus(0.3, 0.08)) == pytest.approx(2 * np.pi ** 2 * 0.3 * 0.08 ** 2, rel=0.06)
    assert volume(*meshes.torus(0.3, 0.08, 96, 48)) == pytest.approx(2 * np.pi ** 2 * 0.3 * 0.08 ** 2, rel=0.005)
    polygon = meshes.star_polygon(np.random.default_rng(3), 7, 0.1, 0.25)
    x, z = polygon.T
    area = 0.5 * np.sum(x * np.roll(z, -1) - np.roll(x, -1) * z)
    assert area > 0 and volume(*meshes.prism(polygon, 0.2)) == pytest.approx(0.4 * area, rel=1e-12)
    v, t = meshes.rock(np.random.default_rng(0), 0.3, roughness=0.0, subdivisions=3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 0.3, atol=1e-12)
    assert volume(v, t) == pytest.approx(4 / 3 * np.pi * 0.3 ** 3, rel=0.02)


def test_generators_are_deterministic_and_shaped_as_asked():
    a, b, c = (meshes.rock(np.random.default_rng(seed), 0.3, roughness=0.3) for seed in (5, 5, 6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=False))
    assert not np.allclose(a[0], c[0])
    radii = np.linalg.norm(a[0] - a[0].mean(axis=0), axis=1)
    assert 0.3 * 0.6 < radii.min() and radii.max() < 0.3 * 1.4 and radii.std() > 0.01
    assert len(a[1]) == 20 * 4 ** 2
    p, q = (
        meshes.star_polygon(np.random.default_rng(1), 8, 0.1, 0.3),
        meshes.star_polygon(np.random.default_rng(1), 8, 0.1, 0.3),
    )
    assert np.array_equal(p, q) and p.shape == (8, 2)
    for seed in range(30):   # star-shaped about its centroid (the origin), counter-clockwise
        p = meshes.star_polygon(np.random.default_rng(seed), 3 + seed % 9, 0.05, 0.3)
        cross = p[:, 0] * np.roll(p[:, 1], -1) - p[:, 1] * np.roll(p[:, 0], -1)
        assert (cross > 0).all()
        meshes.prism(p, 0.1)
    v, _ = meshes.torus(0.3, 0.08)
    np.testing.assert_allclose(np.abs(v).max(axis=0), [0.38, 0.08, 0.38], atol=1e-12)   # lies in x-z
    v, _ = meshes.lathe([0.1, 0.2], [-0.4, 0.2])
    np.testing.assert_allclose(v[:, 1].min(), -0.3, atol=1e-12)   # centred: y spans [-0.3, 0.3]
    with pytest.raises(ValueError):
        meshes.prism(np.array([[0, 0], [1, 0], [0.1, 0.1], [0, 1]]), 0.1)   # not star-shaped about its centroid
    with pytest.raises(ValueError):
        meshes.lathe([0.0, 0.0, 0.2], [0.0, 0.1, 0.2])
    with pytest.raises(ValueError):
        meshes.torus(0.1, 0.2)
    with pytest.raises(ValueError):
        meshes.rock(np.random.default_rng(0), 0.3, roughness=1.0)


def test_rock_mesh_depths_lie_on_the_mesh_surface():
    v, t = meshes.rock(np.random.default_rng(2), 0.3)
    rock = TriangleMesh(centre=(0.0, 0.0, 2.0), vertices=v, triangles=t, rotation=tilted())
    dirs = grid_dirs(41, 0.2)
    depth, normals = rock.intersect(None, dirs)
    hit = np.isfinite(depth)
    assert hit.sum() > 500
    local = (depth[hit, None] * dirs[hit] - rock.centre) @ rock.rotation
    # Every hit lies in the plane of some triangle, within float32 accuracy, on a front face.
    a, b, c = (v[t[:, j]] for j in range(3))
    plane_n = np.cross(b - a, c - a)
    plane_n /= np.linalg.norm(plane_n, axis=1, keepdims=True)
    distance = np.abs(np.einsum("hij,ij->hi", local[:, None, :] - a[None], plane_n))
    assert distance.min(axis=1).max() < 1e-5
    assert (np.einsum("ij,ij->i", normals[hit], dirs[hit]) < 0).all()
    np.testing.assert_allclose(np.linalg.norm(normals[hit], axis=1), 1.0, atol=1e-6)


# --- the renderer's culling ---------------------------------------------------------------------------------

def culling_cases():
    rng = np.random.default_rng(4)
    torus, rock, vase = (
        meshes.torus(0.3, 0.1),
        meshes.rock(rng, 0.25),
        meshes.lathe([0.05, 0.15, 0.1], [-0.3, 0.0, 0.3]),
    )
    prism = meshes.prism(meshes.star_polygon(rng, 6, 0.1, 0.3), 0.2)
    return {
        "ellipsoid": Ellipsoid(centre=(0.6, 0.2, 1.5), radii=(0.6, 0.2, 0.3), rotation=tilted()),
        "ellipsoid_behind": Ellipsoid(centre=(-0.3, 0.1, 0.1), radii=(0.4, 0.3, 0.5), rotation=tilted(1.0, 0.2)),
        "frustum": Frustum(
            centre=(-0.4, 0.3, 1.2), radius_bottom=0.3, radius_top=0.1, half_height=0.4, rotation=tilted(0.9, 0.3)
        ),
        "cone": Frustum(centre=(0.8, -0.5, 2.0), radius_bottom=0.0, radius_top=0.5, half_height=0.5),
        "table": table(centre=(0.1, 0.2, 1.6), rotation=tilted(0.6, 0.9)),
        "torus": TriangleMesh(centre=(0.2, 0.0, 1.0), rotation=tilted(1.2, 0.4), vertices=torus[0], triangles=torus[1]),
        "rock": TriangleMesh(centre=(-0.7, -0.4, 1.4), vertices=rock[0], triangles=rock[1]),
        "vase_behind": TriangleMesh(centre=(0.1, 0.0, 0.05), rotation=tilted(), vertices=vase[0], triangles=vase[1]),
        "prism": TriangleMesh(
            centre=(0.0, 0.5, 1.8), rotation=tilted(-0.5, 2.0), vertices=prism[0], triangles=prism[1]
        ),
    }


@pytest.mark.parametrize("name", list(culling_cases()))
def test_screen_window_contains_every_hit(name):
    shape = culling_cases()[name]
    intr = CameraIntrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
    u, v = np.meshgrid(np.arange(intr.width, dtype=float), np.arange(intr.height, dtype=float))
    t, _ = shape.cast((0.0, 0.0, 0.0), ((u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0))
    hit = np.isfinite(t)
    assert hit.shape == (120, 160) and hit.sum() > 100
    window = _screen_window(shape, intr)
    assert window is not None
    outside = hit.copy()
    outside[window] = False
    assert not outside.any()
