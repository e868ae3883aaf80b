"""TensorRT and the backends around it: engine cache key and files, serving while a faster runner is built,
torch when TensorRT cannot run (visibly), the engines command, onnxruntime's GPU providers. Real engines,
fp16 and CUDA graphs are tested where tensorrt imports and CUDA is present; elsewhere those tests skip."""
import hashlib
import importlib.util
import json
import shutil
import threading

import numpy as np
import onnxruntime as ort
import pytest
import torch

from amodal_depth_ros.networks import CROP_SIZE, WEIGHTS_DIR, AmodalMaskNet, SpadeAmodalDepthNet, load_weights
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.runtime import SwitchingRunner, engine_cache
from amodal_depth_ros.runtime import cache as cache_module
from amodal_depth_ros.runtime import tensorrt_engine as te
from amodal_depth_ros.runtime.backends import (
    CPU_BATCHES,
    FunctionRunner,
    cached_onnx,
    make_runner,
    onnxruntime_runner,
    resolved_backend,
    torch_runner,
)
from amodal_depth_ros.runtime.devices import cuda_unusable
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
    """Copies of the shipped, trained weights: an untrained SPADE head outputs only its fill, on which every
    backend agrees whatever it does."""
    folder = tmp_path_factory.mktemp("weights")
    for kind in NETS:
        shutil.copy(WEIGHTS_DIR / f"{kind}.pt", folder / f"{kind}.pt")
    return {kind: folder / f"{kind}.pt" for kind in NETS}


@pytest.fixture(scope="module")
def learned(weights):
    return {"segmentation.method": "geometric", "amodal_mask.method": "learned", "amodal_depth.method": "spade",
            "inference.device": "cpu", "inference.backend": "torch",
            "amodal_mask.weights": str(weights["amodal_mask"]), "amodal_depth.weights": str(weights["amodal_depth"])}


@pytest.fixture
def net(weights):
    return lambda kind: load_weights(NETS[kind](), weights[kind], kind)


def inputs(kind: str, n: int) -> tuple[np.ndarray, ...]:
    return tuple(t.numpy() for t in example_inputs(kind, n))


GPU = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "gpu_memory_mb": 81079, "gpu_sms": 132}
BUILD = {"typing": "weak", "fp32_in_fp16": ["NORMALIZATION"], "workspace_gb": 2.0, "tf32": False}


def key(path, **changes):
    return dict(engine_cache.engine_key(path, "fp16", "10.3.0", GPU, BUILD), **changes)


# --- engine key and cache files: no tensorrt needed -------------------------------------------------
def test_engine_key_covers_graph_shapes_precision_tensorrt_gpu_build_and_code(net, weights):
    path = cached_onnx(net("amodal_depth"), "amodal_depth", weights["amodal_depth"], batch=2)
    k = key(path)
    assert k["onnx_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    shapes = {
        name: list(t.shape)
        for name, t in zip(INPUT_NAMES["amodal_depth"], example_inputs("amodal_depth", 2), strict=False)
    }
    assert k["inputs"] == shapes and list(k["inputs"]) == INPUT_NAMES["amodal_depth"]   # the graph's order
    assert k["outputs"] == {"log_ratio": [2, CROP_SIZE, CROP_SIZE]}
    assert (k["precision"], k["tensorrt"], k["compute_capability"]) == ("fp16", "10.3.0", "9.0")
    assert k["build"] == BUILD and set(k["code"]) == {"package", "code", "torch", "opset"}
    digest = engine_cache.key_digest(k)
    assert digest == engine_cache.key_digest(json.loads(json.dumps(k))) and len(digest) == 20
    for change in ({"precision": "fp32"}, {"tensorrt": "10.4.0"}, {"gpu": "NVIDIA L4"}, {"compute_capability": "8.9"},
                   {"gpu_memory_mb": 40000}, {"build": dict(BUILD, typing="strong")}):
        assert engine_cache.key_digest(dict(k, **change)) != digest


