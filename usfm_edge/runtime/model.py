"""A deployment bundle loaded for inference: the manifest's preprocessing, the chosen
artifact and the backend session that runs it. The runtime trusts only the manifest: its
schema and every artifact's sha256 are checked before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usfm_edge.errors import BundleMismatchError, UsfmEdgeError
from usfm_edge.export.manifest import preprocess_of, read_manifest, verify_hashes
from usfm_edge.preprocess import preprocess_frame
from usfm_edge.runtime.backends import available_backends, get_backend
from usfm_edge.runtime.backends.base import Session
from usfm_edge.spec import Preprocess

# ``--backend auto``: the fastest runner of an artifact first, then the portable ones.
AUTO_ORDER = ("tensorrt", "openvino", "onnxruntime")


@dataclass
class BundleModel:
    path: Path
    manifest: dict[str, Any]
    spec: Preprocess
    artifact: dict[str, Any]
    backend: str
    session: Session

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def labels(self) -> list[str]:
        return self.manifest["labels"]

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
                "artifact": self.artifact["file"], "precision": self.artifact["precision"],
                "runs_in": self.session.precision}


def choose(manifest: dict[str, Any], *, backend: str = "auto", precision: str | None = None) -> tuple[dict, str]:
    """(artifact, backend name): the bundle's own artifacts in their order (the exported one
    first, ``model.onnx`` last), the first one the wished backend can run on this machine."""
    installed = available_backends()
    wanted = [b for b in AUTO_ORDER if b in installed] if backend == "auto" else [backend]
    if backend != "auto":
        get_backend(backend)  # unknown or not installed: a clear error now
    artifacts = [a for a in manifest["artifacts"] if precision in (None, a["precision"])]
    for artifact in artifacts:
        for name in ([artifact.get("backend")] if backend == "auto" else []) + wanted:
            if name in installed and get_backend(name).can_run(artifact):
                return artifact, name
    have = ", ".join(f"{a['file']} ({a['precision']}, {a.get('backend')})" for a in manifest["artifacts"])
    raise BundleMismatchError(f"the bundle has no artifact that backend {backend}"
                        f"{f' at {precision}' if precision else ''} can run on this machine (it has: {have}); "
                        "pick another --backend/--precision or export for this target")


def load_bundle(bundle: str | Path, *, backend: str = "auto", precision: str | None = None,
                threads: int | None = None, device: str = "CPU", cache_dir: Path | None = None) -> BundleModel:
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_hashes(bundle, manifest)
    artifact, name = choose(manifest, backend=backend, precision=precision)
    session = get_backend(name).load_artifact(bundle, manifest, artifact, threads=threads, device=device,
                                              cache_dir=cache_dir)
    return BundleModel(bundle, manifest, preprocess_of(manifest), artifact, name, session)
