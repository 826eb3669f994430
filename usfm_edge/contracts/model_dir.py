"""The model-directory seam (train -> export): ``config.json`` with its ``Preprocess`` block.

Torch-free on purpose: export and the runtime read a model's preprocessing and labels without
importing the training stack. ``schema_version`` is bumped on any incompatible change; a reader
refuses versions it does not know. Version 2 added ``preprocess.mask_sector``; a version 1
config reads as version 2 with its default.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usfm_edge.contracts.enums import NamedValue, Task
from usfm_edge.errors import SchemaError

MODEL_DIR_SCHEMA = "usfm-edge/model-dir"
MODEL_DIR_SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# timm's IMAGENET_DEFAULT_MEAN/STD, which the official USFM fine-tuning code normalizes with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# One-channel equivalents: the channel means, so a gray frame normalized once matches the
# three-channel model fed the same gray frame replicated (see models.vit.adapt_patch_embed).
GRAY_MEAN = (sum(IMAGENET_MEAN) / 3,)
GRAY_STD = (sum(IMAGENET_STD) / 3,)


class Intensity(NamedValue):
    """How raw pixel values become [0, 1] before mean/std normalization."""

    UNIT_RANGE = "unit_range"  # divide by the dtype's maximum (255 for 8-bit, 65535 for 16-bit)
    MINMAX = "minmax"  # per-frame min-max stretch, for archives with arbitrary gain


class Resize(NamedValue):
    STRETCH = "stretch"  # to input_size, aspect not kept (the USFM fine-tuning default)
    LETTERBOX = "letterbox"  # aspect kept, padded with black (ultrasound background)


class Crop(NamedValue):
    NONE = "none"  # the network sees the whole frame
    SCAN_REGION = "scan_region"  # every stage crops to the detected B-mode region first


@dataclass(frozen=True)
class Preprocess:
    """What a frame goes through before the network. Travels with the weights.

    ``input_size`` is (height, width) in pixels; mean and std are per channel, in [0, 1] units.
    ``crop`` and ``mask_sector`` are the crop rule (``usfm_edge.contracts.prepare``): where in a
    captured screen the network looks, and whether results outside the imaging sector (the
    fan or rectangle of echoes inside the crop) are cleared.
    """

    channels: int = 1
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = GRAY_MEAN
    std: tuple[float, ...] = GRAY_STD
    intensity: Intensity = Intensity.UNIT_RANGE
    resize: Resize = Resize.STRETCH
    crop: Crop = Crop.SCAN_REGION
    mask_sector: bool = True

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise SchemaError(f"preprocess.channels is {self.channels}; use 1 (gray) or 3 (RGB)")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise SchemaError(
                f"preprocess.mean/std have {len(self.mean)}/{len(self.std)} values for "
                f"{self.channels} channel(s); give one value per channel"
            )
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise SchemaError(f"preprocess.mean {self.mean} / std {self.std} must be finite numbers")
        if any(s <= 0 for s in self.std):
            raise SchemaError(f"preprocess.std {self.std} has a non-positive value")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise SchemaError(f"preprocess.input_size {self.input_size} must be (height, width) > 0")

    @classmethod
    def for_channels(cls, channels: int, input_size: tuple[int, int] = (224, 224), **kw: Any) -> Preprocess:
        mean, std = (GRAY_MEAN, GRAY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
        return cls(channels=channels, input_size=tuple(input_size), mean=mean, std=std, **kw)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        if not isinstance(data, dict):
            raise SchemaError(f"preprocess must be an object, not {type(data).__name__}")
        data = _only_fields(cls, data, "preprocess")
        try:
            return cls(
                channels=int(data.get("channels", 1)),
                input_size=tuple(int(v) for v in data.get("input_size", (224, 224))),
                mean=tuple(float(v) for v in data.get("mean", GRAY_MEAN)),
                std=tuple(float(v) for v in data.get("std", GRAY_STD)),
                intensity=Intensity(data.get("intensity", Intensity.UNIT_RANGE)),
                resize=Resize(data.get("resize", Resize.STRETCH)),
                crop=Crop(data.get("crop", Crop.SCAN_REGION)),
                mask_sector=bool(data.get("mask_sector", True)),
            )
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"preprocess: {exc}") from exc


@dataclass
class HeadSpec:
    """A head by registry name and its constructor arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """``config.json`` of a model directory."""

    architecture: str
    task: Task
    preprocess: Preprocess
    model_args: dict[str, Any] = field(default_factory=dict)
    head: HeadSpec | None = None
    labels: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = MODEL_DIR_SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.task = Task(self.task)
        if self.task in (Task.SEGMENTATION, Task.CLASSIFICATION) and len(self.labels) < 2:
            raise SchemaError(
                f"a {self.task.value} model needs at least 2 labels (got {self.labels}); "
                "segmentation labels include the background"
            )
        if self.task is not Task.FEATURES and self.head is None:
            raise SchemaError(f"a {self.task.value} model needs a head")
        # The encoder is built from model_args, the frames prepared from preprocess: they must agree.
        size = self.model_args.get("img_size")
        if size is not None:
            size = [size, size] if isinstance(size, int) else list(size)
            if size != list(self.preprocess.input_size):
                raise SchemaError(f"model_args.img_size {size} differs from preprocess.input_size "
                                  f"{list(self.preprocess.input_size)}: the encoder could not take the frames")
        chans = self.model_args.get("in_chans")
        if chans is not None and chans != self.preprocess.channels:
            raise SchemaError(f"model_args.in_chans {chans} differs from preprocess.channels "
                              f"{self.preprocess.channels}")

    @property
    def num_outputs(self) -> int:
        """Classes for seg/cls, image channels for enhancement."""
        if self.task is Task.ENHANCEMENT:
            return self.preprocess.channels
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable({
            "schema": MODEL_DIR_SCHEMA,
            "schema_version": self.schema_version,
            "architecture": self.architecture,
            "model_args": self.model_args,
            "task": self.task,
            "head": dataclasses.asdict(self.head) if self.head else None,
            "labels": self.labels,
            "preprocess": self.preprocess.to_dict(),
            "provenance": self.provenance,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = CONFIG_FILE) -> ModelConfig:
        if not isinstance(data, dict):
            raise SchemaError(f"{source}: a model config is a JSON object, not {type(data).__name__}")
        if data.get("schema") != MODEL_DIR_SCHEMA:
            raise SchemaError(f"{source}: not a usfm-edge model config (schema {data.get('schema')!r})")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f"{source}: schema_version {version} is not supported by this usfm-edge "
                f"(reads {', '.join(map(str, READABLE_VERSIONS))}); upgrade usfm-edge or re-export the model"
            )
        for key in ("architecture", "task", "preprocess"):
            if key not in data:
                raise SchemaError(f"{source}: missing '{key}'")
        head = data.get("head")
        if head is not None and not (isinstance(head, dict) and isinstance(head.get("name"), str)
                                     and isinstance(head.get("args") or {}, dict)):
            raise SchemaError(f"{source}: head must be {{\"name\": str, \"args\": {{...}}}}, not {head!r}")
        for key, kind in (("model_args", dict), ("labels", list), ("provenance", dict)):
            if not isinstance(data.get(key) or kind(), kind):
                raise SchemaError(f"{source}: {key} must be a JSON {'object' if kind is dict else 'list'}")
        if not all(isinstance(label, str) for label in data.get("labels") or []):
            raise SchemaError(f"{source}: labels must be strings")
        task = Task.parse(data["task"], what=f"{source}: task")
        try:
            return cls(
                architecture=str(data["architecture"]),
                task=task,
                preprocess=Preprocess.from_dict(data["preprocess"]),
                model_args=dict(data.get("model_args") or {}),
                head=HeadSpec(name=head["name"], args=dict(head.get("args") or {})) if head else None,
                labels=list(data.get("labels") or []),
                provenance=dict(data.get("provenance") or {}),
            )
        except SchemaError as exc:
            raise SchemaError(f"{source}: {exc}") from None

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> ModelConfig:
        from usfm_edge.fileio import read_json

        data = read_json(path, missing=f"no such file; a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE}")
        return cls.from_dict(data, source=str(path))


def _only_fields(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {unknown}; known: {sorted(names)}")
    return data


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value
