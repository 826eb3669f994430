"""ONNX Runtime: CPU, and CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.backends.base import InferenceBackend, Session, register_backend
from usfm_edge.contracts import Backend
from usfm_edge.errors import InputError, UsfmEdgeError
from usfm_edge.offline import import_quietly

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def first_line(exc: BaseException) -> str:
    """A library's exception as one line (they carry stack dumps and blank lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


class OrtSession(Session):
    def __init__(self, session, precision: str) -> None:
        self.session, self.precision = session, precision
        self.input_name = session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        except Exception as exc:  # ORT's own exception types; one line for the caller
            raise UsfmEdgeError(f"onnxruntime could not run a batch of shape {tuple(x.shape)}: "
                                f"{first_line(exc)}") from None

    def io_shapes(self) -> tuple[list, list]:
        return list(self.session.get_inputs()[0].shape), list(self.session.get_outputs()[0].shape)


@register_backend
class OnnxRuntimeBackend(InferenceBackend):
    name = Backend.ONNXRUNTIME
    module = "onnxruntime"
    devices = ("CPU", "GPU")

    @classmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        ort = import_quietly("onnxruntime")
        device = cls.check_device(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = []
        if device == "GPU":
            providers = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
            if not providers:
                raise InputError("--device GPU: this onnxruntime has no CUDA or TensorRT provider "
                                 "(pip install onnxruntime-gpu on a CUDA machine), or use --device CPU")
        providers.append("CPUExecutionProvider")
        try:
            return OrtSession(ort.InferenceSession(str(path), options, providers=providers), precision)
        except Exception as exc:  # a truncated or foreign file
            raise InputError(f"{path}: onnxruntime cannot load it ({first_line(exc)}); re-export the bundle") \
                from None
