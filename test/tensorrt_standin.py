"""A stand-in of the TensorRT Python API of one release, for the machines without TensorRT.

It exposes only the names that release's bindings have: data/tensorrt_api.json, read from
NVIDIA/TensorRT's pybind sources (python/src/infer/*.cpp, parsers/pyOnnx.cpp) of release/10.3,
release/10.12 and 11.1 by scripts/tensorrt_api_names.py. An attribute the release lacks raises
AttributeError on reading and on writing, as with the real pybind classes (on 11.x there is no
BuilderFlag.FP16 and no ILayer.precision), so code that passes against a stand-in uses nothing its
release lacks. The rules it enforces are the documented ones: a strongly typed network takes no
FP16 flag and no layer precision; an engine only deserializes on the release that built it; the
legacy EXPLICIT_BATCH flag value 0 and STRONGLY_TYPED 1 (10.x) or 0 (11.x, deprecated and ignored).

Engines run the ONNX graph they were built from with onnxruntime on the CPU, reading their inputs
from and writing their outputs to the addresses bound with set_tensor_address (torch CPU tensors in
the tests), so a runner that binds the wrong buffer gets wrong numbers. ``state`` records the builds,
the streams enqueued on, and failures to inject.
"""
from __future__ import annotations

import base64
import ctypes
import json
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

API = json.loads((Path(__file__).parent / "data" / "tensorrt_api.json").read_text())
MAGIC = b"TRT-STANDIN\n"


class Enum(int):
    """A pybind enum value: an int with a name."""

    def __new__(cls, value: int, name: str) -> Enum:
        obj = super().__new__(cls, value)
        obj.name = name
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __str__ = __repr__


def make_enum(name: str, members: list[str], values: dict[str, int] | None = None) -> type:
    cls = type(name, (Enum,), {})
    for i, member in enumerate(members):
        setattr(cls, member, cls((values or {}).get(member, i), member))
    return cls


class Bound:
    """A bound class: reading or writing a public name its release lacks raises AttributeError."""
    _names: frozenset[str] = frozenset()

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in type(self)._names:
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute '{name}'")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in type(self)._names:
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute '{name}'")
        object.__setattr__(self, name, value)


