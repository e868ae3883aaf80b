"""fp16 graphs for TensorRT's strongly typed builds: the package's networks converted, checked op by op and against
the fp32 graph under onnxruntime; shape arithmetic left in fp32; fp32 normalisation where fp16 would overflow."""
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from amodal_depth_ros.networks import (
    WEIGHTS_DIR,
    AmodalMaskNet,
    DepthAnythingV2,
    EncoderConfig,
    SpadeAmodalDepthNet,
    load_weights,
)
from amodal_depth_ros.networks.segmentation_net import SegmentationNet
from amodal_depth_ros.runtime.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    example_inputs,
    export_onnx,
    segmentation_example,
)
from amodal_depth_ros.runtime.fp16 import FP32_OPS, fp16_report, to_fp16

FLOAT, FLOAT16, INT64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64
NETWORKS = ["amodal_mask", "amodal_depth", "segmentation", "dav2"]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """name -> (fp32 graph, to_fp16 of it, example feeds)."""
    out = tmp_path_factory.mktemp("fp16")
    torch.manual_seed(0)
    tiny = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))
    nets = {"amodal_mask": (load_weights(AmodalMaskNet(), WEIGHTS_DIR / "amodal_mask.pt", "amodal mask"),
                            example_inputs("amodal_mask", 2), INPUT_NAMES["amodal_mask"], OUTPUT_NAMES["amodal_mask"]),
            "amodal_depth": (load_weights(SpadeAmodalDepthNet(), WEIGHTS_DIR / "amodal_depth.pt", "amodal depth"),
                             example_inputs("amodal_depth", 2), INPUT_NAMES["amodal_depth"],
                             OUTPUT_NAMES["amodal_depth"]),
            "segmentation": (load_weights(SegmentationNet(), WEIGHTS_DIR / "segmentation.pt", "segmentation"),
                             segmentation_example(64, 80), INPUT_NAMES["segmentation"], OUTPUT_NAMES["segmentation"]),
            "dav2": (DepthAnythingV2(tiny, max_depth=20.0).eval(), (torch.rand(1, 3, 140, 140),), ["image"], ["depth"])}
    found = {}
    for name, (net, inputs, input_names, output_names) in nets.items():
        model = onnx.load(str(export_onnx(net, inputs, out / f"{name}.onnx", input_names, output_names)))
        found[name] = model, to_fp16(model), {n: t.numpy() for n, t in zip(input_names, inputs, strict=True)}
    return found


def _types(model):
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    return {**{v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)},
            **{t.name: t.data_type for t in g.initializer}}