def test_engine_cache_round_trip_and_atomic_writes(tmp_path, monkeypatch, net, weights):
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"], batch=2)
    cache, engine = engine_cache.EngineCache(tmp_path / "engines"), bytes(range(256)) * 40
    with cache.lock(key(path)):
        assert cache.load(key(path)) is None and cache.reason == "no cached engine"
        engine_path = cache.store(key(path), engine)
    assert engine_path.suffix == ".engine" and cache.engine_path(key(path)) == engine_path
    record = json.loads(cache.record_path(key(path)).read_text())
    assert record["key"] == key(path) and record["engine"] == engine_path.name
    assert record["sha256"] == hashlib.sha256(engine).hexdigest() and record["size"] == len(engine)
    assert cache.inspect(key(path)) == (engine, "cached")
    with cache.lock(key(path)):
        assert cache.load(key(path)) == engine
    files = sorted(p.name for p in cache.directory.iterdir())
    assert files == sorted([engine_path.name, cache.record_path(key(path)).name,
                            f".{engine_cache.key_digest(key(path))}.lock"])

    def interrupted(src, dst):   # the process dies between writing a temporary file and renaming it
        raise KeyboardInterrupt
    other = key(path, precision="fp32")
    monkeypatch.setattr(cache_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt), cache.lock(other):
        cache.store(other, engine)
    monkeypatch.undo()
    assert cache.inspect(other) == (None, "no cached engine")
    assert sorted(p.name for p in cache.directory.iterdir() if not p.name.endswith(".lock")) == \
           sorted([engine_path.name, cache.record_path(key(path)).name])   # nothing half-written left
    with cache.lock(key(path)):                       # a new engine for the key replaces the old pair
        new_path = cache.store(key(path), engine[::-1])
    assert new_path != engine_path and not engine_path.exists() and cache.inspect(key(path))[0] == engine[::-1]


@pytest.mark.parametrize("damage, reason", [
    (lambda engine, record, k: engine.write_bytes(engine.read_bytes()[:-100]), "truncated"),
    (lambda engine, record, k: engine.write_bytes(bytes([engine.read_bytes()[0] ^ 0xFF]) + engine.read_bytes()[1:]),
     "checksum does not match"),
    (lambda engine, record, k: record.write_text(json.dumps({**json.loads(record.read_text()),
                                                             "key": {**k, "tensorrt": "8.6"}})),
     "built for another tensorrt"),
    (lambda engine, record, k: record.write_text("{"), "record is unreadable"),
    (lambda engine, record, k: engine.unlink(), "engine file the record names is missing"),
], ids=["truncated", "corrupt", "other key", "bad record", "no engine file"])
def test_a_damaged_or_mismatched_engine_is_deleted_with_the_reason(tmp_path, damage, reason, net, weights):
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"], batch=2)
    cache = engine_cache.EngineCache(tmp_path / "engines")
    with cache.lock(key(path)):
        engine_path = cache.store(key(path), bytes(1000))
    damage(engine_path, cache.record_path(key(path)), key(path))
    assert cache.inspect(key(path))[0] is None and reason in cache.inspect(key(path))[1]
    with cache.lock(key(path)):
        assert cache.load(key(path)) is None and reason in cache.reason
    assert not engine_path.exists() and not cache.record_path(key(path)).exists()   # the next build starts clean


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


@pytest.mark.parametrize("kind", sorted(NETS))
def test_onnxruntime_on_the_cpu_runs_any_count_as_unpadded_static_batches(kind, net, weights, cache, monkeypatch):
    runner = make_runner(net(kind), kind, weights[kind], "onnxruntime", CPU, "fp32")
    assert runner.status == "onnxruntime (CPUExecutionProvider, fp32)" and runner.error == ""
    graphs = sorted(p.name for p in (cache / "onnx").glob(f"{kind}-*.onnx"))
    assert sorted(int(name.split("-b")[1].split("-")[0]) for name in graphs) == sorted(CPU_BATCHES)   # one graph each
    batches = []
    real_run = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, out, feeds: batches.append(
        len(next(iter(feeds.values())))) or real_run(self, out, feeds))
    serving = torch_runner(net(kind), CPU, kind)
    for n, expected_batches in ((1, [1]), (7, [4, 2, 1]), (13, [8, 4, 1]), (37, [16, 16, 4, 1])):
        batches.clear()
        x = inputs(kind, n)
        assert np.abs(runner(*x) - serving(*x)).max() < 1e-4   # every crop its own result, in order
        assert batches == expected_batches


