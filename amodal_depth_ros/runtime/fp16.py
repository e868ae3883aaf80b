"""fp16 copies of fp32 ONNX graphs, for TensorRT 10.12+ / 11 strongly typed builds: there precision is carried by
the graph's tensor types (no fp16 builder flag, no per-layer precision), so the graph itself must say which ops
run in fp16 and which (normalisations, softmax, reductions) stay fp32."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, FLOAT16 = int(TensorProto.FLOAT), int(TensorProto.FLOAT16)
FP32_OPS = frozenset({
    "LayerNormalization", "InstanceNormalization", "GroupNormalization", "Softmax", "LogSoftmax",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare",
    "ReduceLogSumExp", "Pow", "Sqrt",
    # Added: the remaining reductions and normalisations, and CumSum (a running sum overflows like a reduction).
    # BatchNormalization stays fp16: at inference it is a per-channel affine map (folded into the conv before it).
    "ReduceL1", "ReduceLogSum", "LpNormalization", "MeanVarianceNormalization", "CumSum"})

# Inputs kept fp32 whatever their node computes in: the spec types Resize's scales float32 only, and roi is a
# handful of coordinates.
FIXED_FP32_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (1, 2), "Upsample": (1,)}
# Element-wise ops between fp32 ops stay fp32: the ``var + eps`` between a decomposed LayerNorm's ReduceMean and
# its Sqrt would overflow in fp16 once the variance passes 65504 (std > 256).
_SANDWICHED = frozenset({"Add", "Sub", "Mul", "Div"})
_NO_DATA = frozenset({"Shape", "Size"})  # their outputs do not depend on the input's values


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor the graph declares (initializers, inputs, value_info, outputs)."""
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    return types


def _fp16(array: np.ndarray, name: str = "") -> onnx.TensorProto:
    # Finite values past fp16's range saturate rather than become inf (e.g. -1e9 attention masks).
    limit = float(np.finfo(np.float16).max)
    return numpy_helper.from_array(np.where(np.isfinite(array), np.clip(array, -limit, limit), array)
                                   .astype(np.float16), name)


