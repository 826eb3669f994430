"""Encoders, heads and the model directory (needs the ``train`` extra: torch).

    create_model("usfm_vit_b16", checkpoint="USFM_latest.pth", img_size=512, in_chans=1)
    list_models(), list_heads()
    build_task_model(make_config("usfm_vit_t16", "seg", labels=["background", "lesion"]))
    save_model_dir(model, "runs/seg"); load_model_dir("runs/seg")
"""

from usfm_edge.models import heads as _heads  # noqa: F401  (registers the heads)
from usfm_edge.models import zoo as _zoo  # noqa: F401  (registers the encoders)
from usfm_edge.models.checkpoint import LoadReport, load_encoder_checkpoint, read_checkpoint
from usfm_edge.models.model_dir import load_model_dir, save_model_dir
from usfm_edge.models.registry import (
    create_head,
    create_model,
    is_model,
    list_heads,
    list_models,
    register_head,
    register_model,
)
from usfm_edge.models.task_model import TaskModel, build_task_model, make_config
from usfm_edge.models.vit import UsfmViT

__all__ = [
    "LoadReport",
    "TaskModel",
    "UsfmViT",
    "build_task_model",
    "create_head",
    "create_model",
    "is_model",
    "list_heads",
    "list_models",
    "load_encoder_checkpoint",
    "load_model_dir",
    "make_config",
    "read_checkpoint",
    "register_head",
    "register_model",
    "save_model_dir",
]
