"""Import timm on a CPU-only torch when the installed torchvision is a CUDA build.

Why: timm imports torchvision (``timm/layers/create_norm.py`` -> ``torchvision.ops.misc``) in
every release from 0.9 to 1.0.31, and the only torchvision published for torch 2.13.0 on the
package registry is a CUDA build. Its compiled ops library cannot load without the CUDA
libraries; torchvision then still registers fake kernels for ``torchvision::nms``/``qnms``
and fails with ``RuntimeError: operator torchvision::nms does not exist``, taking
``import timm`` down with it.

What: only when that library cannot load, define the two operator schemas (no kernels), so
torchvision's Python side imports. timm's models, layers and transforms then work (usfm-edge
uses nothing else from torchvision); ``torchvision.ops.nms`` and ``torchvision.io`` stay
unusable, which usfm-edge never calls. With a working torchvision (a CUDA box with the
matching CUDA torch, or a CPU build) nothing is changed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from usfm_edge.errors import DependencyError

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # the torch.library.Library must stay referenced or its definitions vanish
shim_active = False


def _ops_library_loads() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # not installed: nothing to repair, the import error speaks for itself
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    for lib in candidates:
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError):
            continue
    return not candidates


def prepare_torchvision() -> None:
    """Make ``import torchvision`` work on CPU torch; a no-op where it already works."""
    global _library, shim_active
    if "torchvision" in sys.modules or _library is not None:
        return
    if _ops_library_loads():
        return
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)
    shim_active = True


def import_timm() -> ModuleType:
    """``import timm``, through the shim above when needed."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    try:
        prepare_torchvision()
        return importlib.import_module("timm")
    except ImportError as exc:
        raise DependencyError(
            f"timm is needed for this model ({exc}); install the training extra: "
            "pip install -c constraints.txt -e '.[train]'"
        ) from exc
