"""The node as a real process over real DDS: output content, bad input, QoS, parameters, backlog."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from conftest import settled_diagnostics, wait_for

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from amodal_depth_ros.core import CameraIntrinsics  # noqa: E402
from amodal_depth_ros.ros import CameraStreamClient  # noqa: E402
from amodal_depth_ros.ros import conversions as conv  # noqa: E402
from amodal_depth_ros.ros.diagnostics import images_accounted, unaccounted_images  # noqa: E402
from amodal_depth_ros.ros.process import remap_args  # noqa: E402
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render  # noqa: E402

REMAPS = remap_args()
STAMPS = itertools.count(1_000_000_000_000, 10_000_000)
W, H = 320, 240


@pytest.fixture(scope="module")
def scene():
    objects, intr = box_in_front_of_wall(W, H)
    return render(objects, intr)


@pytest.fixture(scope="module")
def node_and_client(rclpy_context, tmp_path_factory):
    from conftest import ROOT, NodeProcess
    # The geometric stages: these tests check the node against analytic geometry (the learned stages
    # are checked against ground truth in test_learned_stages.py and by `amodal-depth eval`).
    node = NodeProcess(["--params-file", str(ROOT / "config" / "amodal_depth.yaml"), "-p", "diagnostics.period:=0.2",
                        "-p", "diagnostics.log_throttle:=0.0", "-p", "segmentation.method:=geometric",
                        "-p", "amodal_mask.method:=convex_hull",
                        "-p", "amodal_depth.method:=plane_fit", *REMAPS], tmp_path_factory.mktemp("node") / "node.log")
    client = CameraStreamClient()
    assert client.wait_connected(60.0), f"node did not connect; log:\n{node.log()}"
    yield node, client
    client.close()
    node.stop()


def send_until_output(client, rgb, depth, intr, tries=10, wait=2.0, **encodings):
    return client.publish_until_output(rgb, depth, intr, STAMPS, tries, wait, **encodings)


def test_completed_mesh_marker_for_a_subscriber(node_and_client, scene):
    """~/completed_mesh (built only for a subscriber): a TRIANGLE_LIST whose opaque corners lie on the observed
    surface and whose translucent (hidden) ones on the wall behind the box, none bridging the box's outline."""
    from rclpy.qos import QoSProfile
    from visualization_msgs.msg import Marker

    node, client = node_and_client
    meshes: list = []
    subscription = client.create_subscription(Marker, "/amodal/completed_mesh", meshes.append, QoSProfile(depth=5))
    try:
        marker = None
        for _ in range(10):
            stamp, _ = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics, frame_id="cam_optical")
            def arrived(stamp: int = stamp) -> list:
                return [m for m in meshes if conv.stamp_to_ns(m.header.stamp) == stamp]
            if wait_for(lambda: bool(arrived()), 5.0):
                marker = arrived()[0]
                break
        assert marker is not None, f"no mesh; log:\n{node.log()}"
    finally:
        client.destroy_subscription(subscription)
    assert marker.type == Marker.TRIANGLE_LIST and marker.header.frame_id == "cam_optical"
    points = np.array([(p.x, p.y, p.z) for p in marker.points])
    alpha = np.array([c.a for c in marker.colors])
    assert len(points) == len(alpha) and len(points) % 3 == 0 and len(points) > 0
    intr = scene.intrinsics
    rows = np.rint(points[:, 1] / points[:, 2] * intr.fy + intr.cy).astype(int)
    cols = np.rint(points[:, 0] / points[:, 2] * intr.fx + intr.cx).astype(int)
    seen = alpha == 1.0
    assert np.allclose(points[seen, 2], scene.depth[rows[seen], cols[seen]], rtol=1e-5)
    behind_box = scene.visible_mask(scene.id_of("box"))
    assert (~seen).any() and behind_box[rows[~seen], cols[~seen]].all()
    assert np.allclose(points[~seen, 2], 3.0, atol=0.02)                  # the hidden wall
    z = points[:, 2].reshape(-1, 3)
    assert (z.max(axis=1) <= 1.05 * z.min(axis=1)).all()


