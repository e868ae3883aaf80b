"""The monocular Depth Anything V2 stage on inference.backend: onnxruntime graphs exported per image shape in
the background while torch serves, and the tensorrt backend falling back to torch where it cannot run."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from amodal_depth_ros.core import CameraIntrinsics, RGBDFrame  # noqa: E402
from amodal_depth_ros.learned.monocular import GraphDepthAnything, MonocularDepth  # noqa: E402
from amodal_depth_ros.networks import ENCODERS, DepthAnythingV2, EncoderConfig  # noqa: E402
from amodal_depth_ros.pipeline import AmodalDepthPipeline  # noqa: E402
from amodal_depth_ros.runtime import tensorrt_engine as te  # noqa: E402
from amodal_depth_ros.runtime.export import code_tag  # noqa: E402

TINY = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))
INPUT_SIZE = 140                      # the smallest allowed: small graphs, fast exports


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def checkpoint(tmp_path, max_depth: float | None = None):
    torch.manual_seed(0)
    model = DepthAnythingV2(TINY, max_depth)
    with torch.no_grad():   # keep the final ReLU open so that relative outputs are not all zero
        model.depth_head.scratch.output_conv2[2].bias.fill_(1.0)
    path = tmp_path / f"tiny_{max_depth}.pth"
    torch.save(model.state_dict(), path)
    return path


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def load(path, backend: str, max_depth: float | None = None, precision: str = "fp32") -> MonocularDepth:
    return MonocularDepth.from_checkpoint(path, TINY, max_depth, "cpu", INPUT_SIZE, backend=backend,
                                          precision=precision)


@pytest.mark.parametrize("max_depth", [None, 20.0], ids=["relative", "metric"])
def test_onnxruntime_takes_over_from_torch_per_image_shape(tmp_path, cache, max_depth):
    path = checkpoint(tmp_path, max_depth)
    reference, stage = load(path, "torch", max_depth), load(path, "onnxruntime", max_depth)
    backend = stage.backend
    assert isinstance(backend, GraphDepthAnything) and backend.metric == (max_depth is not None)
    assert stage.backend_status.startswith("torch on cpu (fp32) until the first frame") and stage.backend_error == ""
    assert not backend.wait_ready(0)
    rgb = image(96, 128)
    first = stage.infer(rgb)                           # at once: torch serves while the graph is exported
    np.testing.assert_array_equal(first, reference.infer(rgb))
    assert backend.wait_ready(120) and stage.backend_error == ""
    assert stage.backend_status == "onnxruntime (CPUExecutionProvider)"
    graph = backend.onnx_path((140, 182))
    assert graph.parent == cache / "onnx" and graph.is_file()
    head = "relative" if max_depth is None else "metric20"
    assert graph.name == f"depth_anything_v2-custom-{head}-{backend.digest}-140x182-{code_tag()}.onnx"
    for seed in (0, 1):
        rgb = image(96, 128, seed)
        expected = reference.infer(rgb)
        assert expected.shape == (96, 128) and expected.std() > 0
        np.testing.assert_allclose(stage.infer(rgb), expected, rtol=0, atol=1e-4)
    # Another resolution, another preprocessed shape: a second graph, the first one kept.
    other = image(128, 96)
    np.testing.assert_array_equal(stage.infer(other), reference.infer(other))
    assert backend.wait_ready(120) and stage.backend_status == "onnxruntime (CPUExecutionProvider)"
    assert sorted(p.name.rsplit("-", 2)[1] for p in (cache / "onnx").glob("*.onnx")) == ["140x182", "182x140"]
    np.testing.assert_allclose(stage.infer(other), reference.infer(other), rtol=0, atol=1e-4)


def test_a_cached_graph_is_reused(tmp_path, monkeypatch):
    path = checkpoint(tmp_path, 20.0)
    first = load(path, "onnxruntime", 20.0)
    first.infer(image(96, 128))
    assert first.backend.wait_ready(120)
    graph = first.backend.onnx_path((140, 182))
    stamp = graph.stat().st_mtime_ns
    monkeypatch.setitem(ENCODERS, "tiny", TINY)       # the encoder's name goes into the file name
    again = MonocularDepth.from_checkpoint(path, "tiny", 20.0, "cpu", INPUT_SIZE, backend="onnxruntime")
    assert again.backend.onnx_path((140, 182)).name == graph.name.replace("-custom-", "-tiny-")
    second = load(path, "onnxruntime", 20.0)
    second.infer(image(96, 128))
    assert second.backend.wait_ready(120) and graph.stat().st_mtime_ns == stamp   # not exported again


def test_a_failed_export_keeps_torch_serving_and_is_a_fallback(tmp_path, monkeypatch):
    path = checkpoint(tmp_path, 20.0)
    stage = load(path, "onnxruntime", 20.0)

    def broken(*args, **kwargs):
        raise RuntimeError("exporter crashed")
    monkeypatch.setattr("amodal_depth_ros.learned.monocular.export_onnx", broken)
    rgb = image(96, 128)
    stage.infer(rgb)
    assert stage.backend.wait_ready(120)
    assert stage.backend_error == "RuntimeError: exporter crashed"
    assert stage.backend_status == ("onnxruntime graph 140x182 failed, serving torch on cpu (fp32): "
                                    "RuntimeError: exporter crashed")
    np.testing.assert_array_equal(stage.infer(rgb), load(path, "torch", 20.0).infer(rgb))


@pytest.mark.skipif(not te.tensorrt_unavailable(), reason="tensorrt and CUDA are available")
def test_tensorrt_backend_without_tensorrt_serves_torch_and_says_why(tmp_path):
    path = checkpoint(tmp_path, 20.0)
    stage = load(path, "tensorrt", 20.0, "fp16")
    reason = te.tensorrt_unavailable()
    assert stage.backend_error == reason and stage.backend.wait_ready(0)
    assert stage.backend_status == f"tensorrt unavailable ({reason}), serving torch on cpu (fp32)"
    rgb = image(96, 128)
    np.testing.assert_array_equal(stage.infer(rgb), load(path, "torch", 20.0).infer(rgb))
    assert not (tmp_path / "cache").exists()          # nothing exported for a backend that cannot run


# --- in the pipeline ---------------------------------------------------------------------------------
def pipeline_params(path, **extra) -> dict:
    return {"visible_depth.source": "monocular", "monocular.checkpoint": str(path), "use_depth": False,
            "monocular.metric_max_depth": 20.0, "monocular.input_size": INPUT_SIZE, "monocular.fill_only": False,
            "inference.device": "cpu", "segmentation.method": "geometric", "amodal_mask.method": "convex_hull",
            "amodal_depth.method": "plane_fit", **extra}


@pytest.fixture
def tiny_metric(tmp_path, monkeypatch):
    """The pipeline infers the encoder from the checkpoint: make the tiny one known."""
    monkeypatch.setitem(ENCODERS, "tiny", TINY)
    return checkpoint(tmp_path, 20.0)


def frame(seed: int = 0) -> RGBDFrame:
    intrinsics = CameraIntrinsics(100.0, 100.0, 64.0, 48.0, 128, 96)
    return RGBDFrame(rgb=image(96, 128, seed), intrinsics=intrinsics, depth=None)


def test_pipeline_runs_the_monocular_network_on_onnxruntime(tiny_metric):
    reference = AmodalDepthPipeline(pipeline_params(tiny_metric))
    pipeline = AmodalDepthPipeline(pipeline_params(tiny_metric, **{"inference.backend": "onnxruntime"}))
    assert reference.backend_status == {"visible_depth": "torch on cpu (fp32)"} and reference.fallbacks == {}
    served, status = pipeline.visible_depth(frame()), pipeline.backend_status["visible_depth"]
    assert status == "building onnxruntime graph 140x182, serving torch on cpu (fp32)"
    np.testing.assert_array_equal(served, reference(frame()).visible_depth)
    assert pipeline.visible_depth.backend.wait_ready(120)
    assert pipeline.backend_status == {"visible_depth": "onnxruntime (CPUExecutionProvider)"}
    assert pipeline.fallbacks == {}
    for seed in (1, 2):
        expected = reference(frame(seed)).visible_depth
        assert np.isfinite(expected).all() and expected.std() > 0
        np.testing.assert_allclose(pipeline(frame(seed)).visible_depth, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not te.tensorrt_unavailable(), reason="tensorrt and CUDA are available")
def test_pipeline_reports_the_tensorrt_fallback_of_the_monocular_network(tiny_metric):
    pipeline = AmodalDepthPipeline(pipeline_params(tiny_metric, **{"inference.backend": "tensorrt"}))
    reason = te.tensorrt_unavailable()
    assert pipeline.fallbacks == {"visible_depth": f"visible_depth inference.backend 'tensorrt': tensorrt unavailable "
                                                   f"({reason}), serving torch on cpu (fp32)"}
    reference = AmodalDepthPipeline(pipeline_params(tiny_metric))
    np.testing.assert_array_equal(pipeline(frame()).visible_depth, reference(frame()).visible_depth)
