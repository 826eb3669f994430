"""Inference backends, one module each, behind one interface; heavy imports stay inside.

Export (its gate and ``bundle verify``), the benchmarks and the runtime all run models through
this package, so none of them imports another. Only the torch backend reaches torch, inside
``load``.

    session = get_backend("openvino").load(path, precision="int8", threads=2)
    outputs = session.run(x)   # x: (B, C, H, W) float32 -> (B, ...) float32
    model = load_bundle("bundles/seg")          # verified manifest + the best artifact here
"""

from usfm_edge.backends.base import InferenceBackend, Session, available_backends, get_backend, list_backends
from usfm_edge.backends import onnxruntime as _onnxruntime  # noqa: F401  (registers)
from usfm_edge.backends import openvino as _openvino  # noqa: F401  (registers)
from usfm_edge.backends import tensorrt as _tensorrt  # noqa: F401  (registers)
from usfm_edge.backends import torch as _torch  # noqa: F401  (registers; imports torch only in load)

__all__ = ["InferenceBackend", "Session", "available_backends", "get_backend", "list_backends"]