def _data_nodes(model):
    """Indices of the nodes depending on an input's values (Shape and Size outputs carry no such dependency)."""
    data, found = {v.name for v in model.graph.input}, set()
    for i, n in enumerate(model.graph.node):
        if n.op_type not in ("Shape", "Size") and data.intersection(n.input):
            data.update(n.output)
            found.add(i)
    return found


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _all_fp16(model):
    """The naive conversion: every float tensor fp16, inputs and outputs included."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    half = [t for t in m.graph.initializer if t.data_type == FLOAT]
    half += [n.attribute[0].t for n in m.graph.node if n.op_type == "Constant" and n.attribute[0].t.data_type == FLOAT]
    for t in half:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for a in (a for n in m.graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to" and a.i == FLOAT):
        a.i = FLOAT16
    for v in (*m.graph.input, *m.graph.output):
        if v.type.tensor_type.elem_type == FLOAT:
            v.type.tensor_type.elem_type = FLOAT16
    del m.graph.value_info[:]
    return m


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _constant(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32)))


@pytest.mark.parametrize("name", NETWORKS)
def test_the_networks_compute_in_fp16_except_the_fp32_ops(networks, name):
    model, half, _ = networks[name]
    onnx.checker.check_model(half, full_check=True)
    assert [(v.name, v.type.tensor_type.elem_type) for v in (*half.graph.input, *half.graph.output)] == \
        [(v.name, FLOAT) for v in (*model.graph.input, *model.graph.output)]
    types, report = _types(half), fp16_report(half)
    heavy = [n for n in half.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")]
    assert heavy and all(types[n.input[0]] == types[n.input[1]] == FLOAT16 for n in heavy)
    assert {op: report[op] for op in FP32_OPS & set(report)} == dict.fromkeys(FP32_OPS & set(report), {"FLOAT"})
    if name == "dav2":
        assert {"LayerNormalization", "Softmax", "Sqrt"} <= set(report)
    assert all(types[x] == FLOAT for n in half.graph.node if n.op_type == "Resize" for x in n.input[1:3] if x)
    # The shape subgraph is left as it was (Constants read only by data nodes excepted: converted offline).
    data = _data_nodes(model)
    kept = {n.SerializeToString() for n in half.graph.node}
    readers = defaultdict(set)
    for i, n in enumerate(model.graph.node):
        for x in n.input:
            readers[x].add(i)
    untouched = [n for i, n in enumerate(model.graph.node) if i not in data and not (
        n.op_type == "Constant" and readers[n.output[0]] <= data)]
    assert untouched and all(n.SerializeToString() in kept for n in untouched)
    if name == "dav2":   # sizes computed in float (interpolation, attention scale) keep their Cast to FLOAT
        assert sum(n.op_type == "Cast" and n.attribute[0].i == FLOAT for n in untouched) >= 4


@pytest.mark.parametrize("name", NETWORKS)
def test_the_networks_agree_with_fp32_to_fp16_precision(networks, name):
    """Under onnxruntime's CPU provider (which runs most fp16 ops upcast, so this mostly measures the fp16
    weights) and under onnx's reference evaluator (numpy in fp16, op by op: fp16 arithmetic for real)."""
    model, half, feeds = networks[name]
    expected = _run(model, feeds)[0]
    scale = float(np.abs(expected).max())
    runs = {"onnxruntime": _run(half, feeds)[0], "reference": ReferenceEvaluator(half).run(None, feeds)[0]}
    for runtime, got in runs.items():
        diff = np.abs(got - expected)
        print(f"{name} {runtime}: max |ref| {scale:.4g}, max |diff| {diff.max():.3g} ({diff.max() / scale:.2g} of it),"
              f" mean |diff| {diff.mean():.2g}")
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert 0 < diff.max() <= 5e-3 * scale + 1e-4     # measured: 2e-3 of the scale at most