def test_box_in_front_of_wall(node_and_client, scene):
    node, client = node_and_client
    stamp, out = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics, frame_id="cam_optical")
    m = out.messages
    for key in ("visible_depth", "amodal_depth", "visible_info", "amodal_info", "cloud", "instances"):
        assert conv.stamp_to_ns(m[key].header.stamp) == stamp and m[key].header.frame_id == "cam_optical"
    assert m["visible_info"].k.tolist() == pytest.approx(scene.intrinsics.matrix().ravel().tolist())
    visible = conv.image_to_depth(m["visible_depth"])
    amodal = conv.image_to_depth(m["amodal_depth"])
    assert m["visible_depth"].encoding == "32FC1"
    assert np.allclose(visible, scene.depth, atol=1e-5)
    box_id, wall_id = scene.id_of("box"), scene.id_of("wall")
    behind_box = scene.visible_mask(box_id)
    assert np.allclose(amodal[behind_box], 3.0, atol=0.02)                 # the hidden wall
    assert np.allclose(amodal[~behind_box], scene.depth[~behind_box], atol=1e-5)

    cloud = conv.cloud_from_msg(m["cloud"])
    points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
    assert np.isfinite(points).all() and m["cloud"].is_dense
    hidden = points[cloud["layer"] == 1]
    assert abs(len(hidden) - behind_box.sum()) <= 0.02 * behind_box.sum()
    assert np.allclose(hidden[:, 2], 3.0, atol=0.02)
    # The box's front face spans |x|, |y| <= 0.3 m at 1.5 m, so the wall behind it spans 0.6 m at 3 m.
    pixel = 3.0 / scene.intrinsics.fx
    assert np.abs(hidden[:, :2]).max() <= 0.6 + 2 * pixel
    assert (cloud["layer"] == 0).sum() == np.isfinite(scene.depth).sum()

    instances = {i.id: i for i in m["instances"].instances}
    assert len(instances) == 2
    box = next(i for i in instances.values() if i.visible_ratio == pytest.approx(1.0))
    wall = next(i for i in instances.values() if i.id != box.id)
    assert list(wall.occluded_by) == [box.id] and list(box.occluded_by) == []
    assert wall.visible_ratio == pytest.approx(1 - behind_box.sum() / (W * H), abs=0.01)
    crop = conv.image_to_depth(wall.amodal_depth)
    mask = conv.image_to_mask(wall.amodal_mask)
    assert crop.shape == mask.shape == (wall.bbox.height, wall.bbox.width)
    assert np.allclose(crop[mask], 3.0, atol=0.02) and np.isnan(crop[~mask]).all()
    assert wall_id != box_id


def test_bgr8_and_16uc1_inputs(node_and_client, scene):
    _, client = node_and_client
    # publish_frame encodes the RGB array as bgr8 on the wire; the node must decode it back to RGB.
    _, out = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics,
                               image_encoding="bgr8", depth_encoding="16UC1")
    visible = conv.image_to_depth(out.messages["visible_depth"])
    assert np.allclose(visible, scene.depth, atol=0.0006)                  # millimetre quantisation
    cloud = conv.cloud_from_msg(out.messages["cloud"])
    colors = cloud["rgb"][cloud["layer"] == 0]                             # row-major, every pixel has depth
    assert np.array_equal(colors.reshape(H, W, 3), scene.rgb)              # back in RGB order


def bad_image(scene, **changes) -> Image:
    msg = conv.rgb_to_image(scene.rgb, Header(stamp=conv.ns_to_stamp(0), frame_id="cam"))
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


def test_bad_input_is_dropped_counted_and_logged(node_and_client, scene):
    node, client = node_and_client
    intr = scene.intrinsics
    cases = {
        "unsupported_encoding": dict(image=dict(encoding="yuv422")),
        "truncated_data": dict(image=dict(data=bytes(100))),
        "empty_image": dict(image=dict(width=0, height=0, step=0, data=b"")),
        "bad_step": dict(image=dict(step=10)),
        "size_mismatch": dict(intr=CameraIntrinsics(200.0, 200.0, 79.5, 59.5, 160, 120)),
        "invalid_intrinsics": dict(k=[np.nan, 0, W / 2, 0, 200.0, H / 2, 0, 0, 1]),
    }
    for reason, case in cases.items():
        stamp = next(STAMPS)
        header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="cam")
        info = conv.intrinsics_to_camera_info(case.get("intr", intr), header)
        if "k" in case:
            info.k = [float(v) for v in case["k"]]
        image = bad_image(scene, **case.get("image", {}))
        image.header = header
        # Several copies: inputs are best-effort, one of them must get through.
        for _ in range(3):
            client.pub_info.publish(info)
            client.pub_depth.publish(conv.depth_to_image(scene.depth, header))
            client.pub_image.publish(image)
        assert wait_for(lambda reason=reason: int(client.latest_diagnostic_values().get(f"rejected_{reason}", 0)) > 0,
                        60.0), \
            f"{reason} not counted; diagnostics {client.latest_diagnostic_values()}\n{node.log()}"
        assert wait_for(lambda reason=reason: reason in node.log(), 30.0), node.log()   # counted, then logged
    assert node.alive()
    # The node still produces correct output afterwards.
    _, out = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics)
    assert np.allclose(conv.image_to_depth(out.messages["visible_depth"]), scene.depth, atol=1e-5)