def test_auto_backend_is_onnxruntime_on_the_cpu_and_torch_on_cuda(net, weights):
    assert resolved_backend("auto", CPU) == "onnxruntime"
    assert resolved_backend("auto", torch.device("cuda")) == "torch"
    assert all(resolved_backend(b, CPU) == b for b in ("torch", "onnxruntime", "tensorrt"))
    real_find_spec = importlib.util.find_spec
    with pytest.MonkeyPatch.context() as patch:   # an install without onnxruntime: 'auto' is torch, not a fallback
        patch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime"
                      else real_find_spec(name, *a))
        assert resolved_backend("auto", CPU) == "torch"
    pipeline = AmodalDepthPipeline({"segmentation.method": "geometric", "amodal_mask.method": "learned",
                                    "amodal_depth.method": "spade", "inference.device": "cpu"})
    assert pipeline.params["inference.backend"] == "auto"   # the default
    # inference.cpu_precision int8 (the default) quantises the mask network (its ranges ship), not the depth one.
    assert pipeline.backend_status == {"amodal_mask": "onnxruntime (CPUExecutionProvider, int8)",
                                       "amodal_depth": "onnxruntime (CPUExecutionProvider, fp32)"}
    assert pipeline.fallbacks == {}


def test_auto_serves_torch_where_the_onnxruntime_graphs_cannot_be_cached(net, weights, tmp_path, monkeypatch):
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(blocked))   # no cache folder can be made under a file
    kind, x = "amodal_depth", inputs("amodal_depth", 5)
    runner = make_runner(net(kind), kind, weights[kind], "auto", CPU, "fp32")
    assert runner.status.startswith("torch on cpu (fp32); onnxruntime not used: ") and runner.error == ""
    assert np.abs(runner(*x) - torch_runner(net(kind), CPU, kind)(*x)).max() < 1e-6
    with pytest.raises(OSError):   # asked for by name, it is not quietly replaced
        make_runner(net(kind), kind, weights[kind], "onnxruntime", CPU, "fp32")


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
    reason = te.tensorrt_unavailable() or "the networks do not run on CUDA (inference.device)"
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
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"])
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


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="onnxruntime-gpu is installed")
def test_a_cuda_request_onnxruntime_serves_on_its_cpu_provider_is_reported(net, weights):
    path = cached_onnx(net("amodal_mask"), "amodal_mask", weights["amodal_mask"])
    runner = onnxruntime_runner(path, "cuda")
    assert runner.error == "onnxruntime has no CUDA provider here (install onnxruntime-gpu in place of onnxruntime)"
    assert runner.status == f"onnxruntime (CPUExecutionProvider: {runner.error})"
    assert onnxruntime_runner(path, "cpu").error == ""


def test_onnxruntime_sessions_that_build_tensorrt_engines_are_prepared_in_the_background(monkeypatch, net, weights):
    """The TensorRT provider builds its engines while the session is created: minutes, so torch serves meanwhile."""
    from amodal_depth_ros.runtime import backends

    release, real_session = threading.Event(), ort.InferenceSession

    def slow_session(*args, **kwargs):
        release.wait(60)
        return real_session(*args, **kwargs)
    monkeypatch.setattr(backends, "onnxruntime_builds_engines", lambda device: True)
    monkeypatch.setattr(ort, "InferenceSession", slow_session)
    kind, x = "amodal_mask", inputs("amodal_mask", 3)
    runner = make_runner(net(kind), kind, weights[kind], "onnxruntime", CPU, "fp32")
    assert runner.status == "building onnxruntime TensorRT session, serving torch on cpu (fp32)"
    expected = torch_runner(net(kind), CPU, kind)(*x)
    assert np.abs(runner(*x) - expected).max() < 1e-4
    release.set()
    assert runner.ready.wait(60) and runner.status == "onnxruntime (CPUExecutionProvider)"
    assert np.abs(runner(*x) - expected).max() < 1e-4


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="onnxruntime-gpu is installed")
def test_a_per_shape_onnxruntime_graph_on_its_cpu_provider_is_reported_once_it_serves(tmp_path):
    """The segmentation and monocular networks prepare a graph per input shape in the background: when it
    ends on the CPU provider for a CUDA request, the runner's error says so (and so fallback_<stage>)."""
    from amodal_depth_ros.learned import segmentation as learned_segmentation
    from amodal_depth_ros.networks import SegmentationNet
    from amodal_depth_ros.runtime.backends import image_network_runner, torch_image_runner

    weights = WEIGHTS_DIR / "segmentation.pt"
    net = load_weights(SegmentationNet(), weights, "segmentation")
    runner = image_network_runner(torch_image_runner(net, CPU), lambda shape: learned_segmentation.cached_onnx(
        net, weights, shape[2], shape[3]), "onnxruntime", torch.device("cuda"), "fp32")
    x = np.random.default_rng(0).standard_normal((1, 8, 64, 80)).astype(np.float32)
    runner(x)
    assert runner.error == "" and runner.wait_ready(120)
    assert runner.error == "onnxruntime has no CUDA provider here (install onnxruntime-gpu in place of onnxruntime)"
    assert runner.status.startswith("onnxruntime (CPUExecutionProvider: onnxruntime has no CUDA provider")


