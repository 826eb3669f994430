"""ONNX Runtime: CPU, and CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.offline import import_quietly
from usfm_edge.runtime.backends.base import Backend, Session, register_backend

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


class OrtSession(Session):
    def __init__(self, session, precision: str) -> None:
        self.session, self.precision = session, precision
        self.input_name = session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


@register_backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    module = "onnxruntime"
    suffixes = (".onnx",)

    @classmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        ort = import_quietly("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        providers = [p for p in GPU_PROVIDERS if p in available] if device.upper() == "GPU" else []
        providers.append("CPUExecutionProvider")
        return OrtSession(ort.InferenceSession(str(path), options, providers=providers), precision)