def test_latest_frame_wins_no_backlog(node_and_client, scene):
    """A burst faster than the pipeline: the newest frame is processed, none twice, and every image is accounted
    for (received, or superseded in the subscription's queue; each received one processed or dropped for a
    counted reason). How many are skipped depends on the machine's speed: the count is checked, not a share."""
    _, client = node_and_client
    send_until_output(client, scene.rgb, scene.depth, scene.intrinsics)   # connection is warm
    before = settled_diagnostics(client)
    stamps = [next(STAMPS) for _ in range(40)]
    for stamp in stamps:                                                    # 100 Hz: faster than the pipeline
        client.publish_frame(scene.rgb, scene.depth, scene.intrinsics, stamp)
        time.sleep(0.01)
    assert client.wait_outputs(stamps[-1], 60.0) is not None, "the newest frame must be processed"
    assert wait_for(lambda: images_accounted(client.latest_diagnostic_values()) - images_accounted(before) >= 40, 60.0)
    after = settled_diagnostics(client)
    assert images_accounted(after) - images_accounted(before) == 40, (before, after)
    # Each processed frame published every output under its own stamp, once: as many as frames_out counts.
    with client._lock:
        served = [stamp for stamp in stamps if stamp in client.outputs and client.outputs[stamp].complete()]
    processed = int(after["frames_out"]) - int(before["frames_out"])
    assert wait_for(lambda: len([s for s in stamps if s in client.outputs and client.outputs[s].complete()])
                    == processed, 20.0), (len(served), processed)
    assert unaccounted_images(after) == 0, after    # skipped frames are counted (superseded, ...), not queued


