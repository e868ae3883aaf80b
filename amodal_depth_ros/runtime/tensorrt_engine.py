"""TensorRT engines of the exported ONNX graphs: build them on TensorRT 10 or 11, cache them, run them.

Two API generations build fp16 engines differently. Up to 10.11 the network is weakly typed: the FP16
builder flag lets TensorRT choose fp16, and normalisation, softmax and reduction layers (and the POW /
SQRT of decomposed LayerNorms) are pinned to fp32 under OBEY_PRECISION_CONSTRAINTS. From 10.12 (where
weak typing is deprecated) and on 11.x (where it is gone: no FP16 flag, no layer precision) the network
is strongly typed and the precision is the graph's: the fp16 export of ``export.fp16_graph``, whose
normalisation, softmax and reductions stay fp32. fp32 engines run without TF32, as torch's matmuls do.

Each runner enqueues on a CUDA stream of its own: on the legacy default stream TensorRT adds
device-wide synchronisation, which also stalls an engine build in another thread and breaks a CUDA
graph capture there. Tensors are bound by name, and every TensorRT call that reports failure is
checked, so a failed enqueue raises (the caller falls back) instead of returning stale output.
``tensorrt`` is imported inside the functions that need it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .batching import fixed_batch
from .devices import cuda_unusable
from .engine_cache import EngineCache, engine_key

log = logging.getLogger(__name__)
SUPPORTED = ((10, 0), (12, 0))       # TensorRT versions from 10.0 up to, not including, 12.0
STRONG_TYPING_FROM = (10, 12)        # weak typing is deprecated from 10.12 and removed in 11.0
# Kept in FP32 by weakly typed fp16 builds: their sums, exponentials and variances overflow or lose precision in FP16.
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
WORKSPACE_GB = 2.0
# How engines are built is this module's code: a change to it is a new build policy (part of the key).
BUILDER_CODE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def version(text: str) -> tuple[int, int]:
    """'10.3.0.26' -> (10, 3)."""
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def tensorrt_unavailable() -> str:
    """Why TensorRT engines cannot run here ('' when they can)."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:   # OSError: the Python package without its shared libraries
        return str(exc)
    found = version(trt.__version__)
    if found < SUPPORTED[0]:
        return f"tensorrt {trt.__version__} is older than 10.0"
    if found >= SUPPORTED[1]:
        return f"tensorrt {trt.__version__} is newer than this package supports (10.x and 11.x)"
    return cuda_unusable()


def typing_mode(trt_version: str) -> str:
    """'strong' (precision from the graph) from 10.12 on, 'weak' (builder flags, pinned layers) before."""
    return "strong" if version(trt_version) >= STRONG_TYPING_FROM else "weak"


def build_policy(trt_version: str, precision: str) -> dict[str, Any]:
    """How an engine is built, part of its key: typing mode, what stays fp32 in fp16, workspace, TF32."""
    from .fp16 import FP32_OPS

    mode = typing_mode(trt_version)
    kept = ([] if precision != "fp16" else sorted(FP32_OPS) if mode == "strong"
            else [*FP32_LAYER_TYPES, "UNARY:SQRT", "ELEMENTWISE:POW"])
    return {"typing": mode, "fp32_in_fp16": kept, "workspace_gb": WORKSPACE_GB, "tf32": False,
            "builder_code": BUILDER_CODE}


def gpu_identity() -> dict[str, Any]:
    """The GPU an engine is built for. Plans are not portable across GPU models, and every Jetson Orin
    module is named 'Orin' with compute capability 8.7: memory and SM count tell them apart."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "gpu_memory_mb": props.total_memory >> 20, "gpu_sms": props.multi_processor_count}


def build_graph_path(onnx_path: Path, precision: str) -> Path:
    """The graph TensorRT builds from: the fp16 graph for a strongly typed fp16 build (written by
    ``build_inputs``; this only names it), else ``onnx_path``."""
    import tensorrt as trt

    from .export import fp16_graph_path

    return fp16_graph_path(onnx_path) if typing_mode(trt.__version__) == "strong" and precision == "fp16" \
        else Path(onnx_path)


def build_inputs(onnx_path: Path, precision: str) -> tuple[Path, dict[str, Any]]:
    """The graph TensorRT builds from (``build_graph_path``, the fp16 graph made if missing) and its key."""
    import tensorrt as trt

    from .export import fp16_graph

    graph = build_graph_path(onnx_path, precision)
    if graph != Path(onnx_path):
        graph = fp16_graph(onnx_path)
    policy = build_policy(trt.__version__, precision)
    return graph, engine_key(graph, precision, trt.__version__, gpu_identity(), policy)


def current_key(onnx_path: Path, precision: str) -> dict[str, Any]:
    """The key of the engine of ``onnx_path`` on this machine's TensorRT and GPU."""
    return build_inputs(onnx_path, precision)[1]


