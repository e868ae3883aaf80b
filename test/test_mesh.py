"""The completed mesh (core.mesh): grid triangulation of the visible surface and the hidden layers, its PLY
file, and its Marker written as CDR bytes (ros.marker)."""
import numpy as np
import open3d as o3d
import pytest
from rclpy.serialization import deserialize_message
from visualization_msgs.msg import Marker

from amodal_depth_ros.core.mesh import LayeredMesh, build_layered_mesh, grid_triangles, write_ply
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.ros.marker import mesh_marker
from amodal_depth_ros.ros.outputs import completed_mesh
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render

GEOMETRIC = {"segmentation.method": "geometric", "amodal_mask.method": "convex_hull",
             "amodal_depth.method": "plane_fit"}


@pytest.fixture(scope="module")
def box_scene():
    """The rendered box (front face at 1.5 m) before a wall at 3 m, and the geometric pipeline's result on it:
    the hidden wall behind the box is the plane fit's exact continuation."""
    truth = render(*box_in_front_of_wall(320, 240))
    return truth, AmodalDepthPipeline(GEOMETRIC)(truth.to_rgbd_frame())


def pixels_of(points, intrinsics):
    """(rows, cols) of camera-frame points."""
    return (np.rint(points[:, 1] / points[:, 2] * intrinsics.fy + intrinsics.cy).astype(int),
            np.rint(points[:, 0] / points[:, 2] * intrinsics.fx + intrinsics.cx).astype(int))


def test_grid_triangles_cut_at_depth_steps_and_between_instances():
    depth = np.array([[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [1.0, np.nan, 2.0]], np.float32)
    index, triangles = grid_triangles(depth, None, 0.05)
    assert index[2, 1] == -1 and index.max() == 7                       # 8 points with depth
    # The right column is a depth step: no triangle reaches it; the hole leaves one triangle of its square.
    assert sorted(map(tuple, triangles.tolist())) == sorted([(index[0, 0], index[1, 0], index[0, 1]),
                                                             (index[0, 1], index[1, 0], index[1, 1]),
                                                             (index[1, 0], index[2, 0], index[1, 1])])
    assert len(grid_triangles(np.ones((2, 2), np.float32), None, 0.05)[1]) == 2
    _, kept = grid_triangles(np.ones((2, 2), np.float32), np.array([[1, 1], [1, 2]]), 0.05)
    assert len(kept) == 1   # the square's second triangle would join instances 1 and 2


def test_mesh_vertices_lie_on_the_visible_and_hidden_true_surfaces(box_scene):
    truth, result = box_scene
    mesh = completed_mesh(result, stride=2, depth_jump=0.05)
    intr = truth.intrinsics
    visible, hidden = mesh.vertices[mesh.layer == 0], mesh.vertices[mesh.layer == 1]
    rows, cols = pixels_of(visible, intr)
    assert np.all(rows % 2 == 0) and np.all(cols % 2 == 0)               # the grid
    assert np.allclose(visible[:, 2], truth.depth[rows, cols], rtol=1e-6)
    assert len(visible) == np.isfinite(truth.depth[::2, ::2]).sum()
    # Behind the box: the wall at 3 m, over the box's image region.
    rows, cols = pixels_of(hidden, intr)
    box = truth.visible_mask(truth.id_of("box"))
    assert len(hidden) >= 0.95 * box[::2, ::2].sum() and box[rows, cols].all()
    assert np.allclose(hidden[:, 2], 3.0, atol=0.01)
    # No triangle spans the box's outline; all face the camera; the hidden layer is one surface.
    corners = mesh.vertices[mesh.triangles]
    z = corners[..., 2]
    assert (z.max(axis=1) <= 1.05 * z.min(axis=1)).all()
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (np.einsum("ij,ij->i", normals, corners.mean(axis=1)) < 0).all()
    layer = mesh.triangle_layer
    assert (layer == 1).sum() >= 0.9 * 2 * box[::2, ::2].sum() and set(np.unique(layer)) == {0, 1}
    # Colours: observed for visible vertices, the wall's mean colour behind the box.
    assert (mesh.colors[mesh.layer == 0] == result.frame.rgb[pixels_of(visible, intr)]).all()
    assert len(np.unique(mesh.colors[mesh.layer == 1], axis=0)) == 1


def test_mesh_stride_and_ply_round_trip(box_scene, tmp_path):
    truth, result = box_scene
    coarse = completed_mesh(result, stride=8)
    fine = completed_mesh(result, stride=4)
    assert 3.5 * len(coarse.vertices) < len(fine.vertices) < 4.5 * len(coarse.vertices)
    write_ply(fine, tmp_path / "mesh.ply")
    read = o3d.io.read_triangle_mesh(str(tmp_path / "mesh.ply"))
    assert np.allclose(np.asarray(read.vertices), fine.vertices, atol=1e-6)
    assert (np.asarray(read.triangles) == fine.triangles).all()
    assert np.allclose(np.asarray(read.vertex_colors) * 255, fine.colors, atol=0.5)


def test_marker_bytes_deserialise_to_the_mesh(box_scene):
    _, result = box_scene
    mesh = completed_mesh(result, stride=8)
    serialized = mesh_marker(mesh, (12, 345), "cam_optical", hidden_alpha=0.5)
    assert serialized.msg_type is Marker
    marker = deserialize_message(serialized.data, Marker)
    assert marker.type == Marker.TRIANGLE_LIST and marker.action == Marker.ADD and marker.ns == "completed_mesh"
    assert (marker.header.stamp.sec, marker.header.stamp.nanosec, marker.header.frame_id) == (12, 345, "cam_optical")
    assert marker.pose.orientation.w == 1.0 and marker.scale.x == 1.0 and marker.texture_resource == ""
    corners = mesh.triangles.ravel()
    points = np.array([(p.x, p.y, p.z) for p in marker.points])
    colors = np.array([(c.r, c.g, c.b, c.a) for c in marker.colors])
    assert len(points) == len(colors) == 3 * len(mesh.triangles)
    assert np.array_equal(points, mesh.vertices[corners].astype(np.float64))
    assert np.allclose(colors[:, :3] * 255, mesh.colors[corners], atol=1e-3)
    assert np.array_equal(colors[:, 3], np.where(mesh.layer[corners] == 0, 1.0, 0.5).astype(np.float32))


def test_empty_mesh_is_a_valid_marker():
    empty = LayeredMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.int32),
                        np.zeros(0, np.uint8), np.zeros((0, 3), np.int32))
    marker = deserialize_message(mesh_marker(empty, (0, 0), "cam").data, Marker)
    assert marker.points == [] and marker.colors == [] and marker.header.frame_id == "cam"


def test_build_layered_mesh_without_hidden_surfaces(box_scene):
    truth, result = box_scene
    from amodal_depth_ros.core.layers import stack_hidden_surfaces
    mesh = build_layered_mesh(result.frame, result.visible_depth, result.segmentation.labels,
                              stack_hidden_surfaces([], truth.depth.shape), stride=4)
    assert set(np.unique(mesh.layer)) == {0} and len(mesh.triangles) > 0
