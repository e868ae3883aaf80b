"""ONNX export of the networks, with the checks that make a graph safe to hand to TensorRT.

Shapes are static (batch and crop size fixed at export: TensorRT engines are built per shape),
the opset is 17 or newer, and the graph is checked by onnx's full checker and for operators outside
a common set. Parity with torch is measured under onnxruntime on the CPU. Cached exports are named
after the weights, the shape and ``code_tag()`` (package version, network and export sources, torch,
opset): after an upgrade that changes a network's code, no old graph, and so no old engine, serves.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..networks.amodal_nets import AmodalMaskNet, SpadeAmodalDepthNet
from ..networks.crops import CROP_SIZE, DEPTH_CHANNELS, INPUT_CHANNELS
from ..networks.segmentation_net import INPUT_CHANNELS as SEGMENTATION_CHANNELS
from ..networks.segmentation_net import SegmentationNet
from .cache import atomic_write, cache_dir, file_lock, remove_temps, temp_path

if TYPE_CHECKING:
    from onnxruntime import InferenceSession  # optional at run time: imported where a session is made

OPSET = 17
_PACKAGE = Path(__file__).resolve().parent.parent
# The sources an exported graph is traced from or converted by: the networks and the export code.
GRAPH_SOURCES = ("networks/*.py", "runtime/export.py", "runtime/fp16.py")
# Operators every TensorRT 10 release parses natively; anything else is reported.
COMMON_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Tanh", "Sigmoid", "Relu", "Erf", "Gelu", "Clip",
    "Conv", "ConvTranspose", "BatchNormalization", "LayerNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
    "MatMul", "Gemm", "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "Resize", "Concat", "Slice", "Split",
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Gather", "Shape", "Constant", "ConstantOfShape",
    "Cast", "Identity", "Expand", "Where", "Equal", "Neg", "Abs", "Min", "Max"})


def example_inputs(kind: str, batch: int) -> tuple[torch.Tensor, ...]:
    """Deterministic inputs of the exported shapes."""
    g = torch.Generator().manual_seed(0)
    channels = INPUT_CHANNELS if kind == "amodal_mask" else DEPTH_CHANNELS
    x = torch.rand(batch, channels, CROP_SIZE, CROP_SIZE, generator=g)
    if kind == "amodal_mask":
        return (x,)
    return x, (torch.rand(batch, CROP_SIZE, CROP_SIZE, generator=g) > 0.5).float()


def segmentation_example(height: int, width: int) -> tuple[torch.Tensor]:
    """A deterministic input of the segmentation network at ``height`` x ``width`` (multiples of 16)."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, SEGMENTATION_CHANNELS, height, width, generator=g),)


INPUT_NAMES = {"amodal_mask": ["crops"], "amodal_depth": ["crops", "amodal"], "segmentation": ["features"]}
OUTPUT_NAMES = {"amodal_mask": ["logits"], "amodal_depth": ["log_ratio"], "segmentation": ["logits"]}