@functools.cache
def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.WARNING)


def _keep_fp32(trt: Any, network: Any) -> int:
    """Weak typing: pin FP32_LAYER_TYPES, and the POW / SQRT of LayerNorms the exporter decomposed, to FP32;
    returns how many."""
    pinned_types = {getattr(trt.LayerType, name) for name in FP32_LAYER_TYPES}
    kept = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.UNARY:
            layer.__class__ = trt.IUnaryLayer              # the Python API's way to reach a layer's own fields
            pinned = layer.op == trt.UnaryOperation.SQRT
        elif layer.type == trt.LayerType.ELEMENTWISE:
            layer.__class__ = trt.IElementWiseLayer
            pinned = layer.op == trt.ElementWiseOperation.POW
        else:
            pinned = layer.type in pinned_types
        if pinned and layer.get_output(0).dtype == trt.float32:   # not the integer shape arithmetic
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            kept += 1
    return kept


def network_flags(trt: Any) -> int:
    """``create_network`` flags for ``typing_mode``: STRONGLY_TYPED on 10.12+; none on 10.x before (weak) and on
    11.x, where every network is strongly typed (the flag is deprecated and ignored there, and its bit is
    another flag's)."""
    if typing_mode(trt.__version__) == "strong" and version(trt.__version__) < (11, 0):
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def build_engine(graph: Path, precision: str = "fp16", workspace_gb: float = WORKSPACE_GB) -> bytes:
    """Serialized engine of ``graph`` (static shapes) in ``precision``, typed as ``typing_mode`` says."""
    import tensorrt as trt

    mode = typing_mode(trt.__version__)
    builder = trt.Builder(_logger(trt))
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, _logger(trt))
    if not parser.parse_from_file(str(graph)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {graph}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.clear_flag(trt.BuilderFlag.TF32)   # on by default; fp32 means fp32 here, as in torch's matmuls
    if precision == "fp16" and mode == "weak":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("%s: %d layers kept in FP32", graph, _keep_fp32(trt, network))
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT could not build an engine from {graph} (see its log above)")
    return bytes(engine)


def ensure_engine(onnx_path: Path, precision: str, cache: EngineCache) -> tuple[bytes, str]:
    """The engine of ``onnx_path`` for this machine, and 'cached' or 'built (<why no cached one>)'. Holds the
    key's lock throughout (another process building the same engine is waited for, not duplicated) and the
    cache's build lock while building (one build at a time on the GPU, whichever process: on a Jetson two at
    once would double the memory). A cache this process may not write (another user's, read-only) still
    serves the engines it holds."""
    return _ensure(*build_inputs(onnx_path, precision), precision, cache)


def _ensure(graph: Path, key: dict[str, Any], precision: str, cache: EngineCache) -> tuple[bytes, str]:
    with contextlib.ExitStack() as locked:
        try:
            locked.enter_context(cache.lock(key))
        except OSError as exc:
            engine, why = cache.inspect(key)
            if engine is not None:
                return engine, "cached"
            raise RuntimeError(f"the engine cache {cache.directory} cannot be written ({exc}): {why}") from exc
        engine = cache.load(key)
        if engine is not None:
            return engine, "cached"
        why = cache.reason
        with cache.build_lock():
            log.warning("building the TensorRT engine of %s (%s): minutes, not seconds", graph, why)
            engine = build_engine(graph, precision)
        cache.store(key, engine)
    return engine, f"built ({why})"


def engine_runner(onnx_path: Path, precision: str, cache: EngineCache, device: torch.device | None = None,
                  stream: Any = None) -> TensorRTRunner:
    """A runner on the engine of ``onnx_path``, its tensors bound by the graph's names (``device`` and
    ``stream`` as for TensorRTRunner). A cached engine that passes its checksum but that TensorRT still
    refuses (a driver or plugin change the key cannot see, no memory for an execution context) is deleted
    and rebuilt once."""
    graph, key = build_inputs(onnx_path, precision)

    def runner(engine: bytes) -> TensorRTRunner:   # the key lists the graph's inputs and outputs in its order
        return TensorRTRunner(engine, list(key["inputs"]), next(iter(key["outputs"])), precision, device, stream)
    engine, how = _ensure(graph, key, precision, cache)
    try:
        return runner(engine)
    except RuntimeError as exc:
        if how != "cached":
            raise
        log.warning("the cached engine of %s does not load (%s): rebuilding it", onnx_path, exc)
        with cache.lock(key):
            cache.remove(key)
        return runner(_ensure(graph, key, precision, cache)[0])


class TensorRTRunner:
    """An engine with its inputs and output in fixed torch tensors, enqueued on its own stream; calls take
    any number of crops. ``inputs`` are the graph's input names in call order, ``output`` its output.
    ``device`` (default CUDA) and ``stream`` (default a new CUDA stream: anything with ``cuda_stream``, the
    handle passed to TensorRT) let the tests run a TensorRT stand-in on CPU tensors."""

    def __init__(self, engine_bytes: bytes, inputs: Sequence[str], output: str, precision: str = "fp16",
                 device: torch.device | None = None, stream: Any = None):
        import tensorrt as trt

        self.device = device or torch.device("cuda")
        # One stream per runner, never the legacy default stream (see the module docstring).
        self.stream = stream if stream is not None else torch.cuda.Stream(self.device)
        self._runtime = trt.Runtime(_logger(trt))   # must outlive the engine
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT cannot deserialize the engine")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT cannot create an execution context for the engine (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        wanted = {**dict.fromkeys(inputs, trt.TensorIOMode.INPUT), output: trt.TensorIOMode.OUTPUT}
        unbound = [n for n in names if modes[n] == trt.TensorIOMode.INPUT and n not in wanted]
        wrong = [n for n, mode in wanted.items() if modes.get(n) != mode]
        if wrong or unbound:
            raise RuntimeError(f"the engine's tensors {dict((n, str(modes[n])) for n in names)} do not match the "
                               f"graph's inputs {list(inputs)} and output {output!r}")
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
        self.inputs, self.output = list(inputs), output
        self.buffers: dict[str, torch.Tensor] = {}
        with self._on_stream():
            for name in wanted:
                dtype = self.engine.get_tensor_dtype(name)
                if dtype not in dtypes:
                    raise RuntimeError(f"the engine's tensor {name!r} has the unsupported type {dtype}")
                shape = tuple(self.engine.get_tensor_shape(name))
                self.buffers[name] = torch.empty(shape, device=self.device, dtype=dtypes[dtype])
                if not self.context.set_tensor_address(name, self.buffers[name].data_ptr()):
                    raise RuntimeError(f"TensorRT refused the address of tensor {name!r}")
        batch = self.buffers[self.inputs[0]].shape[0]
        self._call = fixed_batch(self._run, batch)
        self.status, self.error = f"tensorrt ({precision}, batch {batch})", ""

    def _on_stream(self) -> contextlib.AbstractContextManager[Any]:
        return torch.cuda.stream(self.stream) if self.device.type == "cuda" else contextlib.nullcontext()

    def _run(self, *arrays: np.ndarray) -> np.ndarray:
        if len(arrays) != len(self.inputs):
            raise ValueError(f"the engine takes {len(self.inputs)} inputs {self.inputs}, got {len(arrays)}")
        with self._on_stream():
            for name, array in zip(self.inputs, arrays, strict=True):
                self.buffers[name].copy_(torch.from_numpy(array))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT could not enqueue the engine (see its log above)")
            # A copy (the buffer is overwritten by the next call), made on this stream; waits for it only.
            return self.buffers[self.output].to("cpu", torch.float32, copy=True).numpy()

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        return self._call(*arrays)