def test_best_effort_peers_connect(node_and_client, scene):
    client = CameraStreamClient(reliability=ReliabilityPolicy.BEST_EFFORT,
                                output_reliability=ReliabilityPolicy.BEST_EFFORT, name="best_effort_client")
    try:
        assert client.wait_connected(60.0)
        # Best effort may drop the 1 MB images of a few frames: retry with new stamps.
        _, out = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics, tries=20)
        assert np.allclose(conv.image_to_depth(out.messages["amodal_depth"])[H // 2, W // 2], 3.0, atol=0.02)
    finally:
        client.close()


@pytest.mark.parametrize("override, expected", [
    ("segmentation.depth_jump:=5.0", "segmentation.depth_jump"),
    ("amodal_depth.method:=magic", "one of"),
    ("output.cloud_stride:=0", "output.cloud_stride"),
])
def test_invalid_parameters_refused_at_startup(rclpy_context, start_node, override, expected):
    node = start_node("-p", override, *REMAPS)
    assert node.wait_exit(30) == 2
    assert expected in node.log() and "cannot start" in node.log()


def test_missing_params_file_is_an_error(rclpy_context, start_node, tmp_path):
    node = start_node(*REMAPS, params_file=tmp_path / "nope.yaml")
    assert node.wait_exit(30) != 0
    assert "nope.yaml" in node.log()


def test_images_a_publisher_sent_but_the_node_never_got_are_counted():
    from amodal_depth_ros.ros.diagnostics import NodeStats, SequenceGaps

    gaps = SequenceGaps()
    # first, gap, repeats (older numbers again: nothing missed, nothing counted twice)
    assert [gaps.missed(s) for s in (5, 6, 9, 10, 10, 8, 12)] == [0, 0, 2, 0, 0, 0, 1]
    assert gaps.missed(None) == 0 and gaps.missed(20) == 0          # several publishers: the count starts again
    assert gaps.missed(1) == 0 and gaps.missed(4) == 2              # a new publisher numbers from 1
    stats = NodeStats()
    for sequence in (1, 2, 5):
        stats.count_message("image", "cam", sequence, reliable=True)
    for sequence in (1, 4):
        stats.count_message("depth", "cam", sequence, reliable=False)
    values = {kv.key: kv.value for kv in stats.status("n", {"image": "", "depth": ""}).values}
    assert (values["superseded_in_queue_image"], values["lost_image"]) == ("2", "0")
    assert (values["superseded_in_queue_depth"], values["lost_depth"]) == ("0", "2")


def test_pose_buffer_poses_frames_by_stamp_and_starts_over_when_poses_jump_back():
    from geometry_msgs.msg import PoseStamped

    from amodal_depth_ros.ros.node_map import PoseBuffer

    def pose(stamp_ns: int, x: float) -> PoseStamped:
        msg = PoseStamped(header=Header(stamp=conv.ns_to_stamp(stamp_ns), frame_id="map"))
        msg.pose.position.x, msg.pose.orientation.w = x, 1.0
        return msg

    poses = PoseBuffer(slop_ns=20_000_000)
    assert poses.nearest(10**10) == "no_pose_yet"
    assert poses.add(pose(10**10, 1.0)) is None and poses.add(pose(10**10 + 10**8, 2.0)) is None
    found = poses.nearest(10**10 + 9 * 10**7)   # 10 ms from the second pose
    assert not isinstance(found, str) and found[0][0, 3] == 2.0 and found[1] == "map"
    assert poses.nearest(10**10 + 5 * 10**7) == "no_pose_near_stamp"
    nan = pose(10**10 + 2 * 10**8, float("nan"))
    assert poses.add(nan) == "bad_pose_message" and poses.newest_stamp == 10**10 + 10**8
    # Two seconds back: a new timeline; the old one's poses no longer pose its frames.
    assert poses.add(pose(8 * 10**9, 3.0)) == "pose_time_jump" and poses.newest_stamp == 8 * 10**9
    assert poses.nearest(10**10) == "no_pose_near_stamp"
    found = poses.nearest(8 * 10**9)
    assert not isinstance(found, str) and found[0][0, 3] == 3.0
    assert poses.add(pose(8 * 10**9 - 5 * 10**8, 4.0)) is None   # half a second late: kept, not a jump


def test_node_fuses_posed_frames_into_a_map(rclpy_context, start_node, scene, tmp_path):
    """map.enabled with map.pose_topic: each frame fused at its PoseStamped, ~/map_points in the map frame:
    the observed wall and box where the pose puts them, the wall behind the box predicted (layer 1); its mesh
    on ~/map_mesh; saved on request; a NaN pose is counted in /diagnostics, not fused."""
    from amodal_depth_ros.srv import SaveMap
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import Marker

    # A namespace of its own: the module's other node (same inputs) must not answer for it.
    remaps = remap_args(("__ns:=/amodal_map", "image:=/camera/image", "camera_info:=/camera/camera_info",
                         "depth:=/camera/depth"))
    node = start_node("-p", "diagnostics.period:=0.2", "-p", "segmentation.method:=geometric",
                      "-p", "amodal_mask.method:=convex_hull", "-p", "amodal_depth.method:=plane_fit",
                      "-p", "map.enabled:=true", "-p", "map.pose_topic:=/camera/pose", "-p", "map.publish_period:=0.3",
                      *remaps)
    client = CameraStreamClient(node_namespace="/amodal_map")

    def diagnostics() -> dict[str, str]:
        """The newest /diagnostics values of this node."""
        with client._lock:
            ours = [s for array in client.diagnostics for s in array.status if s.name.startswith("/amodal_map/")]
        return {kv.key: kv.value for kv in ours[-1].values} if ours else {}
    shift = (1.0, 0.0, 0.013)   # the camera 1 m along the map's x (and off the voxel grid's sample planes)
    try:
        assert client.wait_connected(60.0), f"node did not connect; log:\n{node.log()}"
        poses = client.create_publisher(PoseStamped, "/camera/pose", 10)
        clouds: list = []
        client.create_subscription(PointCloud2, "/amodal_map/map_points", clouds.append, QoSProfile(depth=5))
        meshes: list = []
        client.create_subscription(Marker, "/amodal_map/map_mesh", meshes.append, QoSProfile(depth=5))
        save = client.create_client(SaveMap, "/amodal_map/save_map")

        def posed(stamps, position):
            for stamp in stamps:
                pose = PoseStamped(header=Header(stamp=conv.ns_to_stamp(stamp), frame_id="map"))
                pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = position
                pose.pose.orientation.w = 1.0
                poses.publish(pose)
                yield stamp

        def predicted_in_map() -> bool:
            return any(conv.cloud_from_msg(c)["layer"].any() for c in clouds)

        stamps = posed(STAMPS, shift)
        for _ in range(10):
            client.publish_until_output(scene.rgb, scene.depth, scene.intrinsics, stamps, 10, 2.0,
                                        frame_id="cam_optical")
            if wait_for(predicted_in_map, 3.0):
                break
        assert predicted_in_map(), f"no map with predictions; log:\n{node.log()}"
        cloud_msg = next(c for c in reversed(clouds) if conv.cloud_from_msg(c)["layer"].any())
        assert cloud_msg.header.frame_id == "map"
        cloud = conv.cloud_from_msg(cloud_msg)
        points = np.stack([cloud["x"] - shift[0], cloud["y"] - shift[1], cloud["z"] - shift[2]], axis=1)
        observed, predicted = points[cloud["layer"] == 0], points[cloud["layer"] == 1]
        on_a_face = (np.abs(observed[:, 2] - 3.0) < 0.015) | (np.abs(observed[:, 2] - 1.5) < 0.015)
        assert on_a_face.mean() > 0.95
        # The wall behind the box (0.6 m square at 1.5 m hides 1.2 m of wall at 3 m): predicted at 3 m.
        assert np.allclose(predicted[:, 2], 3.0, atol=0.015) and (np.abs(predicted[:, :2]) < 0.62).all()
        # The mesh: its opaque (observed) corners on the wall and the box, its translucent ones on the hidden wall.
        assert wait_for(lambda: any(len(m.points) for m in meshes), 10.0)
        marker = next(m for m in reversed(meshes) if len(m.points))
        corners = np.array([(q.x - shift[0], q.y - shift[1], q.z - shift[2]) for q in marker.points])
        alpha = np.array([c.a for c in marker.colors])
        assert marker.type == Marker.TRIANGLE_LIST and marker.header.frame_id == "map" and (alpha < 1).any()
        seen = alpha == 1.0
        assert ((np.abs(corners[seen, 2] - 3.0) < 0.015) | (np.abs(corners[seen, 2] - 1.5) < 0.015)).mean() > 0.95
        assert np.allclose(corners[~seen, 2], 3.0, atol=0.015)
        # Saved on request: the service answers with what it wrote; a folder it cannot write is a failure.
        folder = tmp_path / "saved"
        assert save.wait_for_service(timeout_sec=30.0), node.log()
        answer = save.call_async(SaveMap.Request(folder=str(folder)))
        assert wait_for(answer.done, 60.0), node.log()
        saved = answer.result()
        assert saved.success and saved.points > 1000 and saved.triangles > 0, saved.message
        assert (folder / "map_mesh.ply").is_file() and (folder / "map_cloud.ply").stat().st_size > 1000
        assert wait_for(lambda: int(diagnostics().get("map_saved", "0")) > 0, 30.0), diagnostics()
        (tmp_path / "a_file").write_text("")
        refused = save.call_async(SaveMap.Request(folder=str(tmp_path / "a_file" / "below")))
        assert wait_for(refused.done, 60.0) and not refused.result().success, node.log()
        assert "cannot save" in refused.result().message
        assert wait_for(lambda: int(diagnostics().get("map_save_failed", "0")) == 1, 30.0), diagnostics()
        # A pose that is not one: the frame it poses is counted and not fused.
        fused_before = int(diagnostics().get("map_frames_fused", "0"))
        later = itertools.count(next(STAMPS) + 5_000_000_000, 10_000_000)   # no good pose within sync.slop
        client.publish_until_output(scene.rgb, scene.depth, scene.intrinsics, posed(later, (float("nan"), 0, 0)),
                                    10, 2.0, frame_id="cam_optical")
        assert wait_for(lambda: int(diagnostics().get("map_skipped_bad_pose_message", "0")) > 0, 30.0), diagnostics()
        assert wait_for(lambda: int(diagnostics().get("map_skipped_no_pose_near_stamp", "0")) > 0, 30.0), diagnostics()
        assert fused_before > 0 and int(diagnostics()["map_frames_fused"]) >= fused_before
        # Poses jumping back in time (a restarted localisation): a new timeline, counted.
        list(posed([5_000_000_000], shift))
        assert wait_for(lambda: int(diagnostics().get("map_pose_time_jumps", "0")) == 1, 30.0), diagnostics()
    finally:
        client.close()
