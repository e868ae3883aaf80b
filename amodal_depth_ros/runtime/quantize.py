"""int8 graphs for onnxruntime's CPU provider (``inference.cpu_precision: int8``).

An exported fp32 graph is quantised statically (QDQ: int8 weights per tensor, uint8 activations) with
activation ranges shipped beside the weights, ``weights/int8/<network>-<weights digest>.json``: every
machine quantises the same way and needs no calibration data at run time. ``amodal-depth calibrate``
computes the ranges (min/max) on rendered scenes of the training seeds. The ranges are keyed by tensor name,
which the network's modules fix, so one file serves every batch size and camera resolution.

Only the networks where int8 costs nothing measurable are quantised (``INT8_NETWORKS``): the segmentation
network (1.5x faster on two cores) and the amodal mask network (1.5x). The amodal depth network stays fp32:
quantising its log-depth inputs to 8 bits cost 5 % hidden-surface AbsRel on the held-out rooms.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..networks.checkpoints import WEIGHTS_DIR
from .cache import temp_path, weights_digest
from .export import cached_export

INT8_NETWORKS = ("segmentation", "amodal_mask")
RANGES_DIR = WEIGHTS_DIR / "int8"
RECIPE = "qdq u8 activations, s8 weights per tensor, input nodes fp32"   # part of the cached graphs' names


def ranges_path(kind: str, weights: Path, folder: Path | None = None) -> Path:
    """Where the activation ranges of network ``kind`` with ``weights`` are (or go: ``folder``, by default
    RANGES_DIR, the shipped ones')."""
    return Path(folder or RANGES_DIR) / f"{kind}-{weights_digest(weights)}.json"


def _quantize(fp32: Path, out: Path, ranges: Path, feeds: Iterable[dict[str, np.ndarray]] | None = None) -> None:
    """``fp32`` quantised into ``out`` with the ranges in ``ranges``; computed there first from ``feeds``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self, items: Iterator[dict[str, np.ndarray]]):
            self.items = items

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(fp32), str(out), None if feeds is None else Feeds(iter(feeds)),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=input_nodes(fp32), calibration_cache_path=str(ranges))


def input_nodes(graph: Path) -> list[str]:
    """The nodes reading the graph's inputs, which stay fp32: 8 bits over an input's whole range are too
    coarse for depth (the segmentation network's outlines on real depth edges moved)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    inputs = {i.name for i in model.graph.input}
    return [node.name for node in model.graph.node if inputs & set(node.input)]


def compute_ranges(fp32: Path, feeds: Iterable[dict[str, np.ndarray]], out: Path) -> Path:
    """The activation ranges of graph ``fp32`` over ``feeds`` (input name -> array, of the graph's shapes),
    written to ``out`` (replaced)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)   # a cache file there would be read instead of computed
    with tempfile.TemporaryDirectory() as folder:
        _quantize(fp32, Path(folder) / "discarded.onnx", out, feeds)
    out.chmod(0o644)   # onnxruntime writes it private; it ships with the package
    return out


def int8_graph(fp32: Path, ranges: Path) -> Path:
    """The cached int8 version of the fp32 graph ``fp32``, quantised with ``ranges`` (named after both)."""
    tag = hashlib.sha256(RECIPE.encode() + Path(ranges).read_bytes()).hexdigest()[:8]

    def write(out: Path) -> None:
        tmp = temp_path(out)
        try:
            _quantize(fp32, tmp, ranges)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return cached_export(Path(fp32).with_suffix(f".int8-{tag}.onnx"), write)


def cpu_graph(fp32: Path, kind: str, weights: Path, precision: str) -> tuple[Path, str]:
    """(the graph onnxruntime's CPU provider serves, its precision in words): the int8 graph where
    ``precision`` is 'int8', ``kind`` is one of INT8_NETWORKS and ranges for ``weights`` are shipped; else
    ``fp32``, and why."""
    if precision != "int8" or kind not in INT8_NETWORKS:
        return fp32, "fp32"
    ranges = ranges_path(kind, weights)
    if not ranges.is_file():
        return fp32, f"fp32: no int8 ranges for these weights ({ranges.name}; `amodal-depth calibrate` makes them)"
    try:
        return int8_graph(fp32, ranges), "int8"
    except Exception as exc:   # an onnxruntime without calibration caches (< 1.23), a range file of other tensors
        return fp32, f"fp32: int8 quantisation failed ({type(exc).__name__}: {exc})"
