"""ONNX Runtime target: fp32 is the bundle's model.onnx; int8 is a QDQ model from ONNX
Runtime's static quantizer with transformer-safe settings.

Why these settings: with its defaults (every op quantized) ONNX Runtime's quantizer left a
ViT-Tiny at cosine 0.86 against fp32 on this machine. Quantizing only MatMul, Gemm and Conv
keeps LayerNorm, softmax and the residual adds in fp32 (cosine 0.999). Weights: symmetric
int8 per output channel; activations: unsigned 8-bit with a zero point, the fast U8S8 path of
ONNX Runtime's CPU kernels. (TensorRT needs symmetric activations instead: the jetson target
writes its own Q/DQ file.) Fallback level 1 also keeps the first and last quantizable layers
(patch embedding, classifier) in fp32."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from usfm_edge.contracts import Backend, Precision, Target
from usfm_edge.export.onnx_export import INPUT
from usfm_edge.export.targets.base import BuildContext, Built, ExportTarget, register_target
from usfm_edge.offline import import_quietly

OPS = ["MatMul", "Gemm", "Conv"]


class _Frames:
    """ONNX Runtime's CalibrationDataReader over preprocessed frames."""

    def __init__(self, frames: np.ndarray, name: str) -> None:
        self.frames, self.name, self.i = frames, name, 0

    def get_next(self):
        if self.i >= len(self.frames):
            return None
        self.i += 1
        return {self.name: self.frames[self.i - 1:self.i]}

    def rewind(self) -> None:
        self.i = 0


def quantizable_nodes(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in OPS]


def quantize_qdq(ctx: BuildContext, out: Path, *, for_tensorrt: bool) -> list[str]:
    """ONNX Runtime's static QDQ quantizer on MatMul/Gemm/Conv, symmetric per-channel int8
    weights, MinMax calibration on ``ctx.calibration``. ``for_tensorrt``: symmetric int8
    activations (zero points 0) and float biases, as TensorRT's explicit quantization needs;
    otherwise uint8 activations, ONNX Runtime's fast U8S8 CPU path. From fallback level 1 the
    first and last quantizable nodes stay in fp32; returns their names."""
    import_quietly("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if for_tensorrt:
        activations = QuantType.QInt8
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    else:
        activations, extra = QuantType.QUInt8, {"WeightSymmetric": True}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(ctx.onnx_fp32), str(prepared), skip_symbolic_shape=True)
        nodes = quantizable_nodes(prepared)
        exclude = [nodes[0], nodes[-1]] if ctx.level >= 1 and len(nodes) > 2 else []
        quantize_static(
            str(prepared), str(out), _Frames(ctx.calibration, INPUT), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=OPS, per_channel=True, activation_type=activations, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude, extra_options=extra,
        )
    return exclude


@register_target
class OnnxRuntimeTarget(ExportTarget):
    name = Target.ONNXRUNTIME
    precisions = (Precision.FP32, Precision.INT8)  # fp16 is not a CPU ONNX Runtime precision
    libraries = ("onnxruntime", "onnx", "torch")
    levels = 2

    @classmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        if precision == "fp32":
            return Built(file=ctx.onnx_fp32.name, format="onnx", backend=Backend.ONNXRUNTIME)
        out = ctx.out / "model.int8.onnx"
        exclude = quantize_qdq(ctx, out, for_tensorrt=False)
        return Built(file=out.name, format="onnx", backend=Backend.ONNXRUNTIME,
                     options={"ops": OPS, "per_channel": True, "activations": "uint8 asymmetric",
                              "weights": "int8 symmetric", "calibration": "minmax", "fp32_nodes": exclude})
