"""The backend interface and its registry."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from usfm_edge.errors import DependencyError, UsfmEdgeError

_BACKENDS: dict[str, type[Backend]] = {}


class Session(ABC):
    """A loaded model, ready to run."""

    precision: str  # what the backend actually computes in (OpenVINO may run bf16)

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float32 -> the model's output for the batch, float32."""


class Backend(ABC):
    name: str
    module: str  # the package that must be importable
    suffixes: tuple[str, ...]  # artifact files it loads
    formats: tuple[str, ...] = ("onnx",)  # bundle artifact formats it can run

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec(cls.module) is not None

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        ...

    @classmethod
    def can_run(cls, artifact: dict) -> bool:
        return artifact["format"] in cls.formats

    @classmethod
    def load_artifact(cls, bundle: Path, manifest: dict, artifact: dict, *, threads: int | None = None,
                      device: str = "CPU", cache_dir: Path | None = None) -> Session:
        """Load one of a bundle's artifacts. Backends that need more than the file (an engine
        built on the device, the source model) override this."""
        return cls.load(bundle / artifact["file"], precision=artifact["precision"], threads=threads, device=device)


def register_backend(cls: type[Backend]) -> type[Backend]:
    _BACKENDS[cls.name] = cls
    return cls


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


def available_backends() -> list[str]:
    return [name for name in list_backends() if _BACKENDS[name].available()]


def get_backend(name: str) -> type[Backend]:
    if name not in _BACKENDS:
        raise UsfmEdgeError(f"unknown backend {name!r}; known: {', '.join(list_backends())}")
    backend = _BACKENDS[name]
    if not backend.available():
        raise DependencyError(f"backend {name} needs the '{backend.module}' package; see 'usfm-edge doctor'")
    return backend
