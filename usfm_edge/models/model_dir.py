"""The model directory: the seam between training and export.

    MODEL_DIR/config.json         schema, architecture, model args, task, head, labels,
                                  preprocessing, provenance (usfm_edge.contracts.ModelConfig)
    MODEL_DIR/model.safetensors   weights only; nothing in it can execute

Both files are written to temporary names and renamed into place, so an interrupted save
never leaves a half-written model behind.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

import torch

from usfm_edge._version import __version__
from usfm_edge.errors import CheckpointError, SchemaError, WriteError
from usfm_edge.fileio import sha256_file, why_write_failed
from usfm_edge.models.checkpoint import load_state_strict
from usfm_edge.models.task_model import TaskModel, build_task_model
from usfm_edge.contracts import CONFIG_FILE, WEIGHTS_FILE, ModelConfig


def save_model_dir(model: TaskModel, path: str | Path) -> Path:
    """Write ``model`` (its config and weights) to the directory ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.provenance.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    config.provenance["usfm_edge_version"] = __version__
    config.provenance.setdefault("torch_version", torch.__version__)
    config.provenance.setdefault("host", platform.node())
    # safetensors refuses shared or non-contiguous storage; clone makes each tensor its own.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    weights_tmp = path / f".{WEIGHTS_FILE}.tmp"
    config_tmp = path / f".{CONFIG_FILE}.tmp"
    try:
        save_file(state, str(weights_tmp), metadata={"format": "pt", "architecture": config.architecture})
        config.provenance["weights_sha256"] = sha256_file(weights_tmp)
        config.write(config_tmp)
        os.replace(weights_tmp, path / WEIGHTS_FILE)
        os.replace(config_tmp, path / CONFIG_FILE)
    except Exception as exc:  # safetensors reports a full disk in its own exception type
        for tmp in (weights_tmp, config_tmp):
            tmp.unlink(missing_ok=True)
        raise WriteError(f"{path}: the model directory could not be written ({why_write_failed(path, exc)}); free "
                         "space or write elsewhere") from None
    return path


def load_model_dir(path: str | Path, *, verify: bool = True) -> TaskModel:
    """Build the model a directory describes and load its weights strictly (eval mode)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise SchemaError(f"{path}: not a directory; a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    config = ModelConfig.read(path / CONFIG_FILE)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing; the model directory is incomplete, save it again")
    expected = config.provenance.get("weights_sha256")
    if verify and expected and sha256_file(weights) != expected:
        raise CheckpointError(
            f"{weights}: sha256 differs from config.json's provenance.weights_sha256; "
            "the weights were changed or corrupted, restore or re-save the model directory"
        )
    model = build_task_model(config)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not readable ({exc}); re-save the model directory") from exc
    load_state_strict(model, state, str(weights))
    return model.eval()