def export_onnx(model: torch.nn.Module, inputs: Sequence[torch.Tensor], path: Path, input_names: list[str],
                output_names: list[str], opset: int = OPSET) -> Path:
    """Trace ``model`` on ``inputs`` into ``path`` with static shapes (written atomically, through a temporary
    file of its own: concurrent exports never share one)."""
    path = Path(path)
    tmp = temp_path(path)
    model = model.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(model, tuple(inputs), str(tmp), input_names=input_names, output_names=output_names,
                              opset_version=opset, dynamo=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@functools.cache
def code_version() -> dict[str, str]:
    """What a cached graph depends on besides its weights and shapes: this package's version and the digest
    of the sources it is traced from (GRAPH_SOURCES; a change without a version bump counts too), the torch
    version (its exporter) and the ONNX opset."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in GRAPH_SOURCES for p in _PACKAGE.glob(pattern)):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        version = metadata.version("amodal_depth_ros")
    except metadata.PackageNotFoundError:   # run from a source tree that was never installed
        version = "unknown"
    return {"package": version, "code": digest.hexdigest()[:16], "torch": torch.__version__, "opset": str(OPSET)}


def code_tag() -> str:
    """Short digest of ``code_version()``, part of every cached graph's file name."""
    return hashlib.sha256(json.dumps(code_version(), sort_keys=True).encode()).hexdigest()[:8]


def cached_graph_path(name: str, weights_digest: str, shape: str) -> Path:
    """Where a network's exported graph is cached: named after the network, its weights' digest, the static
    shape and ``code_tag()`` (package, network code, torch and opset: an upgrade never serves an old graph)."""
    return cache_dir() / "onnx" / f"{name}-{weights_digest}-{shape}-{code_tag()}.onnx"


def cached_export(path: Path, write: Callable[[Path], object]) -> Path:
    """``path``, written first by ``write(path)`` (atomically) if it is not there yet. One writer per file
    across processes: the others wait for it and then find the file."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.parent / f".{path.name}.lock", f"exporting {path.name}"):
        remove_temps(path.parent, path.name)
        if not path.is_file():
            write(path)
    return path


def fp16_graph(path: Path) -> Path:
    """The cached fp16 version of the fp32 graph ``path`` (``fp16.to_fp16``: normalisation, softmax and
    reductions stay fp32), for builders that take precision from the graph (strongly typed TensorRT)."""
    import onnx

    from .fp16 import to_fp16

    def write(out: Path) -> None:
        atomic_write(out, to_fp16(onnx.load(str(path))).SerializeToString())
    return cached_export(fp16_graph_path(path), write)


def fp16_graph_path(path: Path) -> Path:
    """Where ``fp16_graph(path)`` is cached (nothing is written)."""
    return Path(path).with_suffix(".fp16.onnx")


def check_onnx(path: Path) -> dict:
    """Full onnx check; every input/output dimension static; the operators used and any outside COMMON_OPS."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    dims = {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)}
    ops = sorted({node.op_type for node in model.graph.node})
    return {"opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
            "shapes": dims, "static": all(isinstance(d, int) and d > 0 for shape in dims.values() for d in shape),
            "ops": ops, "uncommon_ops": [op for op in ops if op not in COMMON_OPS]}


def onnxruntime_session(path: Path, device: str = "cpu", precision: str = "fp32",
                        engine_cache: Path | None = None) -> InferenceSession:
    """On CUDA: onnxruntime's TensorRT and CUDA providers, those of them installed (onnxruntime-gpu), before
    the CPU one; TensorRT in ``precision`` with its engines cached in ``engine_cache``. Elsewhere a CPU
    session that does not spin idle threads (spinning slows the torch calls around it), with at most
    $OMP_NUM_THREADS of them where that is set."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:   # the thread budget torch keeps to, which onnxruntime ignores
        options.intra_op_num_threads = int(threads)
    providers: list = ["CPUExecutionProvider"]
    if device == "cuda":
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        if "TensorrtExecutionProvider" in available:
            trt_options: dict[str, bool | str] = {"trt_fp16_enable": precision == "fp16"}
            if engine_cache is not None:
                engine_cache.mkdir(parents=True, exist_ok=True)
                trt_options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(engine_cache))
            providers.insert(0, ("TensorrtExecutionProvider", trt_options))
    return ort.InferenceSession(str(path), options, providers=providers)


def parity(model: torch.nn.Module, inputs: Sequence[torch.Tensor], path: Path) -> float:
    """Largest absolute difference between torch and onnxruntime on ``inputs``."""
    session = onnxruntime_session(path)
    with torch.no_grad():
        expected = model.eval()(*inputs).numpy()
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=False)}
    return float(np.abs(session.run(None, feeds)[0] - expected).max())


def export_segmentation_net(net: SegmentationNet, out: Path, height: int, width: int) -> dict:
    """Export the segmentation network for one input size; its checks and parity."""
    out.mkdir(parents=True, exist_ok=True)
    inputs = segmentation_example(height, width)
    path = export_onnx(net, inputs, out / f"segmentation.{height}x{width}.onnx", INPUT_NAMES["segmentation"],
                       OUTPUT_NAMES["segmentation"])
    return {"file": str(path), **check_onnx(path), "max_abs_diff": parity(net, inputs, path)}


def export_amodal_nets(mask_net: AmodalMaskNet, depth_net: SpadeAmodalDepthNet, out: Path, batch: int = 8) -> dict:
    """Export both amodal networks for ``batch`` crops; returns the checks and parity of each."""
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for kind, net in (("amodal_mask", mask_net), ("amodal_depth", depth_net)):
        inputs = example_inputs(kind, batch)
        path = export_onnx(net, inputs, out / f"{kind}.b{batch}.onnx", INPUT_NAMES[kind], OUTPUT_NAMES[kind])
        report[kind] = {"file": str(path), **check_onnx(path), "max_abs_diff": parity(net, inputs, path)}
    return report
