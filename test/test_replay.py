"""Offline replay: a bag the test records from synthetic frames, through the pipeline, into an output bag."""
import json

import numpy as np
import pytest

from amodal_depth_ros.core import config
from amodal_depth_ros.datasets.bag import TOPICS, write_ground_truth_bag
from amodal_depth_ros.ros import conversions as conv
from amodal_depth_ros.ros.bag import read_messages, topics_of
from amodal_depth_ros.ros.replay import replay
from amodal_depth_ros.synthetic import SyntheticCamera
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render
from amodal_depth_ros.tools import cli

GEOMETRIC = {
    "segmentation.method": "geometric",
    "amodal_mask.method": "convex_hull",
    "amodal_depth.method": "plane_fit",
}
OUT_TOPICS = ("visible_depth/image", "visible_depth/camera_info", "amodal_depth/image", "amodal_depth/camera_info",
              "amodal_points", "amodal_instances")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """4 frames of the swaying synthetic camera at 10 Hz (image, camera_info, depth, truth)."""
    camera = SyntheticCamera(seed=1, width=160, height=120)
    frames = [camera.frame(i) for i in range(4)]
    path = tmp_path_factory.mktemp("bags") / "camera"
    write_ground_truth_bag(path, frames, "sqlite3", frame_id="cam_optical")
    return path, frames


def outputs_by_stamp(path, names=OUT_TOPICS):
    out = {}
    for topic, _, msg in read_messages(path, [f"/amodal/{t}" for t in names]):
        out.setdefault(conv.stamp_to_ns(msg.header.stamp), {})[topic.removeprefix("/amodal/")] = msg
    return out


def test_replay_writes_the_node_outputs_with_input_stamps(recorded, tmp_path):
    path, frames = recorded
    summary = replay(path, tmp_path / "out", config.validated(GEOMETRIC))
    assert (summary.frames_in, summary.frames_out, summary.rejected) == (4, 4, {})
    types = topics_of(tmp_path / "out")
    assert types["/amodal/amodal_points"] == ("sensor_msgs/msg/PointCloud2", 4)
    assert types["/amodal/amodal_instances"] == ("amodal_depth_ros/msg/AmodalInstanceArray", 4)
    by_stamp = outputs_by_stamp(tmp_path / "out")
    assert sorted(by_stamp) == [1_700_000_000 * 10**9 + k * 100_000_000 for k in range(4)]
    for stamp, frame in zip(sorted(by_stamp), frames, strict=False):
        messages = by_stamp[stamp]
        assert set(messages) == set(OUT_TOPICS)
        assert all(m.header.frame_id == "cam_optical" for m in messages.values())
        visible = conv.image_to_depth(messages["visible_depth/image"])
        assert np.allclose(visible, frame.depth, equal_nan=True, atol=1e-6)
        amodal = conv.image_to_depth(messages["amodal_depth/image"])
        assert (amodal[np.isfinite(visible)] >= visible[np.isfinite(visible)] - 1e-6).all()
        assert (amodal > visible + 0.01).any()                   # something hidden was completed
        info = messages["amodal_depth/camera_info"]
        assert info.k[0] == pytest.approx(frame.intrinsics.fx) and info.width == 160
        cloud = conv.cloud_from_msg(messages["amodal_points"])
        hidden = cloud["layer"] > 0
        assert hidden.any() and np.isfinite(cloud["z"]).all()


def test_replay_is_deterministic_and_copies_inputs(recorded, tmp_path):
    path, _ = recorded
    for name in ("a", "b"):
        replay(path, tmp_path / name, config.validated(GEOMETRIC), copy_inputs=True)

    def messages(bag):   # field-wise message equality (CDR padding bytes may differ between runs)
        return list(read_messages(bag, [f"/amodal/{t}" for t in OUT_TOPICS] + [TOPICS["image"]]))

    first = messages(tmp_path / "a")
    assert first == messages(tmp_path / "b")
    assert len(first) == 4 * (len(OUT_TOPICS) + 1)


