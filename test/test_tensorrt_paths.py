"""The TensorRT code paths without TensorRT: against stand-ins of the 10.3, 10.12 and 11.1 Python APIs
(tensorrt_standin.py, limited to the names of each release's bindings), with real ONNX graphs, real
onnxruntime execution behind the engines, real processes racing for the cache and dying in it, and the
real CPU where CUDA is asked for but cannot run. Where tensorrt and CUDA import, test_tensorrt.py runs
the real thing."""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import tensorrt_standin
import torch

from amodal_depth_ros.networks import WEIGHTS_DIR, DepthAnythingV2, EncoderConfig, SpadeAmodalDepthNet, load_weights
from amodal_depth_ros.runtime import SwitchingRunner, engine_cache, export
from amodal_depth_ros.runtime import tensorrt_engine as te
from amodal_depth_ros.runtime.backends import cached_onnx, onnx_path, torch_runner
from amodal_depth_ros.runtime.export import cached_export, example_inputs, export_onnx
from amodal_depth_ros.tools import cli

CPU = torch.device("cpu")
VERSIONS = ("10.3.0", "10.12.0", "11.1.0")
GPU = {"gpu": "Orin", "compute_capability": "8.7", "gpu_memory_mb": 15388, "gpu_sms": 8}
TINY = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))


class Stream:
    """What the runner needs of a CUDA stream: its handle."""
    cuda_stream = 0x5EED


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(te, "gpu_identity", lambda: dict(GPU))
    return tmp_path / "cache"


def use(monkeypatch, version: str, build_seconds: float = 0.0) -> types.ModuleType:
    trt = tensorrt_standin.make(version, build_seconds)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt


@pytest.fixture(scope="module")
def depth_net():
    """The shipped (trained) SPADE network: an untrained one outputs only its fill."""
    return load_weights(SpadeAmodalDepthNet(), WEIGHTS_DIR / "amodal_depth.pt", "amodal depth")


@pytest.fixture
def depth_graph(depth_net):
    return cached_onnx(depth_net, "amodal_depth", WEIGHTS_DIR / "amodal_depth.pt")


@pytest.fixture
def dav2_graph(tmp_path):
    torch.manual_seed(0)
    return export_onnx(DepthAnythingV2(TINY, max_depth=20.0).eval(), (torch.rand(1, 3, 140, 140),),
                       tmp_path / "dav2.onnx", ["image"], ["depth"])


def crops(n: int) -> tuple[np.ndarray, ...]:
    return tuple(t.numpy() for t in example_inputs("amodal_depth", n))


# --- the stand-ins are honest ------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_standins_expose_only_what_their_release_binds(version):
    trt = tensorrt_standin.make(version)
    api = tensorrt_standin.API[version]
    public = {n for n in vars(trt) if not n.startswith("_")} - {"state"}
    assert public <= tensorrt_standin.recorded_names(version)
    for name in public:
        value = getattr(trt, name)
        if isinstance(value, type) and issubclass(value, tensorrt_standin.Bound):
            inherited = set(api["classes"]["ILayer"]) if issubclass(value, trt.ILayer) else set()   # as in pybind
            assert value._names - {"WARNING"} <= set(api["classes"][name]) | inherited, name
    weak = version != "11.1.0"
    assert hasattr(trt.BuilderFlag, "FP16") == weak and hasattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS") == weak
    assert ("precision" in api["classes"]["ILayer"]) == weak
    assert "execute_async_v3" in api["classes"]["IExecutionContext"]


def test_the_recorded_names_are_those_of_the_tensorrt_sources():
    """TENSORRT_GIT_DIR: a clone of github.com/NVIDIA/TensorRT holding the recorded commits."""
    mirror = Path(os.environ.get("TENSORRT_GIT_DIR", "/nonexistent"))
    if not mirror.is_dir():
        pytest.skip("TENSORRT_GIT_DIR names no clone of NVIDIA/TensorRT (scripts/tensorrt_api_names.py reads one)")
    recorded = tensorrt_standin.API
    branches = [recorded[v]["source"]["commit"] + "=" + v for v in VERSIONS]
    out = subprocess.run([sys.executable, "scripts/tensorrt_api_names.py", str(mirror), *branches],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent).stdout
    fresh = json.loads(out)
    for v in VERSIONS:
        assert {k: fresh[v][k] for k in ("enums", "classes", "module", "version")} == \
               {k: recorded[v][k] for k in ("enums", "classes", "module", "version")}


