"""TensorRT target: an engine built here, when TensorRT and an NVIDIA GPU are present (an
x86 GPU box). Without them it says so and points to ``--target jetson``, which builds on
the device instead. TensorRT is imported only inside ``build``."""

from __future__ import annotations

from usfm_edge.contracts import Precision, Target
from usfm_edge.errors import DependencyError
from usfm_edge.export.targets.base import BuildContext, Built, ExportTarget, register_target
from usfm_edge.export.targets.jetson import JetsonTarget


@register_target
class TensorRtTarget(ExportTarget):
    name = Target.TENSORRT
    precisions = (Precision.FP16, Precision.INT8)
    libraries = ("tensorrt", "onnxruntime", "onnx", "torch")
    levels = 2

    @classmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            raise DependencyError("--target tensorrt builds the engine here and needs TensorRT and an NVIDIA GPU; "
                                  "use --target jetson to ship the ONNX and build on the device") from exc
        from usfm_edge.backends.tensorrt_engine import build_engine
        from usfm_edge.contracts.manifest import Artifact
        from usfm_edge.fileio import sha256_file

        built = JetsonTarget.build(precision, ctx)
        artifact = Artifact(format=built.format, precision=precision, target=cls.name, backend=built.backend,
                            file=built.file, sha256=sha256_file(ctx.out / built.file), options=built.options)
        engine = build_engine(ctx.out, artifact, cache_dir=ctx.out / "engines")
        built.extra_files = [str(engine.relative_to(ctx.out))]
        return built