def test_replay_command_and_its_errors(recorded, tmp_path, capsys):
    path, _ = recorded
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    amodal_mask:\n      method: convex_hull\n"
                      "    amodal_depth:\n      method: plane_fit\n")
    assert cli.main(["replay", str(path), str(tmp_path / "out"), "--params", str(params)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames_out"] == 4 and report["stage_ms_mean"]["total"] > 0
    assert cli.main(["replay", str(path), str(tmp_path / "out")]) == 2            # never overwrites
    assert "exists" in capsys.readouterr().err
    assert cli.main(["replay", str(path), str(tmp_path / "o2"), "--depth-topic", "/nope"]) == 2
    assert "missing topic" in capsys.readouterr().err


def test_frames_that_cannot_be_decoded_are_counted_not_fatal(tmp_path):
    from std_msgs.msg import Header

    from amodal_depth_ros.ros import BagWriter

    frame = render(*box_in_front_of_wall(160, 120))
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        for k in range(3):
            stamp = 10**18 + k * 10**8
            header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="cam")
            info = conv.intrinsics_to_camera_info(frame.intrinsics, header)
            if k == 1:
                info.k[0] = float("nan")                   # a driver bug: NaN focal length
            bag.write(TOPICS["image"], conv.rgb_to_image(frame.rgb, header), stamp)
            bag.write(TOPICS["camera_info"], info, stamp)
            bag.write(TOPICS["depth"], conv.depth_to_image(frame.depth, header), stamp)
    summary = replay(path, tmp_path / "out", config.validated(GEOMETRIC))
    assert summary.frames_in == 3 and summary.frames_out == 2
    assert summary.rejected == {"invalid_intrinsics": 1}


@pytest.mark.parametrize("clock", [[], ["--use-sim-time"]], ids=["wall_time", "sim_time_with_clock"])
def test_live_replay_agrees_with_offline_replay(recorded, tmp_path, capsys, clock):
    """The same bag played into a real node process over DDS and processed offline: same outputs; also with the
    node on use_sim_time and the bag's time on /clock (`ros2 bag play --clock`)."""
    path, _ = recorded
    offline, live = tmp_path / "offline", tmp_path / "live"
    assert cli.main(["replay", str(path), str(offline)]) == 0
    assert cli.main(["play", str(path), str(live), "--start-node", "--drain", "60", "--connect-timeout", "120",
                     *clock]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames_played"] == 4
    # A busy node supersedes frames (how many depends on the machine's load); the newest it always processes.
    assert report["complete_frames"] >= 1
    expected, got = outputs_by_stamp(offline), outputs_by_stamp(live)
    assert set(got.get(max(expected), {})) == set(OUT_TOPICS)
    compared = 0
    for stamp, messages in got.items():
        if set(messages) != set(OUT_TOPICS):
            continue
        for topic in ("visible_depth/image", "amodal_depth/image"):
            assert np.array_equal(conv.image_to_depth(messages[topic]), conv.image_to_depth(expected[stamp][topic]),
                                  equal_nan=True), topic
        live_cloud, offline_cloud = (conv.cloud_from_msg(m["amodal_points"]) for m in (messages, expected[stamp]))
        assert all(np.array_equal(live_cloud[k], offline_cloud[k]) for k in offline_cloud)
        assert messages["amodal_instances"] == expected[stamp]["amodal_instances"]
        assert messages["amodal_depth/camera_info"] == expected[stamp]["amodal_depth/camera_info"]
        compared += 1
    assert compared == report["complete_frames"]


def test_play_refuses_a_missing_topic(recorded, tmp_path, capsys):
    path, _ = recorded
    assert cli.main(["play", str(path), str(tmp_path / "o"), "--image-topic", "/nope", "--connect-timeout", "1"]) == 2
    assert "missing topic" in capsys.readouterr().err


def test_colorized_depth_topics_on_request(recorded, tmp_path):
    from amodal_depth_ros.visualize import colorize_depth

    path, _ = recorded
    replay(
        path, tmp_path / "out", config.validated({**GEOMETRIC, "output.colorized": True, "output.colorize_max": 4.0})
    )
    messages = next(iter(outputs_by_stamp(tmp_path / "out", ("visible_depth/image", "visible_depth/colorized",
                                                                  "amodal_depth/colorized")).values()))
    visible = conv.image_to_depth(messages["visible_depth/image"])
    assert messages["visible_depth/colorized"].encoding == "rgb8"
    assert np.array_equal(conv.image_to_rgb(messages["visible_depth/colorized"]), colorize_depth(visible, 0.3, 4.0))
    assert "amodal_depth/colorized" in messages



def test_replay_reads_ros1_bags(recorded, tmp_path):
    """The same frames in a ROS 1 bag (converted message by message) give the same outputs."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag1 import Writer

    from amodal_depth_ros.ros.bag import type_name, typestore

    path, _ = recorded
    store = typestore()
    ros1 = tmp_path / "camera.bag"
    writer = Writer(ros1)
    writer.open()
    connections = {}
    for topic, time, msg in read_messages(path, [TOPICS["image"], TOPICS["camera_info"], TOPICS["depth"]]):
        name = type_name(msg)
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, name, typestore=store)
        writer.write(connections[topic], time, store.cdr_to_ros1(serialize_message(msg), name))
    writer.close()
    replay(path, tmp_path / "from_ros2", config.validated(GEOMETRIC))
    summary = replay(ros1, tmp_path / "from_ros1", config.validated(GEOMETRIC))
    assert summary.frames_out == 4
    assert outputs_by_stamp(tmp_path / "from_ros1") == outputs_by_stamp(tmp_path / "from_ros2")


def test_replay_writes_each_frames_completed_mesh_as_ply(recorded, tmp_path, capsys):
    """--mesh DIR: one PLY per frame, named by its stamp, whose visible vertices lie on the frame's depth and
    whose hidden layers lie behind it; the mesh stays out of the bag."""
    import open3d as o3d

    path, frames = recorded
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    segmentation:\n      method: geometric\n    amodal_mask:\n"
                      "      method: convex_hull\n    amodal_depth:\n      method: plane_fit\n    output:\n"
                      "      mesh_stride: 2\n")
    assert cli.main(["replay", str(path), str(tmp_path / "out"), "--params", str(params), "--mesh",
                     str(tmp_path / "meshes")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["meshes_written"] == 4
    assert "/amodal/completed_mesh" not in topics_of(tmp_path / "out")
    stamps = sorted(int(p.stem) for p in (tmp_path / "meshes").glob("*.ply"))
    assert stamps == [1_700_000_000 * 10**9 + k * 100_000_000 for k in range(4)]
    frame = frames[-1]
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "meshes" / f"{stamps[-1]}.ply"))
    vertices, triangles = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    assert len(triangles) > 0
    intr = frame.intrinsics
    rows = np.rint(vertices[:, 1] / vertices[:, 2] * intr.fy + intr.cy).astype(int)
    cols = np.rint(vertices[:, 0] / vertices[:, 2] * intr.fx + intr.cx).astype(int)
    observed = frame.depth[rows, cols]
    on_surface = np.isclose(vertices[:, 2], observed, rtol=1e-5)
    behind = vertices[:, 2] > observed + 0.005   # hidden layers: farther than what hides them
    assert (on_surface | behind).all() and behind.any()
    assert on_surface.sum() == np.isfinite(frame.depth[::2, ::2]).sum()   # every visible grid point


def test_replay_fuses_a_posed_camera_path_into_a_map(tmp_path, capsys):
    """--map with --pose-topic: the frames of a moving camera, each placed by its PoseStamped, fuse into one
    map whose observed points lie on the scene's true surfaces; a NaN pose leaves its frame out, counted."""
    import open3d as o3d
    from geometry_msgs.msg import PoseStamped
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation
    from std_msgs.msg import Header

    from amodal_depth_ros.ros.bag import BagWriter
    from amodal_depth_ros.synthetic.paths import path_frames, scene_world, true_surface_points

    steps = list(path_frames(scene_world("tabletop", 4, 160, 120), 4))
    bag = tmp_path / "posed"
    with BagWriter(bag, "mcap") as out:
        for k, step in enumerate(steps):
            stamp = 1_700_000_000 * 10**9 + k * 100_000_000
            header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="cam_optical")
            out.write(TOPICS["image"], conv.rgb_to_image(step.truth.rgb, header), stamp)
            out.write(TOPICS["camera_info"], conv.intrinsics_to_camera_info(step.truth.intrinsics, header), stamp)
            out.write(TOPICS["depth"], conv.depth_to_image(step.truth.depth, header), stamp)
            pose = PoseStamped(header=Header(stamp=header.stamp, frame_id="map"))
            matrix = step.camera_to_world
            x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in matrix[:3, 3])
            pose.pose.orientation.x, pose.pose.orientation.y, pose.pose.orientation.z, pose.pose.orientation.w = (
                float(x), float(y), float(z), float(w))
            if k == 2:
                pose.pose.position.x = float("nan")   # a bad pose: that frame is not fused
            out.write("/camera/pose", pose, stamp)
    assert cli.main(["replay", str(bag), str(tmp_path / "out"), "--map", str(tmp_path / "map"),
                     "--pose-topic", "/camera/pose"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["frames_fused"], report["frames_without_pose"]) == (3, 1)
    from amodal_depth_ros.visualize import PLY_DTYPE

    data = (tmp_path / "map" / "map_cloud.ply").read_bytes()
    cloud = np.frombuffer(data[data.index(b"end_header\n") + len(b"end_header\n"):], PLY_DTYPE)
    points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
    observed = cloud["layer"] == 0
    truth = np.concatenate([true_surface_points(s, 1) for s in steps])
    distance, _ = cKDTree(truth).query(points)
    # The observed points, each frame placed by its pose, lie on the true surfaces (2 cm voxels).
    assert observed.sum() > 500 and np.mean(distance[observed] <= 0.02) > 0.75
    assert (~observed).any()   # and something was predicted behind what the frames saw
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "map" / "map_mesh.ply"))
    assert len(mesh.triangles) > 500
