"""``--target cpu``: the best CPU backend installed here. OpenVINO first: with NNCF's
transformer mode it was the fastest INT8 path for ViTs on x86 CPUs measured here (ViT-Ti
7.5-8.7 ms against 12.9 ms for ONNX Runtime's int8); ONNX Runtime otherwise (ARM CPUs
without OpenVINO, or a minimal install)."""

from __future__ import annotations

from usfm_edge.contracts import Backend, Precision, Target
from usfm_edge.export.targets.base import BuildContext, Built, ExportTarget, register_target
from usfm_edge.export.targets.onnxruntime import OnnxRuntimeTarget
from usfm_edge.export.targets.openvino import OpenVinoTarget


def best_cpu_target() -> type[Target]:
    from usfm_edge.backends import available_backends

    return OpenVinoTarget if Backend.OPENVINO in available_backends() else OnnxRuntimeTarget


@register_target
class CpuTarget(ExportTarget):
    name = Target.CPU
    precisions = (Precision.FP32, Precision.INT8)
    libraries = ("openvino", "nncf", "onnxruntime", "onnx", "torch")
    levels = 2

    @classmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        built = best_cpu_target().build(precision, ctx)
        built.options = {**built.options, "chosen": built.backend}
        return built
