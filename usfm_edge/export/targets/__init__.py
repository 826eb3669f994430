"""Export targets, one module each, and the table of valid target x precision pairs."""

from usfm_edge.export.targets.base import ExportTarget, get_target, list_targets, target_table
from usfm_edge.export.targets import onnxruntime as _onnxruntime  # noqa: F401  (registers)
from usfm_edge.export.targets import openvino as _openvino  # noqa: F401  (registers)
from usfm_edge.export.targets import jetson as _jetson  # noqa: F401  (registers)
from usfm_edge.export.targets import tensorrt as _tensorrt  # noqa: F401  (registers)
from usfm_edge.export.targets import cpu as _cpu  # noqa: F401  (registers)

__all__ = ["ExportTarget", "get_target", "list_targets", "target_table"]