def test_an_initializer_read_in_both_precisions_is_copied_not_cast():
    w = numpy_helper.from_array(np.array([1.0, 2.0, 0.5, 3.0], np.float32).reshape(2, 2, 1, 1), "w")
    nodes = [_constant("b", [0.25, -0.5]), helper.make_node("Conv", ["x", "w", "b"], ["y"]),
             helper.make_node("Pow", ["x", "w"], ["z"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", FLOAT, [1, 2, 4, 4])],
                   [helper.make_tensor_value_info("y", FLOAT, [1, 2, 4, 4]),
                    helper.make_tensor_value_info("z", FLOAT, [2, 2, 4, 4])], [w])
    half = to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    nodes = {n.op_type: n for n in half.graph.node if n.op_type != "Cast"}
    initializers = {t.name: t.data_type for t in half.graph.initializer}
    assert list(nodes["Pow"].input) == ["x", "w"] and initializers["w"] == FLOAT
    assert initializers[nodes["Conv"].input[1]] == FLOAT16 and nodes["Conv"].input[1] != "w"
    assert nodes["Constant"].attribute[0].t.data_type == FLOAT16        # read by the Conv only: converted in place
    assert sorted((list(n.input), list(n.output)) for n in half.graph.node if n.op_type == "Cast") == [
        (["x"], [nodes["Conv"].input[0]]), ([nodes["Conv"].output[0]], ["y"])]
    feeds = {"x": np.random.default_rng(0).random((1, 2, 4, 4), dtype=np.float32)}
    (y, z), (y16, z16) = (ReferenceEvaluator(m).run(None, feeds) for m in (model, half))
    assert np.allclose(y16, y, rtol=2e-3, atol=2e-3) and not np.array_equal(y16, y)
    assert np.array_equal(z16, z)                                       # Pow read x and w as they were


def test_shape_arithmetic_in_float_stays_fp32():
    """1365 * 1.5 = 2047.5 truncates to 2047 in fp32; fp16 rounds 2047.5 to 2048 first."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Cast", ["shape"], ["fshape"], to=FLOAT),
             _constant("factor", [1.0, 1.0, 1.0, 1.5]), helper.make_node("Mul", ["fshape", "factor"], ["fsizes"]),
             helper.make_node("Cast", ["fsizes"], ["sizes"], to=INT64),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["resized"], mode="nearest"),
             helper.make_node("Relu", ["resized"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", FLOAT, [1, 1, 1, 1365])],
                   [helper.make_tensor_value_info("y", FLOAT, None)])
    half = to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    kept = {n.SerializeToString() for n in half.graph.node}
    assert all(n.SerializeToString() in kept for n in model.graph.node[:5])
    assert fp16_report(half)["Relu"] == {"FLOAT16"}
    feeds = {"x": np.random.default_rng(0).random((1, 1, 1, 1365), dtype=np.float32)}
    assert _run(model, feeds)[0].shape == _run(half, feeds)[0].shape == (1, 1, 1, 2047)
    assert ReferenceEvaluator(half).run(None, feeds)[0].shape == (1, 1, 1, 2047)
    naive = ReferenceEvaluator(_all_fp16(model)).run(None, {"x": feeds["x"].astype(np.float16)})[0]
    assert naive.shape == (1, 1, 1, 2048)


def _layer_norm(decomposed):
    """y = 2 * LayerNorm(x + 1) over a last axis of 64; the Add and the Mul run in fp16 under to_fp16."""
    nodes = [_constant("one", 1.0), helper.make_node("Add", ["x", "one"], ["h"])]
    if decomposed:   # as torch exports LayerNorm before opset 17
        nodes += [helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1]),
                  helper.make_node("Sub", ["h", "mean"], ["d"]), _constant("p", 2.0),
                  helper.make_node("Pow", ["d", "p"], ["d2"]),
                  helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
                  _constant("eps", 1e-5), helper.make_node("Add", ["var", "eps"], ["vareps"]),
                  helper.make_node("Sqrt", ["vareps"], ["std"]), helper.make_node("Div", ["d", "std"], ["n0"]),
                  helper.make_node("Mul", ["n0", "gamma"], ["n1"]), helper.make_node("Add", ["n1", "beta"], ["n"])]
    else:
        nodes.append(helper.make_node("LayerNormalization", ["h", "gamma", "beta"], ["n"], axis=-1))
    nodes += [_constant("two", 2.0), helper.make_node("Mul", ["n", "two"], ["y"])]
    initializers = [numpy_helper.from_array(np.ones(64, np.float32), "gamma"),
                    numpy_helper.from_array(np.zeros(64, np.float32), "beta")]
    return _model(nodes, [helper.make_tensor_value_info("x", FLOAT, [1, 4, 64])],
                  [helper.make_tensor_value_info("y", FLOAT, [1, 4, 64])], initializers)


@pytest.mark.parametrize("decomposed", [False, True], ids=["LayerNormalization", "decomposed"])
def test_fp32_normalisation_survives_activations_that_overflow_fp16(decomposed):
    """Activations of std 300: their squares (~9e4) pass fp16's 65504, so in fp16 the variance is inf and every
    output 0. The decomposed form also needs its ``var + eps`` Add kept in fp32."""
    model = _layer_norm(decomposed)
    x = (300 * np.random.default_rng(0).standard_normal((1, 4, 64))).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    with np.errstate(over="ignore", invalid="ignore"):
        naive = ReferenceEvaluator(_all_fp16(model)).run(None, {"x": x.astype(np.float16)})[0]
        got = ReferenceEvaluator(to_fp16(model)).run(None, {"x": x})[0]   # numpy's fp16, op by op
    assert np.abs(expected).max() > 3
    assert not np.allclose(naive.astype(np.float32), expected, atol=0.5)
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 1e-2


def test_a_tensor_of_unknown_type_is_an_error():
    model = _model([helper.make_node("Mystery", ["x"], ["m"], domain="vendor"), helper.make_node("Relu", ["m"], ["y"])],
                   [helper.make_tensor_value_info("x", FLOAT, [2])], [helper.make_tensor_value_info("y", FLOAT, [2])])
    model.opset_import.append(helper.make_opsetid("vendor", 1))
    with pytest.raises(ValueError, match="element type of 'm'.*cannot be inferred"):
        to_fp16(model)