# --- versions and build policy -----------------------------------------------------------------------
@pytest.mark.parametrize("found, why", [("8.6.1", "older than 10.0"), ("10.3.0", ""), ("10.12.0", ""),
                                        ("11.4.0", ""), ("12.0.1", "newer than this package supports")])
def test_the_version_gate_accepts_10_and_11(monkeypatch, found, why):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=found))
    monkeypatch.setattr(te, "cuda_unusable", lambda: "")
    assert (te.tensorrt_unavailable() == "") == (why == "") and why in te.tensorrt_unavailable()


def test_typing_mode_follows_the_release():
    assert [te.typing_mode(v) for v in ("10.0.1", "10.3.0.26", "10.11.0", "10.12.0", "11.1.0")] == \
           ["weak", "weak", "weak", "strong", "strong"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_each_release_builds_its_own_way(monkeypatch, dav2_graph, cache_folder, version, precision):
    """Weak typing (10.3): FP16 flag, LayerNorm / softmax / SQRT / POW layers pinned. Strong typing (10.12,
    11.1): no FP16 flag, no pinned layer, the graph is the fp16 export. fp32 never has TF32."""
    trt = use(monkeypatch, version)
    cache_ = engine_cache.EngineCache(cache_folder / "tensorrt")
    engine, how = te.ensure_engine(dav2_graph, precision, cache_)
    assert how == "built (no cached engine)"
    (build,) = trt.state.builds
    strong = version != "10.3.0"
    assert build["strong"] == strong and build["tf32"] is False
    assert build["fp16_flag"] == (precision == "fp16" and not strong)
    assert (build["pinned"] > 0) == (precision == "fp16" and not strong)
    key = te.current_key(dav2_graph, precision)
    built_from = dav2_graph.with_suffix(".fp16.onnx") if strong and precision == "fp16" else dav2_graph
    assert key["onnx_sha256"] == hashlib.sha256(built_from.read_bytes()).hexdigest()
    assert key["build"]["typing"] == ("strong" if strong else "weak")
    assert te.ensure_engine(dav2_graph, precision, cache_) == (engine, "cached")


def test_what_11_lacks_raises_as_the_real_bindings_do(monkeypatch, dav2_graph):
    """The 10.x-only calls would fail on 11.x: the build path must not reach them there."""
    trt = use(monkeypatch, "11.1.0")
    with pytest.raises(AttributeError):
        config = trt.Builder(trt.Logger()).create_builder_config()
        config.set_flag(trt.BuilderFlag.FP16)
    network = trt.Builder(trt.Logger()).create_network(0)
    assert trt.OnnxParser(network, trt.Logger()).parse_from_file(str(dav2_graph))
    with pytest.raises(AttributeError):
        te._keep_fp32(trt, network)


def test_the_weak_path_pins_exactly_the_fp32_layers(monkeypatch, dav2_graph):
    trt = use(monkeypatch, "10.3.0")
    network = trt.Builder(trt.Logger()).create_network(0)
    trt.OnnxParser(network, trt.Logger()).parse_from_file(str(dav2_graph))
    kept = te._keep_fp32(trt, network)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    pinned = [layer for layer in layers if layer.precision_is_set]   # precision alone reads fp32 when unset
    assert kept == len(pinned) > 0
    assert {layer.type.name for layer in pinned} == {"NORMALIZATION", "SOFTMAX", "UNARY"}
    assert not any(layer.precision_is_set for layer in layers if layer.type.name == "CONVOLUTION")


# --- the runner ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("version, precision, tolerance", [("10.3.0", "fp32", 1e-5), ("11.1.0", "fp32", 1e-5),
                                                           ("11.1.0", "fp16", 2e-2)])
