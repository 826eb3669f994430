"""NVIDIA Jetson target: the bundle carries a TensorRT-ready ONNX and the pinned trtexec
command; the engine is built on the device on first start (``usfm_edge.export.jetson``).

int8: a Q/DQ ONNX from ONNX Runtime's quantizer with TensorRT's rules (symmetric int8
activations and weights, zero points 0, per-channel weights on the output axis, float
biases), on MatMul/Gemm/Conv only, checked statically here; the same file runs in ONNX
Runtime for the gate. fp16: the fp32 ONNX built with --fp16."""

from __future__ import annotations

import tempfile
from pathlib import Path

from usfm_edge.errors import UsfmEdgeError
from usfm_edge.export.jetson import trtexec_command
from usfm_edge.export.qdq_rules import check_tensorrt_qdq
from usfm_edge.export.targets.base import BuildContext, Built, Target, register_target
from usfm_edge.export.targets.onnxruntime import OPS, _Frames, quantizable_nodes
from usfm_edge.offline import import_quietly


@register_target
class JetsonTarget(Target):
    name = "jetson"
    precisions = ("fp16", "int8")
    libraries = ("onnxruntime", "onnx", "torch")
    levels = 2

    @classmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        ort = import_quietly("onnxruntime")
        name = ort.InferenceSession(str(ctx.onnx_fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        shape = list(ctx.calibration.shape[1:]) if ctx.calibration is not None else None
        if precision == "fp16":
            file = ctx.onnx_fp32.name
        else:
            file = cls._qdq(ctx, name).name
            problems = check_tensorrt_qdq(ctx.out / file)
            if problems:
                raise UsfmEdgeError(f"{file} breaks TensorRT's Q/DQ rules: {problems[0]} ({len(problems)} in all)")
        shape = [1, *shape] if shape else ctx.options["input_shape"]
        command = trtexec_command("{onnx}", "{engine}", precision=precision, input_name=name, shape=shape)
        return Built(file=file, format="onnx", backend="tensorrt", check_backend="onnxruntime",
                     options={"trtexec": command, "engine_cache": "keyed by GPU, compute capability, TensorRT "
                              "version, ONNX sha256 and build flags", "dla": "add --useDLACore=N --allowGPUFallback "
                              "on Orin AGX/NX"})

    @classmethod
    def _qdq(cls, ctx: BuildContext, input_name: str) -> Path:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        out = ctx.out / "model.trt.int8.onnx"
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(ctx.onnx_fp32), str(prepared), skip_symbolic_shape=True)
            nodes = quantizable_nodes(prepared)
            exclude = [nodes[0], nodes[-1]] if ctx.level >= 1 and len(nodes) > 2 else []
            quantize_static(
                str(prepared), str(out), _Frames(ctx.calibration, input_name), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=OPS, per_channel=True, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
            )
        return out
