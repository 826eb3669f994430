"""The names every stage agrees on: tasks, precisions, export targets and inference backends.

String-valued, so they read and write as plain JSON and compare equal to their values
(``Precision.INT8 == "int8"``); ``str()`` and f-strings give the value, on every Python this
project supports. The registries (export targets, backends) are checked against these enums by
a test, and the CLI builds its choices from them, so a help text cannot name a stale list.
"""

from __future__ import annotations

import enum


class NamedValue(str, enum.Enum):
    """A str enum that formats as its value (``f"{Precision.INT8}"`` is ``int8``)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def parse(cls, value: str | NamedValue, *, what: str | None = None):
        """The member named by ``value``; ``SchemaError`` listing the valid values otherwise."""
        try:
            return cls(value)
        except ValueError:
            from usfm_edge.errors import SchemaError

            raise SchemaError(f"{what or cls.__name__.lower()} {value!r} is not one of {', '.join(cls.values())}") \
                from None


class Task(NamedValue):
    SEGMENTATION = "seg"
    CLASSIFICATION = "cls"
    ENHANCEMENT = "enhance"
    FEATURES = "features"  # a bare encoder: pretraining output or a converted release


class Precision(NamedValue):
    """What an artifact stores its weights and activations in."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Target(NamedValue):
    """Where an export is meant to run (``usfm-edge export --target``)."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    JETSON = "jetson"      # TensorRT-ready ONNX; the engine is built on the device
    TENSORRT = "tensorrt"  # the engine built here (x86 GPU box with TensorRT)
    CPU = "cpu"            # the best CPU backend installed: OpenVINO, else ONNX Runtime
    PORTABLE = "portable"  # the bundle's fp32 model.onnx (not an export choice)


class Backend(NamedValue):
    """What runs an artifact (``usfm-edge run --backend``)."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"
    TORCH = "torch"  # the fp32 source model directory, the baseline every artifact is measured against


class ArtifactFormat(NamedValue):
    ONNX = "onnx"
    OPENVINO_IR = "openvino_ir"


# Export choices: every target but the bundle's own portable fallback.
EXPORT_TARGETS = tuple(t for t in Target if t is not Target.PORTABLE)
