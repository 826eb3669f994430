"""NVIDIA Jetson target: the bundle carries a TensorRT-ready ONNX and the pinned trtexec
command; the engine is built on the device on first start (``usfm_edge.backends.tensorrt_engine``).

int8: a Q/DQ ONNX from ONNX Runtime's quantizer with TensorRT's rules (symmetric int8
activations and weights, zero points 0, per-channel weights on the output axis, float
biases), on MatMul/Gemm/Conv only, checked statically here; the same file runs in ONNX
Runtime for the gate. fp16: the fp32 ONNX built with --fp16."""

from __future__ import annotations

from usfm_edge.backends.qdq_rules import check_tensorrt_qdq
from usfm_edge.backends.tensorrt_engine import trtexec_command
from usfm_edge.contracts import Backend, Precision, Target
from usfm_edge.errors import UsfmEdgeError
from usfm_edge.export.onnx_export import INPUT
from usfm_edge.export.targets.base import BuildContext, Built, ExportTarget, register_target
from usfm_edge.export.targets.onnxruntime import quantize_qdq


@register_target
class JetsonTarget(ExportTarget):
    name = Target.JETSON
    precisions = (Precision.FP16, Precision.INT8)
    libraries = ("onnxruntime", "onnx", "torch")
    levels = 2

    @classmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        if precision == "fp16":
            file = ctx.onnx_fp32.name
        else:
            file = "model.trt.int8.onnx"
            quantize_qdq(ctx, ctx.out / file, for_tensorrt=True)
            problems = check_tensorrt_qdq(ctx.out / file)
            if problems:
                raise UsfmEdgeError(f"{file} breaks TensorRT's Q/DQ rules: {problems[0]} ({len(problems)} in all)")
        command = trtexec_command("{onnx}", "{engine}", precision=precision, input_name=INPUT,
                                  shape=ctx.options["input_shape"])
        return Built(file=file, format="onnx", backend=Backend.TENSORRT, check_backend=Backend.ONNXRUNTIME,
                     options={"trtexec": command, "engine_cache": "keyed by GPU, compute capability, TensorRT "
                              "version, ONNX sha256 and build flags", "dla": "add --useDLACore=N --allowGPUFallback "
                              "on Orin AGX/NX"})