def test_the_runner_binds_by_name_on_its_own_stream(monkeypatch, depth_net, depth_graph, cache_folder,
                                                    version, precision, tolerance):
    """The stand-in's engines list their tensors output first and inputs reversed: bound by position, the
    SPADE network would get the mask as its crops."""
    trt = use(monkeypatch, version)
    runner = te.engine_runner(depth_graph, precision, engine_cache.EngineCache(cache_folder / "tensorrt"), CPU,
                              Stream())
    assert [runner.engine.get_tensor_name(i) for i in range(3)] == ["log_ratio", "amodal", "crops"]
    x = crops(11)   # a full batch of 8 and a padded one
    expected = torch_runner(depth_net, CPU, "amodal_depth")(*x)
    assert np.abs(expected).max() > 0.5   # trained: not just the fill
    assert np.abs(runner(*x) - expected).max() < tolerance * np.abs(expected).max()
    assert trt.state.enqueued == [Stream.cuda_stream] * 2 and 0 not in trt.state.enqueued


def test_each_runner_makes_a_stream_of_its_own(monkeypatch, depth_graph, cache_folder):
    """Without a stream given, a runner makes one (never the legacy default stream, handle 0)."""
    trt = use(monkeypatch, "11.1.0")
    made = []

    class NewStream:
        def __init__(self, device):
            made.append(device)
            self.cuda_stream = 0x1000 + len(made)
    monkeypatch.setattr(torch.cuda, "Stream", NewStream)
    cache_ = engine_cache.EngineCache(cache_folder / "tensorrt")
    runners = [te.engine_runner(depth_graph, "fp32", cache_, CPU) for _ in range(2)]
    for runner in runners:
        runner(*crops(2))
    assert made == [CPU, CPU] and trt.state.enqueued == [0x1001, 0x1002]


def test_failed_tensorrt_calls_raise_and_the_serving_runner_takes_over(monkeypatch, depth_net, depth_graph,
                                                                        cache_folder):
    trt = use(monkeypatch, "10.3.0")
    cache_ = engine_cache.EngineCache(cache_folder / "tensorrt")
    runner = te.engine_runner(depth_graph, "fp32", cache_, CPU, Stream())
    x = crops(3)
    trt.state.fail_enqueue = True
    with pytest.raises(RuntimeError, match="could not enqueue"):
        runner(*x)
    serving = torch_runner(depth_net, CPU, "amodal_depth")
    switching = SwitchingRunner(serving, lambda: runner, "tensorrt engine")
    assert switching.ready.wait(30) and switching.status == "tensorrt (fp32, batch 8)"
    assert np.array_equal(switching(*x), serving(*x))          # the failed call is answered by torch
    assert switching.error.startswith("RuntimeError: TensorRT could not enqueue")
    assert switching.status.startswith("tensorrt engine failed at run time, serving torch on cpu (fp32)")
    trt.state.fail_enqueue = False
    assert np.array_equal(switching(*x), serving(*x))          # and serves from then on
    trt.state.refuse_address = True
    with pytest.raises(RuntimeError, match="refused the address"):
        te.engine_runner(depth_graph, "fp32", cache_, CPU, Stream())


def test_an_engine_tensorrt_refuses_is_rebuilt_once(monkeypatch, depth_graph, cache_folder):
    trt = use(monkeypatch, "10.3.0")
    cache_ = engine_cache.EngineCache(cache_folder / "tensorrt")
    key = te.current_key(depth_graph, "fp32")
    with cache_.lock(key):
        cache_.store(key, b"a plan of another driver")   # passes its checksum, does not deserialize
    runner = te.engine_runner(depth_graph, "fp32", cache_, CPU, Stream())
    assert len(trt.state.builds) == 1 and runner(*crops(2)).shape == (2, 48, 48)
    assert cache_.inspect(key)[1] == "cached" and cache_.engine_path(key).read_bytes().startswith(b"TRT-STANDIN")
    trt.state.no_context = True    # create_execution_context() returns None: rebuilt once, then it raises
    with pytest.raises(RuntimeError, match="execution context"):
        te.engine_runner(depth_graph, "fp32", cache_, CPU, Stream())
    assert len(trt.state.builds) == 2


def cache_folder_of() -> Path:
    return Path(os.environ["AMODAL_DEPTH_CACHE"])


