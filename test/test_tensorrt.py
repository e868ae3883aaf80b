"""TensorRT and the backends around it: engine cache key and files, serving while a faster runner is built,
torch when TensorRT cannot run (visibly), the engines command, onnxruntime's GPU providers. Real engines,
fp16 and CUDA graphs are tested where tensorrt imports and CUDA is present; elsewhere those tests skip."""
import hashlib
import json
import threading

import numpy as np
import pytest
import torch

from amodal_depth_ros.networks import CROP_SIZE, AmodalMaskNet, SpadeAmodalDepthNet, load_weights
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.runtime import SwitchingRunner
from amodal_depth_ros.runtime import tensorrt_engine as te
from amodal_depth_ros.runtime.backends import FunctionRunner, cached_onnx, make_runner, onnxruntime_runner, torch_runner
from amodal_depth_ros.runtime.export import INPUT_NAMES, example_inputs
from amodal_depth_ros.synthetic import generate
from amodal_depth_ros.tools import cli

CPU = torch.device("cpu")
NETS = {"amodal_mask": AmodalMaskNet, "amodal_depth": SpadeAmodalDepthNet}


def needs_tensorrt(test):
    return pytest.mark.cuda(
        pytest.mark.skipif(bool(te.tensorrt_unavailable()), reason=te.tensorrt_unavailable() or "")(test)
    )


def needs_cuda(test):
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")(test))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Weight files of untrained networks (the backends must agree whatever the weights)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for kind, cls in NETS.items():
        torch.save({"model": cls().state_dict()}, folder / f"{kind}.pt")
    return {kind: folder / f"{kind}.pt" for kind in NETS}


@pytest.fixture(scope="module")
def learned(weights):
    return {"amodal_mask.method": "learned", "amodal_depth.method": "spade", "inference.device": "cpu",
            "amodal_mask.weights": str(weights["amodal_mask"]), "amodal_depth.weights": str(weights["amodal_depth"])}


@pytest.fixture
def net(weights):
    return lambda kind: load_weights(NETS[kind](), weights[kind], kind)


def inputs(kind: str, n: int) -> tuple[np.ndarray, ...]:
    return tuple(t.numpy() for t in example_inputs(kind, n))


def key(path, **changes):
    return dict(te.engine_key(path, "fp16", "10.3.0", "NVIDIA H100 80GB HBM3", (9, 0)), **changes)


# --- engine key and cache files: no tensorrt needed -------------------------------------------------
def test_engine_key_covers_graph_shapes_precision_tensorrt_and_gpu(net, weights):
    path = cached_onnx(net("amodal_depth"), "amodal_depth", weights["amodal_depth"], batch=2)
    k = key(path)
    assert k["onnx_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    shapes = {
        name: list(t.shape)
        for name, t in zip(INPUT_NAMES["amodal_depth"], example_inputs("amodal_depth", 2), strict=False)
    }
    assert k["inputs"] == shapes
    assert k["outputs"] == {"log_ratio": [2, CROP_SIZE, CROP_SIZE]}
    assert (k["precision"], k["tensorrt"], k["compute_capability"]) == ("fp16", "10.3.0", "9.0")
    digest = te.key_digest(k)
    assert digest == te.key_digest(json.loads(json.dumps(k))) and len(digest) == 20
    for change in ({"precision": "fp32"}, {"tensorrt": "10.4.0"}, {"gpu": "NVIDIA L4"}, {"compute_capability": "8.9"}):
        assert te.key_digest(dict(k, **change)) != digest


