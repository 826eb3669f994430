"""OpenVINO: IR (or ONNX) on CPU, GPU or NPU. On CPUs with bf16 support OpenVINO computes in
bf16 unless told otherwise; fp32 artifacts are run with INFERENCE_PRECISION_HINT=f32 so the
precision in the manifest is the precision that runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.backends.base import InferenceBackend, Session, register_backend
from usfm_edge.backends.onnxruntime import first_line
from usfm_edge.contracts import Backend
from usfm_edge.errors import InputError, UsfmEdgeError
from usfm_edge.offline import import_quietly

HINTS = {"fp32": "f32", "fp16": "f16", "int8": None}


class OvSession(Session):
    def __init__(self, compiled, precision: str) -> None:
        self.compiled, self.precision = compiled, precision
        self.request = compiled.create_infer_request()

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        except Exception as exc:  # OpenVINO raises RuntimeError with a C++ trace in the text
            raise UsfmEdgeError(f"openvino could not run a batch of shape {tuple(x.shape)}: "
                                f"{first_line(exc)}") from None
        return np.array(self.request.get_output_tensor(0).data, copy=True)

    def io_shapes(self) -> tuple[list, list]:
        def dims(port) -> list:
            return [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]

        return dims(self.compiled.input(0)), dims(self.compiled.output(0))


@register_backend
class OpenVinoBackend(InferenceBackend):
    name = Backend.OPENVINO
    module = "openvino"
    formats = ("openvino_ir", "onnx")
    devices = ("CPU", "GPU", "NPU", "AUTO")

    @classmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        ov = import_quietly("openvino")
        device = cls.check_device(device)
        core = ov.Core()
        present = [d.split(".")[0] for d in core.available_devices]
        if device != "AUTO" and device not in present:
            raise InputError(f"--device {device}: OpenVINO finds no such device here (it has "
                             f"{', '.join(present) or 'none'}); use --device CPU")
        config: dict = {"CACHE_DIR": ""}  # no cache files under $HOME
        hint = HINTS.get(str(precision))
        if hint and device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = core.compile_model(core.read_model(str(path)), device, config)
        except Exception as exc:  # truncated .bin, foreign IR version
            raise InputError(f"{path}: OpenVINO cannot load it ({first_line(exc)}); re-export the bundle") from None
        if str(precision) == "int8" or device != "CPU":
            return OvSession(compiled, str(precision))
        # A Type object: its name (f32, bf16, f16) says what the CPU plugin will compute in.
        actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        return OvSession(compiled, {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(actual, actual))