def test_the_engines_command_builds_on_11_and_reports_a_failed_build_in_one_line(monkeypatch, capsys):
    trt = use(monkeypatch, "11.1.0")
    monkeypatch.setattr(te, "cuda_unusable", lambda: "")
    assert cli.main(["engines", "--check"]) == 1                   # nothing cached yet, and nothing written
    assert capsys.readouterr().out.count("no engine (no ONNX graph") == 3 and not cache_folder_of().exists()
    assert cli.main(["engines"]) == 0
    assert capsys.readouterr().out.count("built (no cached engine)") == 3 and len(trt.state.builds) == 3
    assert all(build["strong"] and not build["fp16_flag"] for build in trt.state.builds)
    assert cli.main(["engines", "--check"]) == 0 and capsys.readouterr().out.count(": cached (from") == 3
    trt.state.fail_build = True
    assert cli.main(["engines", "--precision", "fp32", "--cameras", "320x240"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if ": the build failed: " in line]
    assert len(err) == 3 and all("TensorRT could not build an engine from" in line for line in err)


def test_a_cache_this_process_cannot_write_still_serves_its_engines(monkeypatch, depth_graph, cache_folder):
    """E.g. engines prebuilt by another user: the lock file cannot be made (the tests run as root, for whom
    permissions do not apply, so the lock's refusal is simulated)."""
    trt = use(monkeypatch, "10.3.0")
    cache_ = engine_cache.EngineCache(cache_folder / "tensorrt")
    engine, _ = te.ensure_engine(depth_graph, "fp32", cache_)

    def refused(self, key):
        raise PermissionError(13, "Permission denied", str(self.directory))
    monkeypatch.setattr(engine_cache.EngineCache, "lock", refused)
    assert te.ensure_engine(depth_graph, "fp32", cache_) == (engine, "cached") and len(trt.state.builds) == 1
    with pytest.raises(RuntimeError, match="cannot be written .*no cached engine"):
        te.ensure_engine(depth_graph, "fp16", cache_)


# --- the key ---------------------------------------------------------------------------------------------
def test_the_key_holds_code_build_policy_and_gpu(monkeypatch, depth_graph):
    use(monkeypatch, "10.3.0")
    key = te.current_key(depth_graph, "fp16")
    assert key["code"] == export.code_version() and set(key["code"]) == {"package", "code", "torch", "opset"}
    assert key["code"]["torch"] == torch.__version__ and key["code"]["opset"] == "17"
    assert key["build"] == {"typing": "weak", "fp32_in_fp16": ["NORMALIZATION", "SOFTMAX", "REDUCE", "UNARY:SQRT",
                                                                 "ELEMENTWISE:POW"], "workspace_gb": 2.0, "tf32": False,
                            "builder_code": te.BUILDER_CODE}
    assert te.BUILDER_CODE == hashlib.sha256(Path(te.__file__).read_bytes()).hexdigest()[:16]
    assert {k: key[k] for k in GPU} == GPU and key["tensorrt"] == "10.3.0"
    digest = engine_cache.key_digest(key)
    for change in ({"gpu_memory_mb": 7620}, {"gpu_sms": 16}, {"tensorrt": "10.3.1"},
                   {"code": dict(key["code"], torch="2.14.0")}, {"build": dict(key["build"], workspace_gb=4.0)}):
        assert engine_cache.key_digest({**key, **change}) != digest


def test_changed_network_code_names_new_graphs(monkeypatch, tmp_path):
    """After an upgrade that changes a network's forward(), neither the old graph nor its engine serves."""
    package = Path(te.__file__).resolve().parent.parent
    copy = tmp_path / "package"
    for pattern in export.GRAPH_SOURCES:
        for path in package.glob(pattern):
            (copy / path.relative_to(package)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(package)).write_bytes(path.read_bytes())
    monkeypatch.setattr(export, "_PACKAGE", copy)
    export.code_version.cache_clear()
    try:
        before = onnx_path("amodal_depth", WEIGHTS_DIR / "amodal_depth.pt")
        assert before.name.endswith(f"-{export.code_tag()}.onnx")
        nets = copy / "networks" / "amodal_nets.py"
        nets.write_text(nets.read_text() + "\n# forward() changed\n")
        export.code_version.cache_clear()
        assert onnx_path("amodal_depth", WEIGHTS_DIR / "amodal_depth.pt") != before
    finally:
        export.code_version.cache_clear()   # the real sources again for the tests after this one


# --- processes sharing the cache ---------------------------------------------------------------------
def standin_process(graph: Path, folder: Path, seconds: float, *extra: str,
                    precision: str = "fp32") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(tensorrt_standin.__file__)), "10.3.0", str(graph), str(folder),
                             precision, str(seconds), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_processes_build_an_engine_once(depth_graph, cache_folder):
    folder = cache_folder / "tensorrt"
    first = standin_process(depth_graph, folder, 3.0)
    time.sleep(1.0)
    second = standin_process(depth_graph, folder, 3.0)
    results = [json.loads(p.communicate(timeout=120)[0]) for p in (first, second)]
    assert sorted(r["how"] for r in results) == ["built (no cached engine)", "cached"]   # whichever locked first
    assert sum(len(r["builds"]) for r in results) == 1 and results[0]["sha256"] == results[1]["sha256"]
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    locks = sorted(p.name for p in folder.glob(".*"))
    assert len(names) == 2 and sorted(locks) == sorted([".build.lock", f".{names[1][:-5]}.lock"])
    record = json.loads((folder / names[1]).read_text())
    assert names[0] == record["engine"] and record["sha256"] == results[0]["sha256"]


