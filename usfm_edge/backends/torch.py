"""PyTorch eager, fp32: the baseline that every exported artifact is measured against.

``path`` is a *model directory* (``config.json`` + ``model.safetensors``), not an artifact:
torch runs the weights the export started from. A bundle folder (or any file inside one) is
accepted too and stands for the model directory it was exported from, its manifest's
``source.model_dir`` (as written, else relative to the bundle); when that directory is not on
this machine the load fails saying to pass the model directory instead.

torch is imported inside ``load`` only, so registering this backend keeps the runtime
torch-free; ``available()`` is true where torch is installed. ``threads`` calls
``torch.set_num_threads``, which is process-wide: one torch session per process. ``device``
``CPU`` runs on the CPU, ``GPU`` (or ``cuda``) on the first CUDA device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.backends.base import InferenceBackend, Session, register_backend
from usfm_edge.contracts import CONFIG_FILE, Backend, Precision
from usfm_edge.contracts.manifest import MANIFEST, Artifact, BundleManifest
from usfm_edge.errors import UsfmEdgeError


def model_dir_for(path: str | Path) -> Path:
    """The model directory ``path`` names: itself, or the source of the bundle it is (or is in)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    bundle = path if path.is_dir() else path.parent
    manifest_path = bundle / MANIFEST
    if not manifest_path.is_file():
        raise UsfmEdgeError(f"{path}: neither a model directory ({CONFIG_FILE}) nor a bundle ({MANIFEST}); "
                            "the torch backend loads a model directory")
    source = BundleManifest.read(bundle).source.get("model_dir")
    if not source:
        raise UsfmEdgeError(f"{manifest_path}: names no source model directory; the torch backend needs one, "
                            "pass the model directory instead of the bundle")
    for candidate in (Path(source), bundle / source):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise UsfmEdgeError(f"{bundle}: its source model directory {source} is not on this machine; the torch backend "
                        "runs the fp32 model directory, pass its path instead of the bundle")


class TorchSession(Session):
    def __init__(self, model, device) -> None:
        self.model, self.device, self.precision = model, device, "fp32"

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
        return out.float().cpu().numpy()


@register_backend
class TorchBackend(InferenceBackend):
    name = Backend.TORCH
    module = "torch"
    formats = ()
    precisions = (Precision.FP32,)
    devices = ("CPU", "GPU", "CUDA")
    loads_model_dir = True  # runs the source model directory, not an artifact file

    @classmethod
    def can_run(cls, artifact: Artifact) -> bool:
        """In a bundle, torch stands in for the fp32 ONNX: it runs the model it was exported from."""
        return artifact.format == "onnx" and artifact.precision == "fp32"

    @classmethod
    def load_artifact(cls, bundle: Path, manifest: BundleManifest, artifact: Artifact, *,
                      threads: int | None = None, device: str = "CPU", cache_dir: Path | None = None) -> Session:
        return cls.load(bundle, precision="fp32", threads=threads, device=device)

    @classmethod
    def load(cls, path: str | Path, *, precision: str = "fp32", threads: int | None = None,
             device: str = "CPU") -> Session:
        if precision != "fp32":
            raise UsfmEdgeError(f"the torch backend runs the model directory in fp32 eager only, not {precision}; "
                                "export a bundle for other precisions")
        gpu = cls.check_device(device) != "CPU"
        model_dir = model_dir_for(path)
        import torch

        from usfm_edge.models import load_model_dir

        if gpu and not torch.cuda.is_available():
            raise UsfmEdgeError("--device GPU: torch sees no CUDA device here; use --device CPU")
        if threads:
            torch.set_num_threads(threads)
        target = torch.device("cuda" if gpu else "cpu")
        return TorchSession(load_model_dir(model_dir).to(target), target)