def test_engine_cache_round_trip_and_atomic_writes(tmp_path, monkeypatch, net, weights):
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"], batch=2)
    cache, engine = te.EngineCache(tmp_path / "engines"), bytes(range(256)) * 40
    assert cache.load(key(path)) is None and cache.reason == "no cached engine"
    engine_path, meta_path = cache.paths(key(path))
    assert cache.store(key(path), engine) == engine_path and engine_path.suffix == ".engine"
    assert json.loads(meta_path.read_text())["key"] == key(path)
    assert cache.load(key(path)) == engine and cache.inspect(key(path)) == (engine, "cached")
    assert sorted(p.name for p in cache.directory.iterdir()) == sorted([engine_path.name, meta_path.name])

    def interrupted(src, dst):   # the process dies between writing the temporary file and renaming it
        raise KeyboardInterrupt
    other = key(path, precision="fp32")
    monkeypatch.setattr(te.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.store(other, engine)
    monkeypatch.undo()
    assert cache.load(other) is None and len(list(cache.directory.iterdir())) == 2   # nothing half-written left


@pytest.mark.parametrize("damage, reason", [
    (lambda engine, meta, k: engine.write_bytes(engine.read_bytes()[:-100]), "truncated"),
    (lambda engine, meta, k: engine.write_bytes(b"\xff" + engine.read_bytes()[1:]), "checksum does not match"),
    (lambda engine, meta, k: meta.write_text(json.dumps({**json.loads(meta.read_text()),
                                                         "key": {**k, "tensorrt": "8.6"}})),
     "built for another tensorrt"),
    (lambda engine, meta, k: meta.unlink(), "metadata is missing"),
], ids=["truncated", "corrupt", "other key", "no metadata"])
def test_a_damaged_or_mismatched_engine_is_deleted_with_the_reason(tmp_path, damage, reason, net, weights):
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"], batch=2)
    cache = te.EngineCache(tmp_path / "engines")
    cache.store(key(path), bytes(1000))
    damage(*cache.paths(key(path)), key(path))
    assert cache.inspect(key(path))[0] is None and reason in cache.inspect(key(path))[1]
    assert cache.load(key(path)) is None and reason in cache.reason
    assert not any(p.exists() for p in cache.paths(key(path)))   # so the next build starts clean


# --- serving while a faster runner is built ----------------------------------------------------------
def test_switching_runner_serves_torch_until_the_built_runner_is_ready(net, weights):
    kind, x = "amodal_depth", inputs("amodal_depth", 11)   # 11 crops: one full batch of 8 and a padded one
    serving = torch_runner(net(kind), CPU, kind)
    path = cached_onnx(net(kind), kind, weights[kind])
    release, calls = threading.Event(), []

    def build():
        release.wait(60)
        fast = onnxruntime_runner(path)
        return FunctionRunner(lambda *a: calls.append(len(a[0])) or fast(*a), fast.status)
    runner = SwitchingRunner(serving, build, "onnxruntime session")
    expected = serving(*x)
    assert runner.status == "building onnxruntime session, serving torch on cpu (fp32)" and runner.error == ""
    assert np.abs(runner(*x) - expected).max() < 1e-4 and calls == []
    release.set()
    assert runner.ready.wait(60)
    assert runner.status == "onnxruntime (CPUExecutionProvider)" and runner.error == ""
    assert np.abs(runner(*x) - expected).max() < 1e-4 and calls == [11]


def test_a_failed_build_keeps_the_serving_runner_and_says_why(net):
    kind, x = "amodal_mask", inputs("amodal_mask", 3)
    serving = torch_runner(net(kind), CPU, kind)
    release = threading.Event()

    def build():
        release.wait(60)
        raise RuntimeError("TensorRT cannot parse model.onnx: unsupported op")
    runner = SwitchingRunner(serving, build, "tensorrt engine")
    release.set()
    assert runner.ready.wait(60)
    assert runner.error == "RuntimeError: TensorRT cannot parse model.onnx: unsupported op"
    assert runner.status == ("tensorrt engine failed, serving torch on cpu (fp32): "
                             "RuntimeError: TensorRT cannot parse model.onnx: unsupported op")
    assert np.array_equal(runner(*x), serving(*x))


# --- without TensorRT: torch serves, visibly ---------------------------------------------------------
def test_tensorrt_backend_without_tensorrt_or_cuda_serves_torch_and_says_so(net, weights):
    kind, x = "amodal_mask", inputs("amodal_mask", 3)
    runner = make_runner(net(kind), kind, weights[kind], "tensorrt", CPU, "fp16")
    reason = te.tensorrt_unavailable() or "inference.device is 'cpu'"
    assert runner.status == f"tensorrt unavailable ({reason}), serving torch on cpu (fp32)" and runner.error == reason
    assert np.array_equal(runner(*x), torch_runner(net(kind), CPU, kind)(*x))


@pytest.mark.skipif(not te.tensorrt_unavailable(), reason="tensorrt and CUDA are available")
def test_pipeline_on_tensorrt_backend_falls_back_to_torch_with_the_same_results(learned):
    truth = generate(3, 320, 240)
    frame = truth.to_rgbd_frame()
    torch_pipeline = AmodalDepthPipeline(learned)
    trt_pipeline = AmodalDepthPipeline(dict(learned, **{"inference.backend": "tensorrt"}))
    assert torch_pipeline.fallbacks == {}
    assert torch_pipeline.backend_status == dict.fromkeys(("amodal_mask", "amodal_depth"), "torch on cpu (fp32)")
    assert set(trt_pipeline.fallbacks) == {"amodal_mask", "amodal_depth"}
    assert trt_pipeline.fallbacks["amodal_mask"] == (f"amodal_mask inference.backend 'tensorrt': tensorrt unavailable "
                                                     f"({te.tensorrt_unavailable()}), serving torch on cpu (fp32)")
    expected, result = torch_pipeline(frame), trt_pipeline(frame)
    assert any(i.occluded_by for i in result.instances)   # so the networks did run
    assert len(result.instances) == len(expected.instances)
    for a, b in zip(expected.instances, result.instances, strict=False):
        assert np.array_equal(a.amodal_mask, b.amodal_mask) and np.array_equal(a.depth, b.depth, equal_nan=True)


def test_a_build_failing_after_startup_shows_up_in_the_pipeline_fallbacks(net, learned):
    pipeline = AmodalDepthPipeline(dict(learned, **{"inference.backend": "tensorrt"}))
    stage = pipeline.amodal_mask
    release = threading.Event()

    def build():
        release.wait(60)
        raise RuntimeError("out of GPU memory")
    stage.run = SwitchingRunner(torch_runner(net("amodal_mask"), CPU, "amodal_mask"), build, "tensorrt engine")
    assert "amodal_mask" not in pipeline.fallbacks                         # building is not a fallback
    assert pipeline.backend_status["amodal_mask"].startswith("building tensorrt engine, serving torch")
    release.set()
    assert stage.run.ready.wait(60)
    assert pipeline.fallbacks["amodal_mask"] == ("amodal_mask inference.backend 'tensorrt': tensorrt engine failed, "
                                                 "serving torch on cpu (fp32): RuntimeError: out of GPU memory")


def test_backend_status_is_a_diagnostics_value():
    pytest.importorskip("rclpy")
    from amodal_depth_ros.ros import NodeStats

    stats = NodeStats()
    stats.set_fallbacks({}, {"amodal_mask": "building tensorrt engine, serving torch on cuda (fp16, CUDA graph)"})
    values = {kv.key: kv.value for kv in stats.status("n").values}
    assert values["backend_amodal_mask"].startswith("building tensorrt engine") and "fallback_amodal_mask" not in values


@pytest.mark.skipif(not te.tensorrt_unavailable(), reason="tensorrt and CUDA are available")
def test_engines_command_without_tensorrt_exits_2_with_one_clear_line(capsys):
    assert cli.main(["engines"]) == 2
    assert cli.main(["engines", "--check"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"amodal-depth engines: TensorRT engines cannot be built here: {te.tensorrt_unavailable()}"] * 2


# --- onnxruntime's GPU providers ---------------------------------------------------------------------
def test_onnxruntime_on_cuda_prefers_its_tensorrt_then_cuda_providers(cache, monkeypatch, net, weights):
    import onnxruntime as ort

    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"])
    assert onnxruntime_runner(path, "cuda").status == "onnxruntime (CPUExecutionProvider)"   # none installed here
    chosen = []

    class Session(ort.InferenceSession):
        def __init__(self, path, options, providers):
            chosen.append(providers)
            super().__init__(path, options, providers=["CPUExecutionProvider"])
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    onnxruntime_runner(path, "cuda", "fp16")
    onnxruntime_runner(path, "cpu", "fp16")
    trt_options = {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                   "trt_engine_cache_path": str(cache / "ort_trt")}
    assert chosen == [[("TensorrtExecutionProvider", trt_options), "CUDAExecutionProvider", "CPUExecutionProvider"],
                      ["CPUExecutionProvider"]]
    assert (cache / "ort_trt").is_dir()


# --- on a CUDA GPU ------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("kind", ["amodal_mask", "amodal_depth"])
def test_torch_on_cuda_fp16_cuda_graph_matches_fp32_eager(kind, net):
    x = inputs(kind, 11)
    expected = torch_runner(net(kind), CPU, kind)(*x)
    runner = torch_runner(net(kind), torch.device("cuda"), kind, "fp16")
    assert runner.status == "torch on cuda (fp16, CUDA graph, batch 8)"
    assert np.abs(runner(*x) - expected).max() < 5e-2
    assert np.abs(torch_runner(net(kind), torch.device("cuda"), kind, "fp32")(*x) - expected).max() < 1e-3


@needs_tensorrt
def test_engine_build_cache_and_rebuild(cache, net, weights):
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"])
    engines = te.EngineCache(cache / "tensorrt")
    engine, how = te.ensure_engine(path, "fp16", engines)
    assert how == "built (no cached engine)"
    assert te.ensure_engine(path, "fp16", engines) == (engine, "cached")
    engine_path = engines.paths(te.current_key(path, "fp16"))[0]
    engine_path.write_bytes(engine_path.read_bytes()[:-1] + b"\x00")
    rebuilt = te.ensure_engine(path, "fp16", engines)[1]
    assert rebuilt == "built (the cached engine's checksum does not match (corrupt file))"


@needs_tensorrt
def test_layernorm_softmax_and_reductions_stay_fp32(tmp_path):
    import tensorrt as trt

    from amodal_depth_ros.networks import DepthAnythingV2, EncoderConfig
    from amodal_depth_ros.runtime import export_onnx

    tiny = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))
    path = export_onnx(DepthAnythingV2(tiny, max_depth=20.0).eval(), (torch.rand(1, 3, 140, 140),),
                       tmp_path / "dav2.onnx", ["image"], ["depth"])
    builder = trt.Builder(te._logger())
    network = builder.create_network(0)
    assert trt.OnnxParser(network, te._logger()).parse_from_file(str(path))
    assert te._keep_fp32(trt, network) > 0
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    assert all(layer.precision == trt.float32 for layer in layers
               if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE)
               and layer.get_output(0).dtype == trt.float32)
    assert te.build_engine(path, "fp16")


