"""Training state for resume: written atomically, read without running any pickle.

The release artefact (a model directory) is separate; this file holds what a resumed run
needs to continue the same curve: model, optimiser, scheduler, epoch/step, best metric and the
torch RNG state. Everything in it is tensors and plain Python values, so
``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from usfm_edge.errors import CheckpointError, WriteError
from usfm_edge.fileio import why_write_failed


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary name in the same folder, fsync, then rename over ``path``:
    a crash mid-write leaves the previous state intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        tmp.unlink(missing_ok=True)
        raise WriteError(f"{path}: the training state could not be written ({why_write_failed(path.parent, exc)}); "
                         "free space or write elsewhere, then --resume from the last state saved") from None


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from; start without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"{path}: unreadable training state ({exc}); resume from an earlier run") from exc
