"""The int8 graph: every matmul quantized but the one modelbuild.export keeps in fp32, and why that one."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from modelbuild.export import GELUS, kept_in_fp32
from modelbuild.layout import default_cache_dir
from predictor.files import resolve

QUANTIZED_MATMULS = {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "QGemm"}


def graphs(model_dir):
    int8 = resolve(model_dir, model_dir.name, default_cache_dir(), "onnx-int8").weights
    return onnx.load(str(int8.parent / "model.onnx")).graph, onnx.load(str(int8)).graph


def test_the_first_ffn_output_matmul_alone_stays_fp32(tiny_model_dir):
    fp32, int8 = graphs(tiny_model_dir)
    gelu_outputs = [node.output[0] for node in fp32.node if node.op_type in GELUS]
    assert len(gelu_outputs) >= 2, "the optimizer fused one GELU per layer"
    kept = kept_in_fp32(fp32)
    first_ffn_output = [node.name for node in fp32.node if node.op_type == "MatMul" and node.input[0] == gelu_outputs[0]]
    assert kept == first_ffn_output
    float_matmuls = [node.name for node in int8.node if node.op_type == "MatMul"]
    assert float_matmuls == kept
    quantized = [node for node in int8.node if node.op_type in QUANTIZED_MATMULS]
    assert len(quantized) >= 2 * len(gelu_outputs) - 1, "every other layer's matmuls are int8"


def test_a_graph_without_gelu_keeps_nothing_in_fp32():
    node = onnx.helper.make_node("MatMul", ["x", "w"], ["y"], name="only")
    graph = onnx.helper.make_graph([node], "g", [], [])
    assert kept_in_fp32(graph) == []


def test_bench_int8_error_names_every_kind_of_matmul(tiny_model_dir, tmp_path):
    from bench.int8_error import kinds, weights_rounded

    fp32, _ = graphs(tiny_model_dir)
    found = kinds(fp32)
    layers = len([node for node in fp32.node if node.op_type in GELUS])
    for kind in ("qkv", "attention-output", "ffn-input", "ffn-output"):
        assert len(found[kind]) == layers, kind
    assert found["ffn-output-0"] == kept_in_fp32(fp32)
    assert len(found["head"]) == 2  # DistilBERT's pre_classifier and classifier
    int8 = resolve(tiny_model_dir, tiny_model_dir.name, default_cache_dir(), "onnx-int8").weights
    rounded = tmp_path / "rounded.onnx"
    weights_rounded(int8.parent / "model.onnx", rounded)
    original = {tensor.name: numpy_helper.to_array(tensor) for tensor in fp32.initializer}
    rounded_graph = onnx.load(str(rounded)).graph
    after_all = {tensor.name: numpy_helper.to_array(tensor) for tensor in rounded_graph.initializer}
    for node in rounded_graph.node:
        if node.op_type == "MatMul" and node.input[1] in original:
            weight, after = original[node.input[1]], after_all[node.input[1]]
            step = np.abs(weight).max(axis=0) / 127  # per output channel, as the quantizer's scales
            assert np.all(np.abs(after - weight) <= step / 2 + 1e-7)
            assert max(len(np.unique(column)) for column in after.T) <= 255
            assert not np.array_equal(after, weight)
            break
    else:
        raise AssertionError("no MatMul weight found")