def make(version: str = "10.3.0", build_seconds: float = 0.0) -> types.ModuleType:
    """The stand-in ``tensorrt`` module of ``version`` (a key of data/tensorrt_api.json)."""
    api = API[version]
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.state = types.SimpleNamespace(builds=[], enqueued=[], fail_enqueue=False, refuse_address=False,
                                      no_context=False, fail_build=False, build_seconds=build_seconds)
    flag_values = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if major < 11 else {"STRONGLY_TYPED": 0}
    for name, members in api["enums"].items():
        setattr(trt, name, make_enum(name, members, flag_values if name == "NetworkDefinitionCreationFlag" else None))
    dtypes = {"float32": trt.DataType.FLOAT, "float16": trt.DataType.HALF, "int32": trt.DataType.INT32,
              "int64": trt.DataType.INT64, "bool": trt.DataType.BOOL}
    for name, value in dtypes.items():
        setattr(trt, name, value)
    numpy_of = {trt.float32: np.float32, trt.float16: np.float16, trt.int32: np.int32, trt.int64: np.int64,
                trt.bool: np.bool_}
    onnx_types = {1: trt.float32, 10: trt.float16, 6: trt.int32, 7: trt.int64, 9: trt.bool}
    layer_ops = {"LayerNormalization": "NORMALIZATION", "Softmax": "SOFTMAX", "ReduceMean": "REDUCE",
                 "ReduceSum": "REDUCE", "Conv": "CONVOLUTION", "MatMul": "MATRIX_MULTIPLY", "Relu": "ACTIVATION"}
    unary_ops = {"Sqrt": "SQRT", "Erf": "ERF", "Exp": "EXP"}
    elementwise_ops = {"Pow": "POW", "Add": "SUM", "Mul": "PROD", "Div": "DIV", "Sub": "SUB"}

    def bound(cls: type) -> type:
        cls._names = frozenset(api["classes"][cls.__name__])
        cls.__module__ = "tensorrt"
        setattr(trt, cls.__name__, cls)
        return cls

    @bound
    class Logger(Bound):
        WARNING = 2   # ILogger::Severity, exported onto the Logger class

        def __init__(self, severity: int = 2) -> None:
            object.__setattr__(self, "_severity", severity)

    Logger._names = Logger._names | {"WARNING"}

    @bound
    class ITensor(Bound):
        def __init__(self, name: str, dtype: Any) -> None:
            object.__setattr__(self, "_name", name)
            object.__setattr__(self, "_dtype", dtype)

        name = property(lambda self: self._name)
        dtype = property(lambda self: self._dtype)

    @bound
    class ILayer(Bound):
        def __init__(self, layer_type: Any, outputs: list[ITensor], op: Any = None) -> None:
            for key, value in (("_type", layer_type), ("_outputs", outputs), ("_op", op), ("_precision", None),
                               ("_output_types", {})):
                object.__setattr__(self, key, value)

        type = property(lambda self: self._type)
        num_outputs = property(lambda self: len(self._outputs))

        def get_output(self, i: int) -> ITensor:
            return self._outputs[i]

        def _set_precision(self, dtype: Any) -> None:
            object.__setattr__(self, "_precision", dtype)

        precision = property(lambda self: self._precision or trt.float32, _set_precision)
        precision_is_set = property(lambda self: self._precision is not None)

        def set_output_type(self, i: int, dtype: Any) -> None:
            self._output_types[i] = dtype

    for layer_class in ("IUnaryLayer", "IElementWiseLayer"):
        cls = bound(type(layer_class, (ILayer,), {"op": property(lambda self: self._op)}))
        cls._names = cls._names | ILayer._names

    @bound
    class INetworkDefinition(Bound):
        def __init__(self, flags: int) -> None:
            object.__setattr__(self, "_flags", flags)
            object.__setattr__(self, "_layers", [])
            object.__setattr__(self, "_onnx", b"")

        num_layers = property(lambda self: len(self._layers))

        def get_layer(self, i: int) -> ILayer:
            return self._layers[i]

        def _strongly_typed(self) -> bool:
            return major >= 11 or bool(self._flags & (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))

    @bound
    class IBuilderConfig(Bound):
        def __init__(self) -> None:
            object.__setattr__(self, "_flags", {trt.BuilderFlag.TF32})   # TF32 is on by default
            object.__setattr__(self, "_pools", {})

        def set_flag(self, flag: Any) -> None:
            self._flags.add(flag)

        def clear_flag(self, flag: Any) -> None:
            self._flags.discard(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self._flags

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self._pools[pool] = size

    @bound
    class OnnxParser(Bound):
        """Parses the graph into layers of the TensorRT types the ONNX ops become (only those the code looks at)."""

        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            object.__setattr__(self, "_network", network)
            object.__setattr__(self, "_errors", [])

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, i: int) -> str:
            return self._errors[i]

        def parse_from_file(self, path: str) -> bool:
            import onnx

            try:
                model = onnx.shape_inference.infer_shapes(onnx.load(path))
            except Exception as exc:
                self._errors.append(f"cannot read {path}: {exc}")
                return False
            types_of = {v.name: v.type.tensor_type.elem_type for v in
                        [*model.graph.value_info, *model.graph.input, *model.graph.output]}
            for node in model.graph.node:
                outputs = [ITensor(o, onnx_types.get(types_of.get(o, 1), trt.float32)) for o in node.output]
                if node.op_type in unary_ops:
                    layer = trt.IUnaryLayer(trt.LayerType.UNARY, outputs,
                                            getattr(trt.UnaryOperation, unary_ops[node.op_type]))
                elif node.op_type in elementwise_ops:
                    layer = trt.IElementWiseLayer(trt.LayerType.ELEMENTWISE, outputs,
                                                  getattr(trt.ElementWiseOperation, elementwise_ops[node.op_type]))
                else:
                    layer = ILayer(getattr(trt.LayerType, layer_ops.get(node.op_type, "IDENTITY")), outputs)
                layer.__class__ = ILayer   # as the real parser hands out layers: the base class until recast
                self._network._layers.append(layer)
            object.__setattr__(self._network, "_onnx", model.SerializeToString())
            return True

    @bound
    class Builder(Bound):
        def __init__(self, logger: Logger) -> None:
            pass

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
            strong = network._strongly_typed()
            pinned = sum(layer._precision is not None for layer in network._layers)
            fp16 = "FP16" in api["enums"]["BuilderFlag"] and config.get_flag(trt.BuilderFlag.FP16)
            if trt.state.fail_build or (strong and (fp16 or pinned)):   # strongly typed: no FP16 flag, no precision
                return None
            build = {"strong": strong, "fp16_flag": fp16, "pinned": pinned,
                     "tf32": config.get_flag(trt.BuilderFlag.TF32)}
            header = json.dumps({"version": version, **build, "onnx": base64.b64encode(network._onnx).decode()})
            started = time.time()
            time.sleep(trt.state.build_seconds)
            trt.state.builds.append({**build, "started": started, "ended": time.time()})
            return MAGIC + header.encode()

    @bound
    class IExecutionContext(Bound):
        def __init__(self, engine: ICudaEngine) -> None:
            object.__setattr__(self, "_engine", engine)
            object.__setattr__(self, "_addresses", {})

        def set_tensor_address(self, name: str, address: int) -> bool:
            if trt.state.refuse_address or name not in self._engine._io:
                return False
            self._addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            trt.state.enqueued.append(stream_handle)
            if trt.state.fail_enqueue or set(self._addresses) != set(self._engine._io):
                return False
            engine = self._engine

            def view(name: str) -> np.ndarray:
                dtype = np.dtype(numpy_of[engine._io[name][2]])
                size = int(np.prod(engine._io[name][1])) * dtype.itemsize
                raw = (ctypes.c_char * size).from_address(self._addresses[name])
                return np.frombuffer(raw, dtype).reshape(engine._io[name][1])
            feeds = {n: view(n).copy() for n, (mode, _, _) in engine._io.items() if mode == trt.TensorIOMode.INPUT}
            results = engine._session.run(None, feeds)
            for output, value in zip(engine._session.get_outputs(), results, strict=True):
                np.copyto(view(output.name), value, casting="unsafe")
            return True

    @bound
    class ICudaEngine(Bound):
        def __init__(self, model: bytes) -> None:
            import onnx
            import onnxruntime as ort

            graph = onnx.load_from_string(model).graph
            session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            io = {}
            # TensorRT does not promise the ONNX order: outputs first, inputs reversed.
            for values, mode in ((graph.output, trt.TensorIOMode.OUTPUT), (graph.input[::-1], trt.TensorIOMode.INPUT)):
                for v in values:
                    shape = tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                    io[v.name] = (mode, shape, onnx_types[v.type.tensor_type.elem_type])
            object.__setattr__(self, "_io", io)
            object.__setattr__(self, "_session", session)

        num_io_tensors = property(lambda self: len(self._io))

        def get_tensor_name(self, i: int) -> str:
            return list(self._io)[i]

        def get_tensor_mode(self, name: str) -> Any:
            return self._io[name][0] if name in self._io else trt.TensorIOMode.NONE

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self._io[name][1]

        def get_tensor_dtype(self, name: str) -> Any:
            return self._io[name][2]

        def create_execution_context(self) -> IExecutionContext | None:
            return None if trt.state.no_context else IExecutionContext(self)

    @bound
    class Runtime(Bound):
        def __init__(self, logger: Logger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
            if not bytes(data).startswith(MAGIC):
                return None
            header = json.loads(bytes(data)[len(MAGIC):])
            if header["version"] != version:   # plans only load on the release that built them
                return None
            return ICudaEngine(base64.b64decode(header["onnx"]))

    return trt


def recorded_names(version: str) -> set[str]:
    """Every class, enum and module attribute name the release's bindings define."""
    api = API[version]
    return set(api["classes"]) | set(api["enums"]) | set(api["module"])


def main(argv: list[str]) -> int:
    """``python tensorrt_standin.py VERSION GRAPH CACHE PRECISION BUILD_SECONDS [die-in-write]``: ensure_engine in
    a process of its own, against the stand-in (for the tests of processes racing and dying); prints what
    it got as json. ``die-in-write`` ends the process half-way through writing the engine file, as a kill does."""
    import hashlib
    import os
    import sys

    version, graph, cache_dir, precision, seconds = argv[:5]   # precision: fp16, fp32
    sys.modules["tensorrt"] = make(version, float(seconds))
    from amodal_depth_ros.runtime import engine_cache, tensorrt_engine
    from amodal_depth_ros.runtime.cache import temp_path

    tensorrt_engine.gpu_identity = lambda: {"gpu": "NVIDIA H200", "compute_capability": "9.0"}
    if argv[5:] == ["die-in-write"]:
        def dying_write(path: Path, data: bytes) -> None:
            tmp = temp_path(path)
            tmp.write_bytes(data[:len(data) // 2])
            os._exit(9)   # no cleanup, no finally: what SIGKILL leaves
        engine_cache.atomic_write = dying_write
    engine, how = tensorrt_engine.ensure_engine(Path(graph), precision, engine_cache.EngineCache(Path(cache_dir)))
    print(json.dumps({"how": how, "sha256": hashlib.sha256(engine).hexdigest(), "pid": os.getpid(),
                      "builds": sys.modules["tensorrt"].state.builds}))
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