def test_processes_building_different_engines_take_turns_on_the_gpu(depth_graph, cache_folder):
    """Two builds at once would double the GPU memory (a Jetson runs out): one at a time across processes."""
    folder = cache_folder / "tensorrt"
    fp32 = standin_process(depth_graph, folder, 2.0)
    fp16 = standin_process(depth_graph, folder, 2.0, precision="fp16")
    builds = [json.loads(p.communicate(timeout=120)[0])["builds"] for p in (fp32, fp16)]
    assert [len(b) for b in builds] == [1, 1]
    (a,), (b,) = sorted(builds, key=lambda b: b[0]["started"])
    assert b["started"] >= a["ended"]


def test_a_build_killed_while_writing_blocks_nothing_and_leaves_nothing(depth_graph, cache_folder):
    folder = cache_folder / "tensorrt"
    dying = standin_process(depth_graph, folder, 0.0, "die-in-write")
    assert dying.wait(120) == 9
    assert [p.name for p in folder.glob(".*.tmp")]                # the half-written engine it left
    assert not list(folder.glob("*.json"))                        # and no record naming it
    after = standin_process(depth_graph, folder, 0.0)
    assert json.loads(after.communicate(timeout=120)[0])["how"] == "built (no cached engine)"
    assert not list(folder.glob(".*.tmp")) and len(list(folder.glob("*.engine"))) == 1


def test_concurrent_exports_write_once_through_unique_temporary_files(tmp_path, monkeypatch):
    path, writes = tmp_path / "onnx" / "net.onnx", []
    temps = []
    real_export = torch.onnx.export

    def export(model, args, f, **kwargs):
        temps.append(Path(f).name)
        time.sleep(0.5)
        return real_export(model, args, f, **kwargs)
    monkeypatch.setattr(torch.onnx, "export", export)
    net = torch.nn.Conv2d(1, 1, 3)

    def write(out: Path) -> None:
        writes.append(out)
        export_onnx(net, (torch.rand(1, 1, 8, 8),), out, ["x"], ["y"])
    threads = [threading.Thread(target=cached_export, args=(path, write)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(writes) == 1 and path.is_file()
    export_onnx(net, (torch.rand(1, 1, 8, 8),), tmp_path / "a.onnx", ["x"], ["y"])
    assert len(set(temps)) == 2 and all(t.startswith(".") and t.endswith(".tmp") for t in temps)
    (path.parent / f".{path.name}.XYZ.tmp").write_bytes(b"left by a killed export")
    path.unlink()
    cached_export(path, write)
    assert sorted(p.name for p in path.parent.iterdir()) == [f".{path.name}.lock", path.name]
