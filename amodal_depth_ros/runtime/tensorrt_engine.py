"""TensorRT 10 engines of the exported ONNX graphs: build, cache on disk, run.

An engine only fits the ONNX graph, TensorRT version, GPU model (compute capability), precision and
shapes it was built for, so the cache key covers all of them; a file that does not match its key
or its checksum is deleted and rebuilt. Writes are atomic (temporary file, then rename), so a build
killed half-way never leaves an engine that looks valid. ``tensorrt`` is imported inside the
functions that need it: the key and the cache work (and are tested) without it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .batching import fixed_batch

log = logging.getLogger(__name__)
# Kept in FP32 under an FP16 build: their sums, exponentials and variances overflow or lose precision in FP16.
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
_BUILD_LOCK = threading.Lock()   # one build at a time: two at once only compete for the GPU


def tensorrt_unavailable() -> str:
    """Why TensorRT engines cannot run here ('' when they can)."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:   # OSError: the Python package without its shared libraries
        return str(exc)
    if int(trt.__version__.split(".")[0]) < 10:
        return f"tensorrt {trt.__version__} is older than 10"
    return "" if torch.cuda.is_available() else "torch sees no CUDA device"


def engine_key(onnx_path: Path, precision: str, trt_version: str, gpu_name: str,
               compute_capability: tuple[int, int]) -> dict[str, Any]:
    """Everything an engine depends on: the graph (hash and IO shapes), precision, TensorRT version and GPU."""
    import onnx

    def shapes(values: Any) -> dict[str, list[int]]:
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    data = Path(onnx_path).read_bytes()
    graph = onnx.load_from_string(data).graph
    return {"onnx_sha256": hashlib.sha256(data).hexdigest(), "inputs": shapes(graph.input),
            "outputs": shapes(graph.output), "precision": precision, "tensorrt": trt_version, "gpu": gpu_name,
            "compute_capability": "{}.{}".format(*compute_capability)}


