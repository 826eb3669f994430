"""Inference backends behind one interface, one module each; heavy imports stay inside.

    session = get_backend("openvino").load(path, precision="int8", threads=2)
    outputs = session.run(x)   # x: (B, C, H, W) float32 -> (B, ...) float32
"""

from usfm_edge.runtime.backends.base import Backend, Session, available_backends, get_backend, list_backends
from usfm_edge.runtime.backends import onnxruntime as _onnxruntime  # noqa: F401  (registers)
from usfm_edge.runtime.backends import openvino as _openvino  # noqa: F401  (registers)
from usfm_edge.runtime.backends import tensorrt as _tensorrt  # noqa: F401  (registers)
from usfm_edge.runtime.backends import torch as _torch  # noqa: F401  (registers; imports torch only in load)

__all__ = ["Backend", "Session", "available_backends", "get_backend", "list_backends"]
