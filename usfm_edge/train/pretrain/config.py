"""Pretraining run configuration (defaults -> recipe YAML -> command line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from usfm_edge.errors import SchemaError
from usfm_edge.train.config import finite, positive, require
from usfm_edge.train.precision import check_precision

# The registered objectives (train.pretrain.objectives); named here so a config can be checked
# without building one. tests/test_contracts.py keeps the two lists equal.
OBJECTIVES = ("feature", "mae", "sfmim")
LR_SCALING = ("sqrt", "linear")


def peak_lr(lr: float, global_batch: int, scaling: str) -> float:
    """The learning rate a run trains at: ``lr`` is given per 256 images. Square-root scaling
    is AdamW's rule and keeps a laptop's batch of 8 learning (its loss fell 35 % in the
    README's 50-step quickstart on real frames, 6 % under the linear rule with MAE's 1.5e-4);
    at a global batch of 4096 both give MAE's 2.4e-3 with the defaults of each."""
    ratio = global_batch / 256
    return lr * (ratio ** 0.5 if scaling == "sqrt" else ratio)


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
    lr: float = 6e-4  # per 256 images, scaled to the global batch B by lr_scaling
    lr_scaling: str = "sqrt"  # sqrt: lr * sqrt(B / 256) (AdamW; small batches still learn); linear: lr * B / 256
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
    num_workers: int | None = None  # None: one per core this process may use, less one, at most 4
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
        if self.objective not in OBJECTIVES:
            raise SchemaError(f"objective {self.objective!r}; use {', '.join(OBJECTIVES)}")
        if self.objective == "feature" and not self.teacher:
            raise SchemaError("the feature objective needs --teacher MODEL_DIR (a frozen model to regress)")
        if self.objective in ("mae", "sfmim") and not self.model.startswith("usfm_vit"):
            raise SchemaError(f"--objective {self.objective} pretrains a usfm_vit encoder (it needs its patch tokens); "
                              f"{self.model} is not one: use usfm_vit_t16/s16/b16, or --objective feature")
        require({
            "lr_scaling": (self.lr_scaling, self.lr_scaling in LR_SCALING, f"one of {', '.join(LR_SCALING)}"),
            "steps": (self.steps, positive(self.steps), "an integer >= 1"),
            "batch_size": (self.batch_size, positive(self.batch_size), "an integer >= 1"),
            "accum_steps": (self.accum_steps, positive(self.accum_steps), "an integer >= 1"),
            "img_size": (self.img_size, positive(self.img_size) and self.img_size % 16 == 0,
                         "a multiple of 16 (the patch size)"),
            "in_chans": (self.in_chans, self.in_chans in (1, 3), "1 (gray) or 3 (RGB)"),
            "lr": (self.lr, finite(self.lr, 0, open_low=True), "a finite number > 0"),
            "min_lr": (self.min_lr, finite(self.min_lr, 0), "a finite number >= 0"),
            "weight_decay": (self.weight_decay, finite(self.weight_decay, 0), "a finite number >= 0"),
            "warmup_steps": (self.warmup_steps, self.warmup_steps is None or (isinstance(self.warmup_steps, int)
                                                                            and self.warmup_steps >= 0),
                             "an integer >= 0"),
            "drop_path": (self.drop_path, finite(self.drop_path, 0, 1), "in [0, 1]"),
            "ema": (self.ema, self.ema is None or finite(self.ema, 0, 1, open_low=True) and self.ema < 1,
                    "a decay in (0, 1), e.g. 0.999"),
            "organ_alpha": (self.organ_alpha, finite(self.organ_alpha, 0, 1), "in [0, 1] (1: organs balanced)"),
            "frame_stride": (self.frame_stride, positive(self.frame_stride), "an integer >= 1"),
            "dedup_threshold": (self.dedup_threshold, finite(self.dedup_threshold, 0), "a finite number >= 0"),
            "mask_patch": (self.mask_patch, positive(self.mask_patch) and self.img_size % self.mask_patch == 0,
                           f"an integer that divides img_size {self.img_size}"),
            "mask_ratio": (self.mask_ratio, finite(self.mask_ratio, 0, 1, open_low=True) and self.mask_ratio < 1,
                           "in (0, 1)"),
            "num_workers": (self.num_workers, self.num_workers is None or isinstance(self.num_workers, int)
                            and self.num_workers >= 0, "an integer >= 0"),
            "log_every": (self.log_every, positive(self.log_every), "an integer >= 1"),
            "save_every": (self.save_every, positive(self.save_every), "an integer >= 1"),
            "preview_every": (self.preview_every, isinstance(self.preview_every, int) and self.preview_every >= 0,
                              "an integer >= 0 (0: none)"),
            "max_steps": (self.max_steps, self.max_steps is None or positive(self.max_steps), "an integer >= 1"),
            "objective_args": (self.objective_args, isinstance(self.objective_args, dict), "a mapping"),
            "model_args": (self.model_args, self.model_args is None or isinstance(self.model_args, dict),
                           "a mapping (JSON object)"),
        })
