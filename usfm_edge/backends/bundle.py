"""A deployment bundle loaded for inference: the verified manifest, the chosen artifact and the
backend session that runs it. Everything a bundle loads is checked first (schema, agreement of
its fields, sha256 of every file), and the loaded model's declared input and output shapes are
checked against the manifest's ``io`` before the first frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usfm_edge.backends.base import Session, available_backends, get_backend
from usfm_edge.contracts import Backend, Preprocess
from usfm_edge.contracts.manifest import Artifact, BundleManifest, read_verified
from usfm_edge.contracts.prepare import preprocess_frame
from usfm_edge.errors import BundleMismatchError, UsfmEdgeError

# ``--backend auto``: the fastest runner of an artifact first, then the portable ones.
AUTO_ORDER = (Backend.TENSORRT, Backend.OPENVINO, Backend.ONNXRUNTIME)


@dataclass
class BundleModel:
    path: Path
    manifest: BundleManifest
    artifact: Artifact
    backend: str
    session: Session

    @property
    def spec(self) -> Preprocess:
        return self.manifest.preprocess

    @property
    def task(self) -> str:
        return str(self.manifest.task)

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    def preprocess(self, crops: list[np.ndarray]) -> np.ndarray:
        """Crops of a frame (each (H, W[, 3])) -> one (B, C, h, w) batch."""
        return np.concatenate([preprocess_frame(c, self.spec) for c in crops])

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(x)
        if not np.isfinite(out).all():
            raise UsfmEdgeError(f"{self.backend} returned NaN or infinite values for this frame")
        return out

    def describe(self) -> dict[str, Any]:
        return {"bundle": str(self.path), "task": self.task, "backend": self.backend,
                "artifact": self.artifact.file, "precision": str(self.artifact.precision),
                "runs_in": self.session.precision}


def choose(manifest: BundleManifest, *, backend: str = "auto", precision: str | None = None) -> tuple[Artifact, str]:
    """(artifact, backend name): the bundle's own artifacts in their order (the exported one
    first, ``model.onnx`` last), the first one the wished backend can run on this machine."""
    installed = available_backends()
    wanted = [str(b) for b in AUTO_ORDER if b in installed] if backend == "auto" else [str(backend)]
    if backend != "auto":
        get_backend(backend)  # unknown or not installed: a clear error now
    artifacts = [a for a in manifest.artifacts if precision in (None, a.precision)]
    for artifact in artifacts:
        for name in ([str(artifact.backend)] if backend == "auto" else []) + wanted:
            if name in installed and get_backend(name).can_run(artifact):
                return artifact, name
    have = ", ".join(f"{a.file} ({a.precision}, {a.backend})" for a in manifest.artifacts)
    raise BundleMismatchError(f"the bundle has no artifact that backend {backend}"
                              f"{f' at {precision}' if precision else ''} can run on this machine (it has: {have}); "
                              "pick another --backend/--precision or export for this target")


def load_bundle(bundle: str | Path, *, backend: str = "auto", precision: str | None = None,
                threads: int | None = None, device: str = "CPU", cache_dir: Path | None = None) -> BundleModel:
    bundle = Path(bundle)
    manifest = read_verified(bundle)
    artifact, name = choose(manifest, backend=backend, precision=precision)
    session = get_backend(name).load_artifact(bundle, manifest, artifact, threads=threads, device=device,
                                              cache_dir=cache_dir)
    check_io(session, manifest, bundle / artifact.file)
    return BundleModel(bundle, manifest, artifact, name, session)


def check_io(session: Session, manifest: BundleManifest, where: Path) -> None:
    """The loaded model takes and gives what the manifest says (dynamic dimensions aside)."""
    shapes = session.io_shapes()
    if shapes is None:
        return
    for (declared, actual), what in zip(zip((manifest.io.input.shape, manifest.io.output.shape), shapes),
                                        ("input", "output")):
        fixed = [(d, a) for d, a in zip(declared, actual) if isinstance(d, int) and isinstance(a, int) and a > 0]
        if len(declared) != len(actual) or any(d != a for d, a in fixed):
            raise BundleMismatchError(f"{where}: the model's {what} is {list(actual)} but the manifest says "
                                      f"{list(declared)}; the manifest does not belong to this model, re-export it")