@pytest.mark.skipif(not cuda_unusable(), reason="CUDA is usable here")
def test_cuda_asked_for_but_unusable_serves_the_learned_stages_on_the_cpu(learned):
    """Not the geometric fallbacks (convex hull, plane fit): the same learned results, reported as a fallback."""
    frame = generate(3, 320, 240).to_rgbd_frame()
    on_cpu = AmodalDepthPipeline(learned)
    asked_cuda = AmodalDepthPipeline(dict(learned, **{"inference.device": "cuda"}))
    why = f"inference.device 'cuda': {cuda_unusable()}, serving on the CPU"
    assert type(asked_cuda.amodal_mask).__name__ == "LearnedAmodalMask"
    assert type(asked_cuda.amodal_depth).__name__ == "SpadeAmodalDepth"
    assert asked_cuda.backend_status["amodal_mask"] == f"torch on cpu (fp32); {why}"
    assert asked_cuda.fallbacks["amodal_depth"] == f"amodal_depth inference.backend 'torch': torch on cpu (fp32); {why}"
    expected, result = on_cpu(frame), asked_cuda(frame)
    assert any(i.occluded_by for i in result.instances)
    for a, b in zip(expected.instances, result.instances, strict=True):
        assert np.array_equal(a.amodal_mask, b.amodal_mask) and np.array_equal(a.depth, b.depth, equal_nan=True)


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
    engines = engine_cache.EngineCache(cache / "tensorrt")
    engine, how = te.ensure_engine(path, "fp16", engines)
    assert how == "built (no cached engine)"
    assert te.ensure_engine(path, "fp16", engines) == (engine, "cached")
    engine_path = engines.engine_path(te.current_key(path, "fp16"))
    data = engine_path.read_bytes()
    engine_path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))   # a byte that surely changes
    rebuilt = te.ensure_engine(path, "fp16", engines)[1]
    assert rebuilt == "built (the cached engine's checksum does not match (corrupt file))"


@needs_tensorrt
def test_layernorm_softmax_and_reductions_stay_fp32(tmp_path):
    import tensorrt as trt

    from amodal_depth_ros.networks import DepthAnythingV2, EncoderConfig
    from amodal_depth_ros.runtime import export_onnx
    from amodal_depth_ros.runtime.export import fp16_graph

    tiny = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))
    path = export_onnx(DepthAnythingV2(tiny, max_depth=20.0).eval(), (torch.rand(1, 3, 140, 140),),
                       tmp_path / "dav2.onnx", ["image"], ["depth"])
    if te.typing_mode(trt.__version__) == "weak":
        builder = trt.Builder(te._logger(trt))
        network = builder.create_network(0)
        assert trt.OnnxParser(network, te._logger(trt)).parse_from_file(str(path))
        assert te._keep_fp32(trt, network) > 0
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        pinned = (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE)
        # precision reads fp32 on unset layers too: precision_is_set tells a pinned layer
        assert all(layer.precision_is_set and layer.precision == trt.float32 for layer in layers
                   if layer.type in pinned and layer.get_output(0).dtype == trt.float32)
    else:   # strongly typed: the fp16 graph carries the precision, as parsed by TensorRT itself
        network = trt.Builder(te._logger(trt)).create_network(te.network_flags(trt))   # strongly typed on 10.12+
        assert trt.OnnxParser(network, te._logger(trt)).parse_from_file(str(fp16_graph(path)))
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        normalisation = [layer for layer in layers if layer.type == trt.LayerType.NORMALIZATION]
        assert normalisation and all(layer.get_output(0).dtype == trt.float32 for layer in normalisation)
        assert any(layer.get_output(0).dtype == trt.float16 for layer in layers
                   if layer.type == trt.LayerType.MATRIX_MULTIPLY)
    assert te.build_engine(path if te.typing_mode(trt.__version__) == "weak" else fp16_graph(path), "fp16")


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
    stream = runner._fast.stream.cuda_stream   # its own stream, neither the legacy nor the current default one
    assert stream not in (0, torch.cuda.default_stream().cuda_stream, torch.cuda.current_stream().cuda_stream)
    assert np.abs(runner(*x) - expected).max() < 2e-2 * np.abs(expected).max()
    assert np.abs(expected).max() > 0.5   # trained weights: not an untrained head's constant fill


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
