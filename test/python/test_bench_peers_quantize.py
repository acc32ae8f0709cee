"""bench/peers/quantize_int8.py, the int8 graph the ONNX Runtime peer of make bench-peers runs: the
transform must make quantize_dynamic's pattern and its numbers. Checked against numpy's own
arithmetic on the pattern's definition (ONNX's operator specs), not against onnxruntime."""
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="python3-onnx (a bench-only package) is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench", "peers"))
from quantize_int8 import quantize_model  # noqa: E402


def graph_with(weight, activation_weight=False):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             helper.make_node("MatMul", ["y", "x2"], ["z"], name="mm_activations")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
                                       helper.make_tensor_value_info("x2", TensorProto.FLOAT, [3, 2])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2])],
                          [numpy_helper.from_array(weight, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_constant_matmul_becomes_dynamic_int8_and_activation_matmul_stays():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    model = graph_with(w)
    assert quantize_model(model) == 1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul", "MatMul"]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert "w" not in inits  # the fp32 weight is gone
    q = next(v for k, v in inits.items() if k.endswith("_W_quantized"))
    scale = next(v for k, v in inits.items() if k.endswith("_W_scale"))
    zero = next(v for k, v in inits.items() if k.endswith("_W_zero_point"))
    assert q.dtype == np.int8 and zero.dtype == np.int8 and int(zero) == 0
    assert np.isclose(float(scale), np.abs(w).max() / 127, rtol=1e-6)
    assert np.abs(q).max() == 127
    # Dequantised weights within half a step of the originals.
    assert np.abs(q.astype(np.float32) * scale - w).max() <= float(scale) / 2 + 1e-7


def test_non_constant_and_non_float_weights_are_left_alone():
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    model = graph_with(w)
    model.graph.initializer[0].data_type = TensorProto.DOUBLE  # not an fp32 weight: untouched
    model.graph.initializer[0].ClearField("raw_data")
    model.graph.initializer[0].double_data.extend(w.ravel().tolist())
    assert quantize_model(model) == 0
    assert [n.op_type for n in model.graph.node] == ["MatMul", "MatMul"]
