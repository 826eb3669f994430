"""OpenVINO target: IR (.xml + .bin) for CPU, GPU and NPU. int8 is NNCF post-training
quantization in its transformer mode (keeps LayerNorm, softmax and residual paths in higher
precision); fallback level 1 also leaves the first and last MatMul/Conv in float."""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from usfm_edge.contracts import Backend, Precision, Target
from usfm_edge.export.targets.base import BuildContext, Built, ExportTarget, register_target
from usfm_edge.offline import import_quietly


@register_target
class OpenVinoTarget(ExportTarget):
    name = Target.OPENVINO
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    libraries = ("openvino", "nncf", "onnx", "torch")
    levels = 2

    @classmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        ov = import_quietly("openvino")
        model = ov.convert_model(str(ctx.onnx_fp32))
        options: dict = {}
        if precision == "int8":
            model, options = cls._quantize(model, ctx)
        xml = ctx.out / f"openvino_{precision}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=precision == "fp16")
        return Built(file=xml.name, format="openvino_ir", backend=Backend.OPENVINO,
                     extra_files=[xml.with_suffix(".bin").name], options=options)

    @classmethod
    def _quantize(cls, model, ctx: BuildContext):
        nncf = import_quietly("nncf")
        frames = [f[None] for f in np.asarray(ctx.calibration)]
        ignored = None
        names: list[str] = []
        if ctx.level >= 1:
            ops = [op for op in model.get_ordered_ops() if op.get_type_name() in ("MatMul", "Convolution")]
            names = [ops[0].get_friendly_name(), ops[-1].get_friendly_name()] if len(ops) > 2 else []
            ignored = nncf.IgnoredScope(names=names)
        # NNCF draws its own progress bars (rich, on stdout) and logs at INFO: the export command
        # has its own output, so both are kept out of it.
        nncf.set_log_level(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(
                model, nncf.Dataset(frames), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(frames),
                **({"ignored_scope": ignored} if ignored else {}),
            )
        return quantized, {"quantizer": "nncf", "model_type": "transformer", "fp32_ops": names}
