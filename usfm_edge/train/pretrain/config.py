"""Pretraining run configuration (defaults -> recipe YAML -> command line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from usfm_edge.errors import SchemaError
from usfm_edge.train.precision import check_precision


@dataclass
class PretrainConfig:
    objective: str = "sfmim"  # sfmim | mae | feature
    data: list[str] = field(default_factory=list)
    out: str = "runs/pretrain"
    model: str = "usfm_vit_b16"
    model_args: dict | None = None
    init: str | None = None  # model directory or encoder weights (USFM_latest.pth) to continue from
    img_size: int = 224
    in_chans: int = 1
    steps: int = 1000  # optimiser steps
    batch_size: int = 64  # per process
    accum_steps: int = 1
    lr: float = 1.5e-4  # per 256 images; scaled by the global batch
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_steps: int | None = None  # default: 5 % of the steps
    drop_path: float = 0.0
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    compile: bool = False
    ema: float | None = None  # EMA decay of the encoder weights (e.g. 0.999); the EMA is what is saved
    organ_alpha: float = 0.5  # sampling weight n_organ^-alpha: 1 balanced, 0 natural
    frame_stride: int = 1
    dedup_threshold: float = 2.0
    mask_patch: int = 32
    mask_ratio: float = 0.6
    objective_args: dict = field(default_factory=dict)  # per objective, see recipes/pretrain/*.yaml
    teacher: str | None = None  # feature objective: a model directory
    num_workers: int = 4
    log_every: int = 5
    save_every: int = 100
    preview_every: int = 100
    seed: int = 0
    device: str = "auto"
    record_samples: bool = False  # write each rank's item indices per step to RUN/samples/
    max_steps: int | None = None  # stop after this many steps in this session (state saved)

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        check_precision(self.precision)
        if self.objective == "feature" and not self.teacher:
            raise SchemaError("the feature objective needs --teacher MODEL_DIR (a frozen model to regress)")
        if self.accum_steps < 1 or self.steps < 1 or self.batch_size < 1:
            raise SchemaError("steps, batch_size and accum_steps must be >= 1")
