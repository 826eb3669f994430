"""The target interface and its registry. An invalid target x precision pair is an error
that lists the valid ones; nothing is silently changed."""

from __future__ import annotations

import importlib.metadata as md
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usfm_edge.contracts import Backend, Precision, Target
from usfm_edge.errors import UsfmEdgeError

_TARGETS: dict[Target, type[ExportTarget]] = {}


@dataclass
class BuildContext:
    onnx_fp32: Path  # the bundle's model.onnx
    out: Path  # the bundle folder
    calibration: np.ndarray | None  # (N, C, H, W) preprocessed frames, for int8
    level: int = 0  # 0: the default quantization; higher keeps more layers in higher precision
    options: dict = field(default_factory=dict)


@dataclass
class Built:
    file: str  # relative to the bundle
    format: str
    backend: Backend  # what runs it when deployed
    check_backend: Backend | None = None  # what runs it here for the gate, when ``backend`` cannot
    extra_files: list[str] = field(default_factory=list)  # other files it loads (OpenVINO's .bin)
    options: dict = field(default_factory=dict)


class ExportTarget(ABC):
    name: Target
    precisions: tuple[Precision, ...]
    libraries: tuple[str, ...]  # recorded in built_with
    levels: int = 1  # how many quantization fallback levels the target has

    @classmethod
    @abstractmethod
    def build(cls, precision: str, ctx: BuildContext) -> Built:
        ...

    @classmethod
    def built_with(cls) -> dict[str, str]:
        versions = {}
        for lib in cls.libraries:
            try:
                versions[lib] = md.version(lib)
            except md.PackageNotFoundError:
                continue
        return versions


def register_target(cls: type[ExportTarget]) -> type[ExportTarget]:
    _TARGETS[Target(cls.name)] = cls
    return cls


def list_targets() -> list[str]:
    return sorted(t.value for t in _TARGETS)


def target_table() -> dict[str, tuple[str, ...]]:
    return {name: tuple(p.value for p in _TARGETS[Target(name)].precisions) for name in list_targets()}


def get_target(name: str | Target, precision: str | Precision) -> type[ExportTarget]:
    try:
        target = _TARGETS[Target(name)]
    except (ValueError, KeyError):
        raise UsfmEdgeError(f"unknown target {name!r}; known: {', '.join(list_targets())}") from None
    if precision not in target.precisions:
        valid = "; ".join(f"{t}: {', '.join(p)}" for t, p in target_table().items())
        raise UsfmEdgeError(f"--target {name} does not build {precision}; valid pairs: {valid}")
    return target
