"""Fine-tuning's run configuration: a typed dataclass that checks its own values, so a recipe
file is held to the same rules as the command line. Merging (defaults -> recipe -> command
line, the saved config on resume) is the engine's (``train.engine.load_config``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from usfm_edge.errors import SchemaError
from usfm_edge.train.precision import UNSCALED, check_precision


def require(checks: dict[str, tuple[Any, bool, str]]) -> None:
    """``{option: (value, ok, what it must be)}``: SchemaError naming the first bad one."""
    for name, (value, ok, expected) in checks.items():
        if not ok:
            raise SchemaError(f"{name.replace('_', '-')} {value!r}: must be {expected}")


def positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def finite(value: Any, low: float = -math.inf, high: float = math.inf, *, open_low: bool = False) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return (value > low if open_low else value >= low) and value <= high


@dataclass
class FinetuneConfig:
    task: str = "seg"  # seg | cls | enhance
    data: str = ""
    out: str = "runs/finetune"
    model: str = "usfm_vit_t16"
    init: str | None = None  # model directory, .pth/.safetensors encoder weights, or None (scratch)
    head: str | None = None  # default: upernet for usfm_vit_b16, light_seg otherwise
    model_args: dict | None = None  # extra encoder arguments, e.g. {depth: 2} for a tiny test model
    img_size: int = 224
    in_chans: int = 1
    resize: str = "stretch"
    crop: str = "scan_region"  # scan_region: every stage crops to the B-mode image found in the frame; none
    mask_sector: bool = True  # clear results outside the imaging sector (fan or rectangle)
    label_fraction: float = 1.0
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.75  # ViT: lr x decay^(depth - layer), for seg and enhance too
    warmup_epochs: float = 1.0
    drop_path: float = 0.1
    label_smoothing: float = 0.1
    balanced_sampling: bool = False
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    augment: bool = True
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16; evaluation stays fp32
    seed: int = 0
    log_every: int = 5
    eval_every: int | None = None  # validate when this many steps have passed since the last time (None: every epoch)
    max_steps: int | None = None  # stop after this many steps in this session (state saved; --resume)
    previews: int = 4

    def __post_init__(self) -> None:
        if self.task not in ("seg", "cls", "enhance"):
            raise SchemaError(f"task {self.task!r}; use seg, cls or enhance")
        require({
            "label_fraction": (self.label_fraction, finite(self.label_fraction, 0, 1, open_low=True), "in (0, 1]"),
            "epochs": (self.epochs, positive(self.epochs), "an integer >= 1"),
            "batch_size": (self.batch_size, positive(self.batch_size), "an integer >= 1"),
            "img_size": (self.img_size, positive(self.img_size), "an integer >= 16"),
            "in_chans": (self.in_chans, self.in_chans in (1, 3), "1 (gray) or 3 (RGB)"),
            "lr": (self.lr, finite(self.lr, 0, open_low=True), "a finite number > 0"),
            "min_lr": (self.min_lr, finite(self.min_lr, 0), "a finite number >= 0"),
            "weight_decay": (self.weight_decay, finite(self.weight_decay, 0), "a finite number >= 0"),
            "layer_decay": (self.layer_decay, finite(self.layer_decay, 0, 1, open_low=True), "in (0, 1]"),
            "warmup_epochs": (self.warmup_epochs, finite(self.warmup_epochs, 0), "a finite number >= 0"),
            "drop_path": (self.drop_path, finite(self.drop_path, 0, 1), "in [0, 1]"),
            "label_smoothing": (self.label_smoothing, finite(self.label_smoothing, 0, 1), "in [0, 1]"),
            "dice_weight": (self.dice_weight, finite(self.dice_weight, 0), "a finite number >= 0"),
            "ce_weight": (self.ce_weight, finite(self.ce_weight, 0), "a finite number >= 0"),
            "num_workers": (self.num_workers, isinstance(self.num_workers, int) and self.num_workers >= 0,
                            "an integer >= 0"),
            "log_every": (self.log_every, positive(self.log_every), "an integer >= 1"),
            "eval_every": (self.eval_every, self.eval_every is None or positive(self.eval_every), "an integer >= 1"),
            "max_steps": (self.max_steps, self.max_steps is None or positive(self.max_steps), "an integer >= 1"),
            "previews": (self.previews, isinstance(self.previews, int) and self.previews >= 0, "an integer >= 0"),
            "device": (self.device, self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:"),
                       "auto, cpu, cuda or cuda:N"),
            "model_args": (self.model_args, self.model_args is None or isinstance(self.model_args, dict),
                           "a mapping (JSON object)"),
        })
        if self.crop not in ("scan_region", "none"):
            raise SchemaError(f"crop {self.crop!r}; use scan_region or none")
        if self.resize not in ("stretch", "letterbox"):
            raise SchemaError(f"resize {self.resize!r}; use stretch or letterbox")
        if self.img_size % 16:
            raise SchemaError(f"img_size {self.img_size} must be a multiple of 16 (the patch size)")
        check_precision(self.precision, UNSCALED)