def key_digest(key: dict[str, Any]) -> str:
    """Short hex digest of ``key``: the engine's file name."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def current_key(onnx_path: Path, precision: str) -> dict[str, Any]:
    """The key of ``onnx_path`` on this machine's TensorRT and first CUDA GPU."""
    import tensorrt as trt

    return engine_key(onnx_path, precision, trt.__version__, torch.cuda.get_device_name(),
                      torch.cuda.get_device_capability())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class EngineCache:
    """``<digest>.engine`` plus ``<digest>.json`` (the full key, the engine's size and sha256) in ``directory``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.reason = ""   # why the last ``load`` returned None

    def paths(self, key: dict[str, Any]) -> tuple[Path, Path]:
        stem = self.directory / key_digest(key)
        return stem.with_suffix(".engine"), stem.with_suffix(".json")

    def inspect(self, key: dict[str, Any]) -> tuple[bytes | None, str]:
        """The cached engine and 'cached', or None and why there is no usable one; changes nothing."""
        engine_path, meta_path = self.paths(key)
        if not engine_path.is_file():
            return None, "no cached engine"
        try:
            meta = json.loads(meta_path.read_text())
            stored, size, digest = meta["key"], meta["size"], meta["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return None, "the cached engine's metadata is missing or unreadable"
        if stored != key:
            changed = [k for k in key if not isinstance(stored, dict) or stored.get(k) != key[k]]
            return None, f"the cached engine was built for another {', '.join(changed) or 'key'}"
        engine = engine_path.read_bytes()
        if len(engine) != size:
            return None, f"the cached engine is truncated ({len(engine)} of {size} bytes)"
        if hashlib.sha256(engine).hexdigest() != digest:
            return None, "the cached engine's checksum does not match (corrupt file)"
        return engine, "cached"

    def load(self, key: dict[str, Any]) -> bytes | None:
        """The cached engine, or None (a bad one is deleted; ``reason`` says why there was none)."""
        engine, why = self.inspect(key)
        self.reason = "" if engine is not None else why
        if engine is None:
            for path in self.paths(key):
                if path.exists():
                    log.warning("deleting %s: %s", path, why)
                    path.unlink(missing_ok=True)
        return engine

    def store(self, key: dict[str, Any], engine: bytes) -> Path:
        """Write the engine, then its metadata: a readable json always names a complete engine."""
        engine_path, meta_path = self.paths(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(engine_path, engine)
        meta = {"key": key, "size": len(engine), "sha256": hashlib.sha256(engine).hexdigest()}
        _atomic_write(meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        return engine_path


@functools.cache
def _logger() -> Any:
    import tensorrt as trt
    return trt.Logger(trt.Logger.WARNING)


def _keep_fp32(trt: Any, network: Any) -> int:
    """Pin FP32_LAYER_TYPES, and the POW / SQRT of LayerNorms the exporter decomposed, to FP32; returns how many."""
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


def build_engine(onnx_path: Path, precision: str = "fp16", workspace_gb: float = 2.0) -> bytes:
    """Serialized engine of ``onnx_path`` (static shapes); fp16 keeps FP32_LAYER_TYPES in FP32."""
    import tensorrt as trt

    builder = trt.Builder(_logger())
    network = builder.create_network(0)   # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, _logger())
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("%s: %d layers kept in FP32", onnx_path, _keep_fp32(trt, network))
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    return bytes(engine)


def ensure_engine(onnx_path: Path, precision: str, cache: EngineCache) -> tuple[bytes, str]:
    """The engine of ``onnx_path`` for this machine, and 'cached' or 'built (<why no cached one>)'."""
    key = current_key(onnx_path, precision)
    with _BUILD_LOCK:
        engine = cache.load(key)
        if engine is not None:
            return engine, "cached"
        why = cache.reason
        log.warning("building the TensorRT engine of %s (%s): minutes, not seconds", onnx_path, why)
        engine = build_engine(onnx_path, precision)
        cache.store(key, engine)
    return engine, f"built ({why})"


def engine_runner(onnx_path: Path, precision: str, cache: EngineCache) -> TensorRTRunner:
    """A runner on the engine of ``onnx_path``. A cached engine that passes its checksum but that TensorRT
    still refuses (a driver or plugin change the key cannot see) is deleted and rebuilt once."""
    engine, how = ensure_engine(onnx_path, precision, cache)
    try:
        return TensorRTRunner(engine, precision)
    except RuntimeError as exc:
        if how != "cached":
            raise
        log.warning("the cached engine of %s does not load (%s): rebuilding it", onnx_path, exc)
        for path in cache.paths(current_key(onnx_path, precision)):
            path.unlink(missing_ok=True)
        return TensorRTRunner(ensure_engine(onnx_path, precision, cache)[0], precision)


class TensorRTRunner:
    """An engine with its inputs and output in fixed torch CUDA tensors; calls take any number of crops."""

    def __init__(self, engine_bytes: bytes, precision: str = "fp16"):
        import tensorrt as trt

        self._runtime = trt.Runtime(_logger())   # must outlive the engine
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT cannot deserialize the engine")
        self.context = self.engine.create_execution_context()
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.buffers = {n: torch.empty(tuple(self.engine.get_tensor_shape(n)), device="cuda",
                                       dtype=dtypes[self.engine.get_tensor_dtype(n)]) for n in names}
        for name, tensor in self.buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output = next(n for n in names if n not in self.inputs)
        batch = self.buffers[self.inputs[0]].shape[0]
        self._call = fixed_batch(self._run, batch)
        self.status, self.error = f"tensorrt ({precision}, batch {batch})", ""

    def _run(self, *arrays: np.ndarray) -> np.ndarray:
        for name, array in zip(self.inputs, arrays, strict=False):
            self.buffers[name].copy_(torch.from_numpy(array))
        self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        return self.buffers[self.output].float().cpu().numpy()

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        return self._call(*arrays)
