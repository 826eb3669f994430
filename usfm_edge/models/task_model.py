"""One task model = encoder + head, built from a ``ModelConfig``."""

from __future__ import annotations

import torch
from torch import nn

from usfm_edge.models.registry import create_head, create_model
from usfm_edge.contracts import HeadSpec, ModelConfig, Preprocess, Task

# The head a task gets when none is named: UPerNet for the foundation-size encoder, the light
# head for students and CNNs.
DEFAULT_HEADS = {Task.CLASSIFICATION: "linear", Task.ENHANCEMENT: "pixel_decoder"}


def default_head(task: Task, architecture: str) -> str:
    if task is Task.SEGMENTATION:
        return "upernet" if architecture == "usfm_vit_b16" else "light_seg"
    return DEFAULT_HEADS[task]


class TaskModel(nn.Module):
    """``forward``: (B, C, H, W) normalized image -> the task output (see ``heads``); a bare
    encoder (task ``features``) returns ``forward_features``."""

    def __init__(self, config: ModelConfig, encoder: nn.Module, head: nn.Module | None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.head = head

    @property
    def task(self) -> Task:
        return self.config.task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return self.encoder.forward_features(x)
        return self.head(self.encoder.forward_taps(x), x)


def build_task_model(config: ModelConfig) -> TaskModel:
    """Encoder + head with fresh weights, as ``config`` describes."""
    encoder = create_model(config.architecture, **config.model_args)
    head = None
    if config.head is not None:
        head = create_head(
            config.head.name,
            in_channels=list(encoder.feature_channels),
            reductions=list(encoder.feature_reductions),
            num_outputs=config.num_outputs,
            **config.head.args,
        )
    return TaskModel(config, encoder, head)


def make_config(
    architecture: str,
    task: Task | str,
    *,
    labels: list[str] | None = None,
    img_size: int | tuple[int, int] = 224,
    in_chans: int = 1,
    head: str | None = None,
    head_args: dict | None = None,
    model_args: dict | None = None,
    provenance: dict | None = None,
) -> ModelConfig:
    """A ``ModelConfig`` with the usual defaults filled in (preprocessing for ``in_chans``)."""
    task = Task(task)
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    args = {"img_size": list(size), "in_chans": in_chans, **(model_args or {})}
    head_spec = None
    if task is not Task.FEATURES:
        head_spec = HeadSpec(name=head or default_head(task, architecture), args=dict(head_args or {}))
    return ModelConfig(
        architecture=architecture,
        task=task,
        preprocess=Preprocess.for_channels(in_chans, size),
        model_args=args,
        head=head_spec,
        labels=list(labels or []),
        provenance=dict(provenance or {}),
    )
