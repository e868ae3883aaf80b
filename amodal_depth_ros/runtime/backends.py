"""Where a network runs: torch, onnxruntime or TensorRT, behind one call on numpy arrays.

Every runner carries ``status`` (what serves it, for logs and diagnostics) and ``error`` (why the
configured backend is not the one serving for good; empty otherwise), so a backend that cannot run
degrades to torch visibly instead of stopping the node.

The ONNX-based backends export the network once per weights file to ONNX with a fixed batch (static
shapes, as TensorRT engines need) into a cache keyed by the weights' hash, the batch and the crop
size; calls are padded up to that batch and split above it (on the CPU, where padded crops cost what real
ones do, one graph per batch size instead: ``CPU_BATCHES``). 'auto' is onnxruntime on the CPU and torch on
CUDA (``resolved_backend``). A TensorRT engine can take minutes to
build, so the node serves with torch meanwhile and switches when the engine is ready.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.fx.experimental.optimization import fuse

from ..networks.crops import CROP_SIZE
from .batching import fixed_batch
from .cache import cache_dir, weights_digest
from .export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    cached_export,
    cached_graph_path,
    example_inputs,
    export_onnx,
    onnxruntime_session,
)
from .quantize import cpu_graph
from .switching import SwitchingRunner

ONNX_BATCH = 8
# The CPU's static graphs of a crop network: a call is cut into these batches (13 = 8 + 4 + 1), never padded
# (padding 3 crops to 8 costs what 8 do: the work per crop is all there is on a CPU).
CPU_BATCHES = (16, 8, 4, 2, 1)


class Runner(Protocol):
    """A callable on numpy arrays; ``status`` and ``error`` are only read through it (see the module docstring)."""

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str: ...

    def __call__(self, *arrays: np.ndarray) -> np.ndarray: ...


class FunctionRunner:
    """A plain function on numpy arrays with its ``status`` and ``error``."""

    def __init__(self, run: Callable[..., np.ndarray], status: str, error: str = ""):
        self.run, self.status, self.error = run, status, error

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        return self.run(*arrays)


class ReportedRunner:
    """``runner`` serving in place of what was configured (e.g. the CPU for an unusable CUDA): its calls and
    status, with ``why`` added to the status and as the error, so the pipeline reports it as a fallback."""

    def __init__(self, runner: Runner, why: str):
        self.runner, self.why = runner, why

    @property
    def status(self) -> str:
        return f"{self.runner.status}; {self.why}"

    @property
    def error(self) -> str:
        return "; ".join(e for e in (self.why, self.runner.error) if e)

    def wait_ready(self, timeout: float | None = None) -> bool:
        wait = getattr(self.runner, "wait_ready", None)
        return True if wait is None else bool(wait(timeout))

    def __getattr__(self, name: str) -> Any:   # the rest of the runner's face (``ready`` of a SwitchingRunner)
        if name == "runner":
            raise AttributeError(name)
        return getattr(self.runner, name)

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        return self.runner(*arrays)


def reported(runner: Runner, why: str) -> Runner:
    """``runner``, reporting ``why`` as a fallback when it is not empty."""
    return ReportedRunner(runner, why) if why else runner


def _cuda_graph(net: torch.nn.Module, static_inputs: list[torch.Tensor]) -> Callable[..., np.ndarray]:
    """Capture ``net`` on fixed input tensors; a call copies into them and replays the graph (no per-layer launches)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(3):   # warm-up outside the capture: cuDNN picks its kernels, the allocator its blocks
            net(*static_inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread_local: an engine building, or the previous pipeline serving, in another thread must not fail meanwhile.
    with torch.no_grad(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
        static_output = net(*static_inputs)

    def run(*arrays: np.ndarray) -> np.ndarray:
        for tensor, array in zip(static_inputs, arrays, strict=False):
            tensor.copy_(torch.from_numpy(array))
        graph.replay()
        return static_output.float().cpu().numpy()
    return run


def cpu_inference_net(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` for fp32 inference on the CPU: batch norms folded into the convolutions before them (a copy;
    ``net`` itself stays exportable) and channels-last memory, together 1.5-2x faster than eager on two
    cores. A network torch.fx cannot trace (data-dependent checks, as in Depth Anything) is only made
    channels-last."""
    net = net.cpu().eval()
    try:
        net = fuse(net)
    except Exception:   # fx raises whatever the traced code raises on a Proxy; the net then runs unfused
        pass
    # Module.to takes memory_format (documented, and parsed by torch._C._nn._parse_to); its overloads omit it.
    return net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def torch_runner(net: torch.nn.Module, device: torch.device, kind: str, precision: str = "fp32",
                 batch: int = ONNX_BATCH) -> Runner:
    """Eager on the CPU (always fp32); on CUDA in ``precision`` and replayed as a CUDA graph per ``batch``
    crops (eager if capture fails)."""
    if device.type != "cuda":
        net = cpu_inference_net(net)

        def eager_cpu(*arrays: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(*(torch.from_numpy(a) for a in arrays)).float().numpy()
        return FunctionRunner(eager_cpu, f"torch on {device} (fp32)")
    dtype = torch.float16 if precision == "fp16" else torch.float32
    net = net.to(device, dtype)

    def eager(*arrays: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(*(torch.from_numpy(a).to(device, dtype) for a in arrays)).float().cpu().numpy()
    try:
        graphed = _cuda_graph(net, [t.to(device, dtype) for t in example_inputs(kind, batch)])
    except RuntimeError as exc:
        return FunctionRunner(eager, f"torch on cuda ({precision}, eager: CUDA graph capture failed: {exc})")
    return FunctionRunner(fixed_batch(graphed, batch), f"torch on cuda ({precision}, CUDA graph, batch {batch})")


def onnx_path(kind: str, weights: Path, batch: int = ONNX_BATCH) -> Path:
    """Where the export of ``weights`` for ``batch`` crops is cached."""
    return cached_graph_path(kind, weights_digest(weights), f"b{batch}-s{CROP_SIZE}")


def cached_onnx(net: torch.nn.Module, kind: str, weights: Path, batch: int = ONNX_BATCH) -> Path:
    """The cached fixed-batch ONNX export of ``net`` (loaded from ``weights``), exported on first use."""
    return cached_export(onnx_path(kind, weights, batch), lambda path: export_onnx(
        net.cpu(), example_inputs(kind, batch), path, INPUT_NAMES[kind], OUTPUT_NAMES[kind]))


def onnxruntime_runner(path: Path, device: str = "cpu", precision: str = "fp32", note: str = "") -> Runner:
    """onnxruntime on the exported graph; on CUDA its TensorRT / CUDA providers when installed. A CUDA request
    that ends on the CPU provider (no onnxruntime-gpu, or its CUDA provider failed to start) says so in
    ``error``, like any other fallback. ``note`` (the graph's precision, say) goes into the status."""
    import onnxruntime as ort

    session = onnxruntime_session(path, device, precision, engine_cache=cache_dir() / "ort_trt")
    names = [i.name for i in session.get_inputs()]
    batch = session.get_inputs()[0].shape[0]
    run = fixed_batch(lambda *arrays: session.run(None, dict(zip(names, arrays, strict=True)))[0], batch)
    provider, error = session.get_providers()[0], ""
    if device == "cuda" and provider == "CPUExecutionProvider":
        error = ("onnxruntime has no CUDA provider here (install onnxruntime-gpu in place of onnxruntime)"
                 if "CUDAExecutionProvider" not in ort.get_available_providers()
                 else "onnxruntime's CUDA provider did not start (see onnxruntime's log)")
        return FunctionRunner(run, f"onnxruntime (CPUExecutionProvider: {error})", error)
    return FunctionRunner(run, f"onnxruntime ({provider}{', ' + note if note else ''})")


def onnxruntime_cpu_runner(net: torch.nn.Module, kind: str, weights: Path, cpu_precision: str = "fp32") -> Runner:
    """onnxruntime's CPU provider on one static graph per batch of CPU_BATCHES (cached exports, int8 where
    ``cpu_precision`` asks and ``quantize.cpu_graph`` allows): a call of n crops runs as the fewest such
    batches, none padded."""
    graphs = {batch: cpu_graph(cached_onnx(net, kind, weights, batch), kind, weights, cpu_precision)
              for batch in CPU_BATCHES}
    sessions = {batch: onnxruntime_session(path) for batch, (path, _) in graphs.items()}
    names = [i.name for i in sessions[1].get_inputs()]

    def run(*arrays: np.ndarray) -> np.ndarray:
        outputs, start, n = [], 0, len(arrays[0])
        while start < n:
            batch = next(size for size in CPU_BATCHES if size <= n - start)
            chunk = (a[start:start + batch] for a in arrays)
            outputs.append(sessions[batch].run(None, dict(zip(names, chunk, strict=True)))[0])
            start += batch
        return np.concatenate(outputs)
    return FunctionRunner(run, f"onnxruntime (CPUExecutionProvider, {graphs[1][1]})")


def resolved_backend(backend: str, device: torch.device) -> str:
    """``inference.backend`` with 'auto' resolved: onnxruntime on the CPU (1.2-1.6x faster than eager torch on
    the same cores) where it is installed, else torch; torch on CUDA (CUDA graphs in fp16, no engine to build)."""
    if backend != "auto":
        return backend
    return "onnxruntime" if device.type != "cuda" and importlib.util.find_spec("onnxruntime") else "torch"


def onnxruntime_builds_engines(device: torch.device) -> bool:
    """Whether an onnxruntime session on ``device`` uses the TensorRT provider, whose session creation builds
    TensorRT engines (minutes): such sessions are prepared in the background."""
    import onnxruntime as ort

    return device.type == "cuda" and "TensorrtExecutionProvider" in ort.get_available_providers()


def tensorrt_runner(net: torch.nn.Module, kind: str, weights: Path, device: torch.device, precision: str) -> Runner:
    """Torch serves at once; a background thread loads the cached engine or builds it, then takes over.
    Without tensorrt or CUDA, torch serves for good and ``error`` says why."""
    from . import tensorrt_engine

    reason = tensorrt_unavailable_on(device)
    if reason:
        serving = torch_runner(net, device, kind, precision)
        return FunctionRunner(serving, f"tensorrt unavailable ({reason}), serving {serving.status}", reason)
    path = cached_onnx(net, kind, weights)   # before torch_runner, which may turn the net to fp16 on the GPU

    def build() -> Runner:
        return tensorrt_engine.engine_runner(path, precision, engine_cache())
    return SwitchingRunner(torch_runner(net, device, kind, precision), build, "tensorrt engine")


def tensorrt_unavailable_on(device: torch.device) -> str:
    """Why TensorRT engines cannot serve networks placed on ``device`` ('' when they can)."""
    from . import tensorrt_engine

    return tensorrt_engine.tensorrt_unavailable() or (
        "" if device.type == "cuda" else "the networks do not run on CUDA (inference.device)")


def engine_cache() -> Any:
    """The TensorRT engine cache the node and ``amodal-depth engines`` share."""
    from .engine_cache import EngineCache

    return EngineCache(cache_dir() / "tensorrt")


def torch_image_runner(net: torch.nn.Module, device: torch.device, precision: str = "fp32") -> Runner:
    """Eager torch for a fully convolutional image network whose input shape follows the camera: on the CPU
    in fp32 (``cpu_inference_net``), on CUDA in ``precision`` and channels-last."""
    dtype = torch.float16 if device.type == "cuda" and precision == "fp16" else torch.float32
    if device.type == "cuda":
        # Module.to takes memory_format (documented); its overloads omit it.
        net = net.to(device, dtype).to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    else:
        net = cpu_inference_net(net)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            tensor = torch.from_numpy(x).to(device, dtype).contiguous(memory_format=torch.channels_last)
            return net(tensor).float().cpu().numpy()
    return FunctionRunner(run, f"torch on {device.type} ({'fp16' if dtype == torch.float16 else 'fp32'})")


class ShapeRunners:
    """A network whose input shape is known only at the first frame (it follows the camera's resolution) on
    a static-shape backend: each new shape is served at once by ``serving`` (torch) while ``prepare(shape)``
    builds its onnxruntime graph or TensorRT engine in the background, then that serves; one runner per
    shape, so a camera switching resolution keeps both."""

    def __init__(self, serving: Runner, prepare: Callable[[tuple[int, ...]], Runner], what: str):
        self.serving, self.prepare, self.what = serving, prepare, what
        self._runners: dict[tuple[int, ...], SwitchingRunner] = {}
        self._shape: tuple[int, ...] | None = None     # of the last call

    @property
    def status(self) -> str:
        shape = self._shape
        if shape is None:
            return f"{self.serving.status} until the first frame gives the {self.what} its shape"
        return self._runners[shape].status

    @property
    def error(self) -> str:
        shape = self._shape
        return "" if shape is None else self._runners[shape].error

    def wait_ready(self, timeout: float | None = None) -> bool:
        """For benchmarks and tests (frames never wait): True once the runner of the last call's shape serves
        or has failed to (``error`` says why); False before the first call or on timeout."""
        runner = self._runners.get(self._shape) if self._shape is not None else None
        return runner is not None and runner.ready.wait(timeout)

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        shape = tuple(arrays[0].shape)
        if shape not in self._runners:
            label = f"{self.what} {'x'.join(map(str, shape[-2:]))}"
            self._runners[shape] = SwitchingRunner(self.serving, lambda: self.prepare(shape), label)
        self._shape = shape
        return self._runners[shape](*arrays)


def image_network_runner(serving: Runner, export: Callable[[tuple[int, ...]], Path], backend: str,
                         device: torch.device, precision: str,
                         cpu_graph: Callable[[Path], tuple[Path, str]] | None = None) -> Runner:
    """``serving`` (torch) on backend 'torch'; else a ShapeRunners whose graphs ``export(shape)`` writes (cached
    static-shape ONNX) for onnxruntime or a TensorRT engine. Without tensorrt or CUDA, 'tensorrt' serves
    torch for good and ``error`` says why. 'auto': see ``resolved_backend``. ``cpu_graph(fp32 graph)``: the
    graph onnxruntime's CPU provider serves instead, and its precision (``quantize.cpu_graph``)."""
    backend = resolved_backend(backend, device)
    if backend == "torch":
        return serving
    if backend == "onnxruntime":
        def prepare(shape: tuple[int, ...]) -> Runner:
            path, note = export(shape), ""
            if cpu_graph is not None and device.type != "cuda":
                path, note = cpu_graph(path)
            return onnxruntime_runner(path, device.type, precision, note)
        return ShapeRunners(serving, prepare, "onnxruntime graph")
    from . import tensorrt_engine

    reason = tensorrt_unavailable_on(device)
    if reason:
        return FunctionRunner(serving, f"tensorrt unavailable ({reason}), serving {serving.status}", reason)
    return ShapeRunners(serving, lambda shape: tensorrt_engine.engine_runner(export(shape), precision, engine_cache()),
                        "tensorrt engine")


def make_runner(net: torch.nn.Module, kind: str, weights: Path, backend: str, device: torch.device,
                precision: str, cpu_precision: str = "fp32") -> Runner:
    """``net`` on ``backend`` ('auto': see ``resolved_backend``; where its onnxruntime graphs cannot be made,
    torch serves, as 'auto' allows, and the status says why); ``precision`` (fp16 or fp32) applies on CUDA
    only; ``cpu_precision`` (int8 or fp32) to onnxruntime's CPU provider (``quantize.cpu_graph``)."""
    configured, backend = backend, resolved_backend(backend, device)
    if backend == "onnxruntime":
        builds_engines = onnxruntime_builds_engines(device)
        if device.type != "cuda" and not builds_engines:
            try:
                return onnxruntime_cpu_runner(net, kind, weights, cpu_precision)
            except Exception as exc:   # an unwritable cache, say: 'auto' then serves torch, and says why
                if configured != "auto":
                    raise
                serving = torch_runner(net, device, kind, precision)
                return FunctionRunner(serving, f"{serving.status}; onnxruntime not used: {exc}")
        path = cached_onnx(net, kind, weights)   # before torch_runner, which may turn the net to fp16 on the GPU
        if builds_engines:
            return SwitchingRunner(torch_runner(net, device, kind, precision),
                                   lambda: onnxruntime_runner(path, device.type, precision),
                                   "onnxruntime TensorRT session")
        return onnxruntime_runner(path, device.type, precision)
    if backend == "tensorrt":
        return tensorrt_runner(net, kind, weights, device, precision)
    return torch_runner(net, device, kind, precision)