@needs_tensorrt
@pytest.mark.parametrize("kind", ["amodal_mask", "amodal_depth"])
def test_tensorrt_backend_switches_to_the_engine_and_matches_torch(kind, net, weights):
    x = inputs(kind, 11)
    expected = torch_runner(net(kind), CPU, kind)(*x)
    runner = make_runner(net(kind), kind, weights[kind], "tensorrt", torch.device("cuda"), "fp16")
    assert runner.status.startswith("building tensorrt engine, serving torch on cuda")
    assert np.abs(runner(*x) - expected).max() < 5e-2                      # torch fp16 serves meanwhile
    assert runner.ready.wait(600) and runner.error == ""
    assert runner.status == "tensorrt (fp16, batch 8)"
    assert np.abs(runner(*x) - expected).max() < 1e-2


@needs_tensorrt
def test_engines_command_builds_then_reports_cached(capsys, weights, tmp_path):
    from amodal_depth_ros.networks import SegmentationNet

    torch.save({"model": SegmentationNet().state_dict()}, tmp_path / "segmentation.pt")
    files = ["--mask-weights", str(weights["amodal_mask"]), "--depth-weights", str(weights["amodal_depth"]),
             "--segmentation-weights", str(tmp_path / "segmentation.pt")]
    assert cli.main(["engines", "--check", *files]) == 1
    assert cli.main(["engines", *files]) == 0
    assert cli.main(["engines", "--check", *files]) == 0
    out = capsys.readouterr().out
    assert out.count("built (no cached engine)") == 3 and out.count(": cached (from") == 3
    assert "segmentation 320x240" in out
