"""Run configuration: typed dataclasses, merged defaults -> recipe YAML -> command line, and
the resolved result written into the run folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from usfm_edge.errors import SchemaError
from usfm_edge.train.precision import UNSCALED, check_precision

T = TypeVar("T")


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
    max_steps: int | None = None  # stop after this many steps in this session (state saved; --resume)
    previews: int = 4

    def __post_init__(self) -> None:
        if self.task not in ("seg", "cls", "enhance"):
            raise SchemaError(f"task {self.task!r}; use seg, cls or enhance")
        if not 0 < self.label_fraction <= 1:
            raise SchemaError(f"label_fraction {self.label_fraction}; give a fraction in (0, 1]")
        if self.crop not in ("scan_region", "none"):
            raise SchemaError(f"crop {self.crop!r}; use scan_region or none")
        if self.resize not in ("stretch", "letterbox"):
            raise SchemaError(f"resize {self.resize!r}; use stretch or letterbox")
        if self.img_size % 16:
            raise SchemaError(f"img_size {self.img_size} must be a multiple of 16 (the patch size)")
        check_precision(self.precision, UNSCALED)


def load_config(cls: type[T], recipe: str | Path | None = None, **overrides: Any) -> T:
    """Defaults of ``cls``, then the recipe YAML, then ``overrides`` (None means "not given")."""
    values: dict[str, Any] = {}
    if recipe:
        path = Path(recipe)
        if not path.is_file():
            raise SchemaError(f"{path}: recipe not found")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SchemaError(f"{path}: a recipe is a mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SchemaError(f"unknown option(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
