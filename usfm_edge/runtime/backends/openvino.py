"""OpenVINO: IR (or ONNX) on CPU, GPU or NPU. On CPUs with bf16 support OpenVINO computes in
bf16 unless told otherwise; fp32 artifacts are run with INFERENCE_PRECISION_HINT=f32 so the
precision in the manifest is the precision that runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.offline import import_quietly
from usfm_edge.runtime.backends.base import Backend, Session, register_backend

HINTS = {"fp32": "f32", "fp16": "f16", "int8": None}


class OvSession(Session):
    def __init__(self, compiled, precision: str) -> None:
        self.compiled, self.precision = compiled, precision
        self.request = compiled.create_infer_request()

    def run(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(self.request.get_output_tensor(0).data, copy=True)


@register_backend
class OpenVinoBackend(Backend):
    name = "openvino"
    module = "openvino"
    suffixes = (".xml", ".onnx")
    formats = ("openvino_ir", "onnx")

    @classmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        ov = import_quietly("openvino")
        core = ov.Core()
        config: dict = {"CACHE_DIR": ""}  # no cache files under $HOME
        hint = HINTS.get(precision)
        if hint and device.upper() == "CPU":
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(core.read_model(str(path)), device.upper(), config)
        if precision == "int8" or device.upper() != "CPU":
            return OvSession(compiled, precision)
        # A Type object: its name (f32, bf16, f16) says what the CPU plugin will compute in.
        actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        return OvSession(compiled, {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(actual, actual))
