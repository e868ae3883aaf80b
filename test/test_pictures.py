"""Point cloud rendering for the README pictures and the `amodal-depth pictures` command."""
import cv2
import numpy as np

from amodal_depth_ros.core import CameraIntrinsics, LayeredCloud
from amodal_depth_ros.tools import cli
from amodal_depth_ros.visualize import LAYER_RGB, cloud_view, render_points

INTR = CameraIntrinsics(100.0, 100.0, 49.5, 39.5, 100, 80)


def test_points_land_where_the_pinhole_says_and_the_nearest_wins():
    points = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.5, 0.2, 2.0]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    image = render_points(points, colors, INTR, np.eye(3), np.zeros(3), radius=0)
    assert image[40, 50].tolist() == [0, 255, 0]          # (0, 0, 1) projects to (49.5, 39.5) -> rounded (50, 40)
    assert image[round(0.2 / 2 * 100 + 39.5), round(0.5 / 2 * 100 + 49.5)].tolist() == [0, 0, 255]
    assert (image.reshape(-1, 3) != 24).any(axis=1).sum() == 2   # one pixel per point, the far red one hidden


def test_behind_the_camera_is_not_drawn():
    image = render_points(np.array([[0.0, 0.0, -1.0]]), np.array([[255, 255, 255]], np.uint8), INTR, np.eye(3),
                          np.zeros(3))
    assert (image == 24).all()


def test_cloud_view_highlights_hidden_layers():
    yy, xx = np.mgrid[-20:20, -20:20] / 20.0
    wall = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, 3.0)], 1)
    hidden = wall[::3] + [0.0, 0.0, 0.5]
    cloud = LayeredCloud.from_arrays(points=np.concatenate([wall, hidden]).astype(np.float32),
                         colors=np.full((len(wall) + len(hidden), 3), 200, np.uint8),
                         layer=np.r_[np.zeros(len(wall)), np.ones(len(hidden))].astype(np.uint8),
                         instance=np.zeros(len(wall) + len(hidden), np.uint16))
    view = cloud_view(cloud, INTR, yaw_deg=0.0, pitch_deg=0.0)
    colours = {tuple(c) for c in view.reshape(-1, 3).tolist()}
    assert (110, 110, 110) in colours                       # seen points dimmed
    assert tuple(LAYER_RGB[1].tolist()) not in colours      # straight on, the wall hides layer 1
    side = cloud_view(cloud, INTR, yaw_deg=60.0, pitch_deg=0.0)
    assert tuple(LAYER_RGB[1].tolist()) in {tuple(c) for c in side.reshape(-1, 3).tolist()}


def test_pictures_command_writes_the_readme_pictures(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    amodal_mask:\n      method: convex_hull\n"
                      "    amodal_depth:\n      method: plane_fit\n")
    assert cli.main(["pictures", str(tmp_path), "--width", "160", "--height", "120", "--params", str(params)]) == 0
    for name in ("input.png", "visible_depth.png", "amodal_depth.png", "hidden.png", "cloud_view.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape == (120, 160, 3), name
    view = cv2.imread(str(tmp_path / "cloud_view.png"))[..., ::-1]
    highlighted = np.isin(view.reshape(-1, 3) @ [65536, 256, 1], LAYER_RGB[1:].astype(np.int64) @ [65536, 256, 1])
    assert highlighted.sum() > 20                             # hidden surfaces are visible from the side


def test_pictures_of_real_frames_show_segmentation_and_hidden_surfaces(tmp_path):
    """A folder in the intrinsics.json + color.png / depth.png layout (as GraspNet's), drawn as one picture:
    input | segmentation | completed hidden surfaces."""
    from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render

    truth = render(*box_in_front_of_wall(160, 120))
    folder = tmp_path / "camera"
    folder.mkdir()
    cv2.imwrite(str(folder / "color.png"), truth.rgb[..., ::-1])
    cv2.imwrite(str(folder / "depth.png"), np.round(truth.depth * 1000).astype(np.uint16))
    i = truth.intrinsics
    (folder / "intrinsics.json").write_text(f'{{"fx": {i.fx}, "fy": {i.fy}, "cx": {i.cx}, "cy": {i.cy}, '
                                            '"depth_scale": 1000}')
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    amodal_mask:\n      method: convex_hull\n"
                      "    amodal_depth:\n      method: plane_fit\n    segmentation:\n      method: geometric\n")
    out = tmp_path / "out"
    assert cli.main(["pictures", str(out), "--no-demo", "--params", str(params), "--real", str(folder)]) == 0
    picture = cv2.imread(str(out / "real_camera.png"))[..., ::-1]
    assert picture.shape == (300, 1200, 3)
    segmentation, hidden = picture[:, 400:800], picture[:, 800:]
    box = cv2.resize(truth.instance_ids.astype(np.uint8), (400, 300), interpolation=cv2.INTER_NEAREST) == 2
    inner = cv2.erode(box.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    wall_colour, box_colour = np.median(segmentation[~box], axis=0), np.median(segmentation[inner], axis=0)
    assert np.abs(wall_colour - box_colour).max() > 40          # box and wall are two instances
    # The wall is completed behind the box: the hidden panel is tinted there, the darkened input elsewhere.
    change = np.abs(hidden.astype(float) - 0.35 * picture[:, :400]).max(axis=2)
    assert np.median(change[inner]) > 25 and np.median(change[~box]) < 3
    assert cli.main(["pictures", str(out), "--real", str(tmp_path / "nowhere")]) == 2
