"""The int8 graph onnxruntime.quantization.quantize_dynamic makes with its defaults (its Python package is
not to be had here): every MatMul whose second input is a constant fp32 matrix becomes

    DynamicQuantizeLinear(A) -> MatMulInteger(A_u8, W_s8, A_zp, 0) -> Cast(float) -> Mul(A_scale * W_scale)

with the weight quantized per tensor, symmetric int8 (scale = max|W| / 127, zero point 0), as its
defaults do (QInt8 weights, WeightSymmetric, per_channel False, reduce_range False). Other operators stay
fp32 (its dynamic registry also has ConvInteger for Conv: the one patch-embedding Conv is left in fp32).
ORT's graph optimiser fuses the pattern into DynamicQuantizeMatMul at load, as for its own output.
Written with python3-onnx (Debian).
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _constants(graph):
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = node.attribute[0].t
    return values


def quantize_model(model):
    graph = model.graph
    consts = _constants(graph)
    nodes, new_inits, count, used = [], [], 0, set()
    for node in graph.node:
        w = consts.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or w.data_type != TensorProto.FLOAT or len(w.dims) != 2:
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        weight = numpy_helper.to_array(w).astype(np.float32)
        scale = np.float32(max(float(np.abs(weight).max()), 1e-12) / 127.0)
        q = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        wq, ws, wz = f"{name}_W_quantized", f"{name}_W_scale", f"{name}_W_zero_point"
        new_inits += [numpy_helper.from_array(q, wq), numpy_helper.from_array(np.array(scale, np.float32), ws),
                      numpy_helper.from_array(np.array(0, np.int8), wz)]
        a = node.input[0]
        aq, asc, az = f"{name}_A_quantized", f"{name}_A_scale", f"{name}_A_zero_point"
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [a], [aq, asc, az], name=f"{name}_QuantizeLinear"),
            helper.make_node("MatMulInteger", [aq, wq, az, wz], [f"{name}_out_i32"], name=f"{name}_MatMulInteger"),
            helper.make_node("Cast", [f"{name}_out_i32"], [f"{name}_out_f32"], to=TensorProto.FLOAT,
                             name=f"{name}_Cast"),
            helper.make_node("Mul", [asc, ws], [f"{name}_scale"], name=f"{name}_scales_Mul"),
            helper.make_node("Mul", [f"{name}_out_f32", f"{name}_scale"], [node.output[0]], name=f"{name}_Mul"),
        ]
        used.add(node.input[1])
        count += 1
    # Drop the fp32 weights that only the quantized MatMuls read.
    still_read = {i for n in nodes for i in n.input}
    keep = [t for t in graph.initializer if t.name not in used or t.name in still_read]
    nodes = [n for n in nodes if not (n.op_type == "Constant" and n.output[0] in used and n.output[0] not in still_read)]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits)
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def quantize_file(src, dst):
    model = onnx.load(src)
    count = quantize_model(model)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    return count
