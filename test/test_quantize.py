"""int8 graphs on onnxruntime's CPU provider (runtime.quantize, inference.cpu_precision) and the ranges that
`amodal-depth calibrate` computes for them."""
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from amodal_depth_ros.networks import WEIGHTS_DIR, AmodalMaskNet, load_weights
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.runtime import quantize
from amodal_depth_ros.runtime.backends import make_runner
from amodal_depth_ros.runtime.export import export_onnx
from amodal_depth_ros.runtime.quantize import INT8_NETWORKS, compute_ranges, cpu_graph, int8_graph, ranges_path
from amodal_depth_ros.synthetic.tabletop import generate_tabletop
from amodal_depth_ros.tools.calibrate import RecordingRunner
from amodal_depth_ros.tools.cli import main as cli

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def small_graph(path):
    """A small conv network's fp32 graph and a batch of its inputs."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))
    net.eval()
    with torch.no_grad():   # BatchNorm statistics other than the identity
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return export_onnx(net, (x,), path, ["x"], ["y"]), x.numpy()


def run(path, x):
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_int8_graph_follows_its_fp32_graph_and_is_cached(tmp_path):
    fp32, x = small_graph(tmp_path / "net.onnx")
    feeds = [{"x": np.random.default_rng(k).standard_normal(x.shape).astype(np.float32)} for k in range(4)]
    ranges = compute_ranges(fp32, feeds, tmp_path / "ranges.json")
    assert len(json.loads(ranges.read_text())["data"]) >= 4   # a range per activation
    int8 = int8_graph(fp32, ranges)
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    expected, got = run(fp32, x), run(int8, x)
    assert np.abs(got - expected).max() < 0.05 * np.ptp(expected)   # 8 bits: within a few steps
    written = int8.stat().st_mtime_ns
    assert int8_graph(fp32, ranges) == int8 and int8.stat().st_mtime_ns == written   # cached, not redone


def test_cpu_graph_says_why_it_serves_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "RANGES_DIR", tmp_path / "int8")
    fp32, x = small_graph(tmp_path / "net.onnx")
    weights = tmp_path / "mask.pt"
    weights.write_bytes(b"any weights")
    assert cpu_graph(fp32, "amodal_mask", weights, "fp32") == (fp32, "fp32")
    assert cpu_graph(fp32, "amodal_depth", weights, "int8") == (fp32, "fp32")   # never quantised
    path, why = cpu_graph(fp32, "amodal_mask", weights, "int8")
    assert path == fp32 and why.startswith("fp32: no int8 ranges") and ranges_path("amodal_mask", weights).name in why
    # Ranges of another graph's tensors: quantisation fails, fp32 serves and the reason is given.
    other, _ = small_graph(tmp_path / "other.onnx")
    ranges = ranges_path("amodal_mask", weights)
    compute_ranges(other, [{"x": x}], ranges)
    data = json.loads(ranges.read_text())
    data["data"] = {f"renamed{k}": v for k, v in enumerate(data["data"].values())}
    ranges.write_text(json.dumps(data))
    path, why = cpu_graph(fp32, "amodal_mask", weights, "int8")
    assert path == fp32 and why.startswith("fp32: int8 quantisation failed")
    # The graph's own ranges: int8.
    compute_ranges(fp32, [{"x": x}], ranges)
    path, why = cpu_graph(fp32, "amodal_mask", weights, "int8")
    assert why == "int8" and path != fp32 and np.abs(run(path, x) - run(fp32, x)).max() < 0.05 * np.ptp(run(fp32, x))


@pytest.mark.parametrize("kind", INT8_NETWORKS)
def test_shipped_weights_have_their_int8_ranges(kind):
    """Retrained weights need `amodal-depth calibrate` again: their digest names the ranges file."""
    path = ranges_path(kind, WEIGHTS_DIR / f"{kind}.pt")
    assert path.is_file(), f"run `amodal-depth calibrate` for the new {kind} weights"
    assert len(json.loads(path.read_text())["data"]) > 20


def test_int8_amodal_mask_network_agrees_with_fp32_on_real_crops(cache):
    # Crops as the stage builds them: the fp32 pipeline on a cluttered table top, recorded.
    pipeline = AmodalDepthPipeline({"inference.device": "cpu", "inference.cpu_precision": "fp32"})
    recording = RecordingRunner(pipeline.amodal_mask.run)
    pipeline.amodal_mask.run = recording
    pipeline(generate_tabletop(3, 320, 240, object_count=20).to_rgbd_frame())
    crops = np.concatenate(recording.calls)
    assert len(crops) >= 4
    weights = WEIGHTS_DIR / "amodal_mask.pt"
    net = load_weights(AmodalMaskNet(), weights, "amodal mask")
    fp32 = make_runner(net, "amodal_mask", weights, "onnxruntime", CPU, "fp32", "fp32")
    int8 = make_runner(net, "amodal_mask", weights, "onnxruntime", CPU, "fp32", "int8")
    assert int8.status == "onnxruntime (CPUExecutionProvider, int8)" and int8.error == ""
    expected, got = fp32(crops) > 0, int8(crops) > 0
    occluded = crops[:, 1] > 0.5   # only pixels under occluders become hidden parts
    assert (expected == got)[np.broadcast_to(occluded, expected.shape)].mean() >= 0.97


def test_calibrate_writes_ranges_the_segmenter_quantises_with(tmp_path, cache, monkeypatch):
    out = tmp_path / "int8"
    assert cli(["calibrate", "--out", str(out), "--rooms", "1", "--tabletops", "1", "--size", "320x240"]) == 0
    for kind in INT8_NETWORKS:
        assert ranges_path(kind, WEIGHTS_DIR / f"{kind}.pt", out).is_file()
    monkeypatch.setattr(quantize, "RANGES_DIR", out)
    pipeline = AmodalDepthPipeline({"inference.device": "cpu"})
    frame = generate_tabletop(5, 320, 240, object_count=8).to_rgbd_frame()
    pipeline(frame)
    assert pipeline.segmentation.wait_ready(120)
    assert pipeline.backend_status["segmentation"] == "onnxruntime (CPUExecutionProvider, int8)"
    assert pipeline.backend_status["amodal_mask"] == "onnxruntime (CPUExecutionProvider, int8)"
    assert len(pipeline(frame).instances) >= 4
