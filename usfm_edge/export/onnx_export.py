"""torch -> ONNX (fp32), the portable fallback and parity reference in every bundle."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

INPUT, OUTPUT = "image", "output"


def export_onnx(model: torch.nn.Module, path: str | Path, *, input_shape: tuple[int, int, int, int]) -> Path:
    """Export with the dynamo exporter, a dynamic batch dimension, weights inside the file
    (no ``.onnx.data`` to lose on the way to a cart)."""
    model = model.eval()
    # A batch of 2 in the example: torch.export specialises a size-1 dimension to a constant.
    example = torch.zeros((max(2, input_shape[0]), *input_shape[1:]))
    batch = torch.export.Dim("batch", min=1, max=256)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_shapes={"x": {0: batch}})
    return Path(path)
