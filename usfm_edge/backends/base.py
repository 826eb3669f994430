"""The inference-backend interface and its registry, keyed by ``contracts.Backend``."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from usfm_edge.contracts import Backend, Precision
from usfm_edge.contracts.manifest import Artifact, BundleManifest
from usfm_edge.errors import DependencyError, InputError, UsfmEdgeError

_BACKENDS: dict[Backend, type[InferenceBackend]] = {}


class Session(ABC):
    """A loaded model, ready to run."""

    precision: str  # what the backend actually computes in (OpenVINO may run bf16)

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float32 -> the model's output for the batch, float32."""

    def io_shapes(self) -> tuple[list, list] | None:
        """(input shape, output shape) as the loaded model declares them (a dynamic dimension
        as a string or -1), when the backend can tell without running it."""
        return None


class InferenceBackend(ABC):
    name: Backend
    module: str  # the package that must be importable
    formats: tuple[str, ...] = ("onnx",)  # bundle artifact formats it can run
    precisions: tuple[Precision, ...] = tuple(Precision)  # artifact precisions it runs
    devices: tuple[str, ...] = ("CPU",)  # what --device may name (upper case)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec(cls.module) is not None

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        ...

    @classmethod
    def can_run(cls, artifact: Artifact) -> bool:
        return artifact.format in cls.formats

    @classmethod
    def load_artifact(cls, bundle: Path, manifest: BundleManifest, artifact: Artifact, *,
                      threads: int | None = None, device: str = "CPU", cache_dir: Path | None = None) -> Session:
        """Load one of a bundle's (already verified) artifacts. Backends that need more than the
        file (an engine built on the device, the source model) override this."""
        return cls.load(bundle / artifact.file, precision=artifact.precision, threads=threads, device=device)

    @classmethod
    def check_device(cls, device: str) -> str:
        """``device`` in upper case if this backend knows it; ``InputError`` listing the known
        ones otherwise (never a silent fall back to another device)."""
        name = str(device).upper()
        if name not in cls.devices:
            raise InputError(f"--device {device!r}: backend {cls.name} runs on {', '.join(cls.devices)}")
        return name


def register_backend(cls: type[InferenceBackend]) -> type[InferenceBackend]:
    _BACKENDS[Backend(cls.name)] = cls
    return cls


def list_backends() -> list[str]:
    return sorted(b.value for b in _BACKENDS)


def available_backends() -> list[str]:
    return [name for name in list_backends() if _BACKENDS[Backend(name)].available()]


def get_backend(name: str | Backend) -> type[InferenceBackend]:
    try:
        backend = _BACKENDS[Backend(name)]
    except ValueError:
        raise UsfmEdgeError(f"unknown backend {name!r}; known: {', '.join(list_backends())}") from None
    if not backend.available():
        raise DependencyError(f"backend {name} needs the '{backend.module}' package; see 'usfm-edge doctor'")
    return backend

