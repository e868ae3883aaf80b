"""Monocular visible depth (Depth Anything V2) in the node, startup errors, and learned-stage fallbacks
reported in /diagnostics. The node runs as a real process over real DDS, started with `--ros-args`."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, set_parameters, wait_for

from amodal_depth_ros.core import config
from amodal_depth_ros.errors import ModelLoadError
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.synthetic.scene import box_in_front_of_wall, render

W, H = 320, 240
STAMPS = itertools.count(2_000_000_000_000, 10_000_000)
METRIC_MAX_DEPTH = 20.0
INPUT_SIZE = 140           # the smallest allowed: a random 'vits' runs in ~0.1 s per frame on a CPU


# --- parameters: combinations refused in-process ---------------------------------------------------
@pytest.mark.parametrize("values, message", [
    ({"use_depth": False}, "use visible_depth.source: monocular for cameras without depth"),
    ({"visible_depth.source": "monocular"}, "needs monocular.checkpoint"),
    ({"visible_depth.source": "monocular", "use_depth": False, "monocular.metric_max_depth": 20.0},
     "needs monocular.checkpoint"),
    ({"visible_depth.source": "monocular", "use_depth": False, "monocular.checkpoint": "/x.pth"}, "no metric scale"),
    ({"visible_depth.source": "monocular", "monocular.checkpoint": "/x.pth", "monocular.encoder": "vitg"}, "one of"),
    ({"monocular.input_size": 100}, "monocular.input_size"),
    ({"monocular.metric_max_depth": -1.0}, "monocular.metric_max_depth"),
])
def test_invalid_combinations_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        config.validated(values)


@pytest.mark.parametrize("values", [
    {"visible_depth.source": "monocular", "monocular.checkpoint": "/x.pth"},              # relative, aligned to depth
    {"visible_depth.source": "monocular", "monocular.checkpoint": "/x.pth", "use_depth": False,
     "monocular.metric_max_depth": 80.0, "monocular.encoder": "vitl", "monocular.fill_only": False},
])
def test_valid_monocular_combinations(values):
    assert config.validated(values)["visible_depth.source"] == "monocular"


def test_relative_model_without_depth_message_says_what_to_do():
    with pytest.raises(ValueError) as error:
        config.validated({"visible_depth.source": "monocular", "use_depth": False, "monocular.checkpoint": "/x.pth"})
    assert "monocular.metric_max_depth" in str(error.value) and "use_depth: true" in str(error.value)


def test_topic_source_does_not_import_torch():
    code = ("import sys\n"
            "from amodal_depth_ros.pipeline import AmodalDepthPipeline\n"
            "AmodalDepthPipeline({'segmentation.method': 'geometric', 'amodal_mask.method': 'convex_hull', "
            "'amodal_depth.method': 'plane_fit'})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# --- a 'vits'-layout checkpoint (random weights), written once ----------------------------------------
@pytest.fixture(scope="module")
def vits_checkpoint(tmp_path_factory):
    """The loader only knows the official encoder sizes (it infers vits/vitb/vitl from the shapes), so the
    node cannot load a tiny custom config: write a random 'vits' (99 MB, < 1 s) once for the module."""
    torch = pytest.importorskip("torch")
    from amodal_depth_ros.networks import ENCODERS, DepthAnythingV2
    torch.manual_seed(0)
    model = DepthAnythingV2(ENCODERS["vits"], METRIC_MAX_DEPTH)
    with torch.no_grad():   # spread the final sigmoid so the depth varies over metres, not centimetres
        model.depth_head.scratch.output_conv2[2].weight.mul_(40.0)
    path = tmp_path_factory.mktemp("monocular") / "depth_anything_v2_random_vits.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def scene():
    objects, intr = box_in_front_of_wall(W, H)
    return render(objects, intr)


def monocular_params(checkpoint, **extra) -> dict:
    return {"visible_depth.source": "monocular", "monocular.checkpoint": str(checkpoint),
            "monocular.metric_max_depth": METRIC_MAX_DEPTH, "monocular.input_size": INPUT_SIZE,
            "inference.device": "cpu", **extra}


def test_pipeline_builds_the_monocular_stage_from_the_parameters(vits_checkpoint):
    from amodal_depth_ros.learned import MonocularDepth
    pipeline = AmodalDepthPipeline(monocular_params(vits_checkpoint, **{
        "use_depth": False, "monocular.fill_only": False, "monocular.encoder": "vits",
        "visible_depth.min_depth": 0.3, "visible_depth.max_depth": 7.0}))
    stage = pipeline.visible_depth
    assert isinstance(stage, MonocularDepth)
    assert (stage.fill_only, stage.min_depth, stage.max_depth) == (False, 0.3, 7.0)
    assert stage.backend.metric and stage.backend.input_size == INPUT_SIZE
    assert stage.backend.model.max_depth == METRIC_MAX_DEPTH
    assert next(stage.backend.model.parameters()).device.type == "cpu"


def test_monocular_checkpoint_errors_have_no_fallback(vits_checkpoint, tmp_path):
    missing = tmp_path / "missing.pth"
    with pytest.raises(ModelLoadError, match=f"monocular.checkpoint '{missing}'.*not found"):
        AmodalDepthPipeline(monocular_params(missing))
    with pytest.raises(ModelLoadError, match="holds a vits model but encoder 'vitb'"):
        AmodalDepthPipeline(monocular_params(vits_checkpoint, **{"monocular.encoder": "vitb"}))


# --- the node with monocular depth and no depth topic -------------------------------------------------
@pytest.fixture(scope="module")
def monocular_node(rclpy_context, vits_checkpoint, tmp_path_factory):
    from amodal_depth_ros.ros import CameraStreamClient
    from amodal_depth_ros.ros.process import NodeProcess, remap_args
    args = ["--params-file", str(ROOT / "config" / "amodal_depth.yaml"),
            "-p", "use_depth:=false", "-p", "visible_depth.source:=monocular",
            "-p", f"monocular.checkpoint:={vits_checkpoint}", "-p", f"monocular.metric_max_depth:={METRIC_MAX_DEPTH}",
            "-p", f"monocular.input_size:={INPUT_SIZE}", "-p", "inference.device:=cpu",
            *remap_args(("__ns:=/amodal_mono", "image:=/camera_mono/image", "camera_info:=/camera_mono/camera_info"))]
    node = NodeProcess(args, tmp_path_factory.mktemp("monocular_node") / "node.log")
    client = CameraStreamClient(namespace="/camera_mono", node_namespace="/amodal_mono", name="monocular_client")
    connected = client.wait_connected(60.0, depth=False)
    try:
        assert connected, f"node did not connect; log:\n{node.log()}"
        assert client.pub_depth.get_subscription_count() == 0       # no depth subscription at all
        yield node, client
    finally:
        client.close()
        node.stop()


def send_until_output(client, rgb, depth, intr, tries=10, wait=10.0, **encodings):
    return client.publish_until_output(rgb, depth, intr, STAMPS, tries, wait, **encodings)


def test_monocular_visible_depth_without_depth_topic(monocular_node, vits_checkpoint, scene):
    from amodal_depth_ros.core import RGBDFrame
    from amodal_depth_ros.learned import MonocularDepth
    from amodal_depth_ros.ros import conversions as conv
    node, client = monocular_node
    reference = MonocularDepth.from_checkpoint(vits_checkpoint, metric_max_depth=METRIC_MAX_DEPTH, device="cpu",
                                               input_size=INPUT_SIZE)
    rng = np.random.default_rng(1)
    images = [
        scene.rgb,
        np.clip(scene.rgb.astype(int) + rng.integers(-40, 40, scene.rgb.shape), 0, 255).astype(np.uint8),
    ]
    for rgb in images:
        stamp, out = send_until_output(client, rgb, None, scene.intrinsics, frame_id="mono_optical")
        m = out.messages
        for key in m:
            assert conv.stamp_to_ns(m[key].header.stamp) == stamp and m[key].header.frame_id == "mono_optical", key
        for key in ("visible_info", "amodal_info"):
            assert m[key].k.tolist() == pytest.approx(scene.intrinsics.matrix().ravel().tolist())
            assert (m[key].width, m[key].height) == (W, H)
        visible = conv.image_to_depth(m["visible_depth"])
        expected = reference(RGBDFrame(rgb=rgb, intrinsics=scene.intrinsics, depth=None))
        assert visible.shape == (H, W) and np.isfinite(expected).all()
        assert expected.std() > 0.5                                       # a real picture, not a constant
        np.testing.assert_allclose(visible, expected, rtol=1e-4, atol=0)
        amodal = conv.image_to_depth(m["amodal_depth"])
        assert np.isfinite(amodal).all() and (amodal >= visible - 1e-4).all()   # hidden layers lie behind
    assert node.alive()
    assert "visible depth from monocular" in node.log()


# --- startup errors --------------------------------------------------------------------------------
def _garbage(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint" * 100)
    return path


@pytest.mark.parametrize("case", ["empty", "missing", "corrupt", "topic_without_depth", "relative_without_depth"])
def test_startup_errors_exit_2_with_a_clear_message(rclpy_context, start_node, tmp_path, case):
    missing = tmp_path / "no_such_checkpoint.pth"
    mono = ["-p", "visible_depth.source:=monocular", "-p", "use_depth:=false", "-p", "monocular.metric_max_depth:=20.0"]
    args, expected = {
        "empty": (mono, ["monocular.checkpoint"]),
        "missing": (mono + ["-p", f"monocular.checkpoint:={missing}"], ["monocular.checkpoint", str(missing)]),
        "corrupt": (mono + ["-p", f"monocular.checkpoint:={_garbage(tmp_path)}"], ["garbage.pth", "cannot read"]),
        "topic_without_depth": (["-p", "use_depth:=false"], ["use visible_depth.source: monocular"]),
        "relative_without_depth": (["-p", "visible_depth.source:=monocular", "-p", "use_depth:=false",
                                    "-p", f"monocular.checkpoint:={missing}"], ["no metric scale"]),
    }[case]
    node = start_node(*args, "-r", "__ns:=/amodal_startup")
    assert node.wait_exit(60) == 2, node.log()
    log = node.log()
    fatal = [line for line in log.splitlines() if "cannot start" in line]
    assert len(fatal) == 1, log
    for text in expected:
        assert text in fatal[0], log
    assert "Traceback" not in log


# --- a learned stage that cannot load: the node runs on the fallback and says so ---------------------
def test_fallback_is_logged_and_reported_in_diagnostics(rclpy_context, start_node, scene):
    from diagnostic_msgs.msg import DiagnosticStatus

    from amodal_depth_ros.ros import CameraStreamClient
    from amodal_depth_ros.ros import conversions as conv
    from amodal_depth_ros.ros.process import remap_args
    node = start_node("-p", "amodal_mask.method:=learned", "-p", "amodal_mask.weights:=/nonexistent.pt",
                      "-p", "diagnostics.period:=0.2",
                      *remap_args(("__ns:=/amodal_fb", "image:=/camera_fb/image", "camera_info:=/camera_fb/camera_info",
                                   "depth:=/camera_fb/depth")))
    client = CameraStreamClient(namespace="/camera_fb", node_namespace="/amodal_fb", name="fallback_client")
    try:
        assert client.wait_connected(120.0), node.log()
        _, out = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics, wait=3.0)
        assert np.allclose(conv.image_to_depth(out.messages["visible_depth"]), scene.depth, atol=1e-5)
        frames_out = lambda: int(client.latest_diagnostic_values().get("frames_out", 0))  # noqa: E731
        assert wait_for(lambda: frames_out() > 0, 60.0), client.latest_diagnostic_values()

        def ours() -> list[DiagnosticStatus]:
            return [s for array in list(client.diagnostics) for s in array.status
                    if s.name.startswith("/amodal_fb/amodal_depth_node")]
        assert wait_for(lambda: len(ours()) >= 3, 60.0)
        for status in ours():                                        # every message, before and after input
            values = {kv.key: kv.value for kv in status.values}
            assert status.level == DiagnosticStatus.WARN, status
            assert "fallback" in status.message
            assert (
                "/nonexistent.pt" in values["fallback_amodal_mask"] and "convex_hull" in values["fallback_amodal_mask"]
            )
        assert node.alive()
        errors = [line for line in node.log().splitlines() if "ERROR" in line and "/nonexistent.pt" in line]
        assert len(errors) == 1, node.log()                          # logged once, not per frame

        # Runtime changes (`ros2 param set`) get the same combination checks: refused, the node keeps its pipeline.
        [(ok, reason)] = set_parameters(client, "/amodal_fb/amodal_depth_node", {"visible_depth.source": "monocular"})
        assert not ok and "needs monocular.checkpoint" in reason
        [(ok, reason)] = set_parameters(client, "/amodal_fb/amodal_depth_node", {"segmentation.depth_jump": 0.05})
        assert ok, reason
        _, out = send_until_output(client, scene.rgb, scene.depth, scene.intrinsics, wait=3.0)
        assert np.allclose(conv.image_to_depth(out.messages["visible_depth"]), scene.depth, atol=1e-5)
        assert len([line for line in node.log().splitlines() if "/nonexistent.pt" in line]) == 1
    finally:
        client.close()


def test_node_stats_fallbacks_make_the_status_warn():
    pytest.importorskip("rclpy")
    from diagnostic_msgs.msg import DiagnosticStatus

    from amodal_depth_ros.ros import NodeStats
    stats = NodeStats()
    stats.count_input()
    stats.count_output({"total": 1.0})
    assert stats.status("n").level == DiagnosticStatus.OK
    stats.set_fallbacks({"amodal_depth": "amodal_depth.method 'spade' unavailable, using 'plane_fit': gone"})
    stats.count_input()
    status = stats.status("n")
    assert status.level == DiagnosticStatus.WARN and "amodal_depth" in status.message
    assert {kv.key: kv.value for kv in status.values}["fallback_amodal_depth"].endswith("gone")