def _value(node: onnx.NodeProto) -> np.ndarray:
    """The value of a Constant (or of a ConstantOfShape: zero by default)."""
    attr = next(iter(node.attribute), None)
    if attr is None or attr.name == "value":
        return numpy_helper.to_array(attr.t) if attr else np.zeros(1, np.float32)
    return np.asarray(helper.get_attribute_value(attr), np.float32)  # value_float / value_floats


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of fp32 ``model`` computing in fp16 except FP32_OPS; graph inputs and outputs keep their fp32 types.

    Only nodes that depend on the inputs' values change: constant and shape subgraphs (sizes computed in float,
    then cast to int64) stay fp32, since fp16 holds integers exactly only up to 2048."""
    model = onnx.shape_inference.infer_shapes(model)  # a copy, with the type of every tensor
    g, types = model.graph, _types(model)
    for n in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise ValueError(f"to_fp16: {n.op_type} {n.name!r} has a subgraph; control flow is not supported")
        for x in (*n.input, *n.output):
            if x and x not in types:
                raise ValueError(f"to_fp16: the element type of {x!r} ({n.op_type} {n.name!r}) cannot be inferred")
    inputs, outputs = {v.name for v in g.input}, {v.name for v in g.output}
    initializers = {t.name: t for t in g.initializer if t.name not in inputs and t.data_type == FLOAT}
    constants = {n.output[0]: n for n in g.node if n.op_type == "Constant" and types[n.output[0]] == FLOAT}

    # Data nodes (those depending on an input's values) and their domain: the type they compute in.
    data, domain, producer = set(inputs), dict[int, int](), dict[str, int]()
    consumers: defaultdict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(g.node):
        producer.update((o, i) for o in n.output)
        for x in n.input:
            consumers[x].append(i)
        if n.op_type not in _NO_DATA and any(x in data for x in n.input):
            data.update(n.output)
            # Ops of other domains stay fp32: their type constraints are unknown here.
            domain[i] = FLOAT if n.op_type in FP32_OPS or n.domain not in ("", "ai.onnx") else FLOAT16
    domain.update(dict.fromkeys([
        i for i, dom in domain.items() if dom == FLOAT16 and g.node[i].op_type in _SANDWICHED
        and all(domain.get(producer.get(x, -1), FLOAT) == FLOAT for x in g.node[i].input if x in data)
        and consumers[g.node[i].output[0]] and all(domain.get(j) == FLOAT for j in consumers[g.node[i].output[0]])],
        FLOAT))
    new = dict(types)  # each tensor's type in the result
    for i, dom in domain.items():
        new.update((o, FLOAT16) for o in g.node[i].output if dom == FLOAT16 and types[o] == FLOAT)

    def wanted(i: int, k: int, x: str) -> int | None:
        """The type node i's input k must arrive in (None: any)."""
        n = g.node[i]
        if not x or types[x] != FLOAT or n.op_type in _NO_DATA or (n.op_type == "Cast" and i in domain):
            return None
        if i not in domain or k in FIXED_FP32_INPUTS.get(n.op_type, ()):
            return FLOAT  # untouched nodes keep their fp32 inputs
        return domain[i]

    taken = set(types) | {x for n in g.node for x in (*n.input, *n.output)}

    def unique(base: str) -> str:
        name, k = base, 0
        while name in taken:
            k, name = k + 1, f"{base}_{k + 1}"
        taken.add(name)
        return name

    # Constants wanted in fp16 are converted offline rather than by a Cast (TensorRT would fold one, but the graph
    # stays plain): in place where nothing wants the fp32 value, else as an fp16 copy.
    need: defaultdict[str, set[int | None]] = defaultdict(set, {y: {FLOAT} for y in outputs})
    for i, n in enumerate(g.node):
        for k, x in enumerate(n.input):
            need[x].add(wanted(i, k, x))
    made: dict[tuple[str, int], str] = {}  # (tensor, type) -> the name of that tensor in that type
    for x in (x for x in [*initializers, *constants] if FLOAT16 in need[x]):
        value = numpy_helper.to_array(initializers[x]) if x in initializers else _value(constants[x])
        if need[x] - {None} == {FLOAT16}:
            new[x] = FLOAT16
            if x in initializers:
                initializers[x].CopyFrom(_fp16(value, x))
            else:
                constants[x].ClearField("attribute")
                constants[x].attribute.append(helper.make_attribute("value", _fp16(value)))
        else:
            made[x, FLOAT16] = unique(f"{x}_fp16")
            g.initializer.append(_fp16(value, made[x, FLOAT16]))

    # Graph outputs made in fp16: the producer writes "<name>_fp16" and a final Cast restores the fp32 name.
    rename = {y: unique(f"{y}_fp16") for y in outputs if types.get(y) == FLOAT and new[y] == FLOAT16}
    names: dict[tuple[str, int], str] = {(y16, FLOAT): y for y, y16 in rename.items()}
    for y, y16 in rename.items():
        new[y16], new[y] = FLOAT16, FLOAT
    nodes: list[onnx.NodeProto] = []

    def convert(x: str, to: int) -> str:
        """``x`` as a ``to`` tensor: one Cast per (tensor, type), shared by its consumers."""
        if new[x] != to and (x, to) not in made:
            made[x, to] = names.get((x, to)) or unique(f"{x}_{'fp16' if to == FLOAT16 else 'fp32'}")
            nodes.append(helper.make_node("Cast", [x], [made[x, to]], name=f"{made[x, to]}/Cast", to=to))
        return made.get((x, to), x)

    for i, n in enumerate(g.node):
        if domain.get(i) == FLOAT16 and types.get(n.output[0]) == FLOAT and n.op_type in ("Cast", "ConstantOfShape"):
            if n.op_type == "Cast":  # the attribute fixes the output type
                next(a for a in n.attribute if a.name == "to").i = FLOAT16
            else:
                value = _value(n)
                n.ClearField("attribute")
                n.attribute.append(helper.make_attribute("value", _fp16(value)))
        for k, x in enumerate(n.input):
            to = wanted(i, k, x)
            n.input[k] = rename.get(x, x) if to is None else convert(rename.get(x, x), to)
        n.output[:] = [rename.get(o, o) for o in n.output]
        nodes.append(n)
    for y16 in rename.values():
        convert(y16, FLOAT)
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # stale: recomputed for the new graph
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    got = _types(model)
    wrong = sorted(x for x, t in new.items() if got.get(x, t) != t)
    if wrong:
        raise ValueError(f"to_fp16: unexpected element types of {wrong[:5]} (an op that fixes its output type?)")
    return model


def fp16_report(model: onnx.ModelProto) -> dict[str, set[str]]:
    """Per op type, the float element types its inputs arrive in (e.g. ``{"Conv": {"FLOAT16"}, ...}``)."""
    types = _types(onnx.shape_inference.infer_shapes(model))
    report: defaultdict[str, set[str]] = defaultdict(set)
    for n in model.graph.node:
        report[n.op_type].update(TensorProto.DataType.Name(types[x]) for x in n.input
                                 if types.get(x) in (FLOAT, FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16))
    return {op: dtypes for op, dtypes in report.items() if dtypes}
