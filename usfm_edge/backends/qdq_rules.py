"""Static check of a Q/DQ ONNX against TensorRT's explicit-quantization rules, for the
machines where TensorRT itself cannot run (TensorRT builds the same checks into its parser
and refuses or silently falls back on violations).

Rules: int8 only (no int32 quantized biases: TensorRT fuses float biases itself); zero
points are int8 zeros (symmetric); activation scales are per tensor; weight scales are
per output channel on the output axis (Conv: 0; MatMul's second input (K, N): 1;
Gemm: 0 with transB, else 1); scales positive and finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QDQ = ("QuantizeLinear", "DequantizeLinear")


def _output_axis(consumer, input_index: int) -> int | None:
    if consumer.op_type == "Conv" and input_index == 1:
        return 0
    if consumer.op_type == "MatMul" and input_index == 1:
        return 1
    if consumer.op_type == "Gemm" and input_index == 1:
        trans_b = next((a.i for a in consumer.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return None


def check_tensorrt_qdq(path: str | Path) -> list[str]:
    """Violations (empty when the model follows the rules)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[tuple[object, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    problems = []
    qdq = [n for n in graph.node if n.op_type in QDQ]
    if not qdq:
        return ["no QuantizeLinear/DequantizeLinear nodes: not an explicitly quantized model"]
    for node in qdq:
        label = f"{node.op_type} {node.name or node.output[0]}"
        scale = inits.get(node.input[1])
        zero = inits.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None:
            problems.append(f"{label}: scale is not a constant")
            continue
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            problems.append(f"{label}: scales must be positive and finite")
        if zero is not None and zero.dtype != np.int8:
            problems.append(f"{label}: zero point is {zero.dtype}; TensorRT takes int8 only")
        elif zero is not None and np.any(zero != 0):
            problems.append(f"{label}: zero point is not 0 (TensorRT needs symmetric quantization)")
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        is_weight = node.op_type == "DequantizeLinear" and node.input[0] in inits
        if not is_weight and scale.size != 1:
            problems.append(f"{label}: activation scale has {scale.size} values; TensorRT needs one per tensor")
        if is_weight and scale.size > 1:
            for consumer, index in consumers.get(node.output[0], []):
                expected = _output_axis(consumer, index)
                if expected is not None and axis % inits[node.input[0]].ndim != expected:
                    problems.append(f"{label}: per-channel axis {axis}, but {consumer.op_type} needs its output axis {expected}")
    return problems
