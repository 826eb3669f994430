"""What to measure: the target (a bundle or a model directory) and one cell per backend x
precision, each either runnable (an artifact, or a model directory for torch) or skipped with
the reason.

A bundle: a cell runs the bundle's artifact exported for that backend at that precision; an
fp32 cell of a backend that can run ONNX falls back to the bundle's portable ``model.onnx``
(so OpenVINO fp32 is measured on any bundle). Backends that load a model directory (torch) use
the bundle's ``source.model_dir`` when it is on this machine.

A model directory: the variants the cells need are exported first with ``export_bundle`` into
``work/<backend>_<precision>/`` (one bundle each, the same gate as ``usfm-edge export``; int8
is calibrated on ``calib``). A variant already there is reused when its manifest names the
same weights (sha256) and, for int8, the same calibration folder; delete the folder to rebuild.
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usfm_edge.backends import InferenceBackend, get_backend, list_backends
from usfm_edge.contracts import CONFIG_FILE, Backend, ModelConfig, Precision, Preprocess, Target
from usfm_edge.contracts.manifest import MANIFEST, Artifact, BundleManifest, read_verified
from usfm_edge.errors import InputError, UsfmEdgeError

PRECISIONS = tuple(Precision.values())
# Which export target makes the artifact a backend runs (bench of a model directory).
EXPORT_FOR = {Backend.ONNXRUNTIME: Target.ONNXRUNTIME, Backend.OPENVINO: Target.OPENVINO,
              Backend.TENSORRT: Target.TENSORRT}
# The parity reference: the fp32 torch model when a model directory is at hand, else the
# bundle's fp32 model.onnx on ONNX Runtime.
REFERENCE = ("torch", "fp32")
PORTABLE_REFERENCE = ("onnxruntime", "fp32", "model.onnx")


class Status(str, enum.Enum):
    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(eq=False)  # cells are compared by identity
class Cell:
    backend: str
    precision: str
    bundle: Path | None = None  # with ``artifact``: a file of this bundle
    artifact: str | None = None
    model_dir: Path | None = None  # for backends that load a model directory
    status: Status | None = None  # None: planned, not run yet
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def runnable(self) -> bool:
        return self.status is None

    @property
    def source(self) -> str | None:
        """What runs: the artifact's path or the model directory."""
        if self.model_dir is not None:
            return str(self.model_dir)
        return str(self.bundle / self.artifact) if self.bundle is not None and self.artifact else None

    def skip(self, reason: str) -> Cell:
        self.status, self.reason = Status.SKIPPED, reason
        return self

    def fail(self, reason: str) -> Cell:
        self.status, self.reason = Status.FAILED, reason
        return self


@dataclass
class BenchTarget:
    path: Path
    kind: str  # "bundle" | "model_dir"
    task: str
    labels: list[str]
    spec: Preprocess
    model_dir: Path | None  # the fp32 model directory, when on this machine
    manifest: BundleManifest | None = None  # a bundle's

    @property
    def num_classes(self) -> int:
        return max(2, len(self.labels))


def inspect_target(path: str | Path) -> BenchTarget:
    path = Path(path)
    if (path / MANIFEST).is_file():
        manifest = read_verified(path)
        return BenchTarget(path, "bundle", str(manifest.task), list(manifest.labels), manifest.preprocess,
                           _source_model_dir(path), manifest)
    if (path / CONFIG_FILE).is_file():
        config = ModelConfig.read(path / CONFIG_FILE)
        return BenchTarget(path, "model_dir", str(config.task), list(config.labels), config.preprocess, path)
    raise InputError(f"{path}: neither a deployment bundle ({MANIFEST}) nor a model directory ({CONFIG_FILE}); "
                     "give a folder written by 'usfm-edge export' or 'usfm-edge finetune'")


def _source_model_dir(bundle: Path) -> Path | None:
    from usfm_edge.backends.torch import model_dir_for

    try:
        return model_dir_for(bundle)
    except UsfmEdgeError:
        return None


def check_names(backends: list[str], precisions: list[str]) -> None:
    """Unknown names are the user's typo, an error; known but unusable ones become skipped cells."""
    unknown = [b for b in backends if b not in list_backends()]
    if unknown:
        raise InputError(f"--backends: unknown {', '.join(unknown)}; known: {', '.join(list_backends())}")
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise InputError(f"--precisions: unknown {', '.join(bad)}; use {', '.join(PRECISIONS)}")
    if not backends or not precisions:
        raise InputError("give at least one backend and one precision")


def loads_model_dir(backend: type[InferenceBackend]) -> bool:
    return bool(getattr(backend, "loads_model_dir", False))


def bundle_artifact(manifest: BundleManifest, backend: type[InferenceBackend], precision: str) -> Artifact | None:
    """The artifact exported for ``backend`` at ``precision``; for fp32, else the portable
    fp32 ONNX when the backend can run it."""
    for artifact in manifest.artifacts:
        if artifact.backend == backend.name and artifact.precision == precision:
            return artifact
    if precision == "fp32":
        for artifact in manifest.artifacts:
            if artifact.precision == "fp32" and artifact.format == "onnx" and backend.can_run(artifact):
                return artifact
    return None


def _usable(name: str, precision: str) -> tuple[type[InferenceBackend] | None, str | None]:
    """(backend class, None) or (None, why this cell cannot run here)."""
    try:
        backend = get_backend(name)
    except UsfmEdgeError as exc:  # known but not installed (TensorRT without a GPU box)
        return None, str(exc)
    if precision not in backend.precisions:
        return None, f"the {name} backend runs {', '.join(map(str, backend.precisions))} only"
    return backend, None


def _model_dir_cell(cell: Cell, model_dir: Path | None, why_missing: str) -> Cell:
    if model_dir is None:
        return cell.skip(why_missing)
    cell.model_dir = model_dir
    return cell


def _triage(backends: list[str], precisions: list[str], model_dir: Path | None,
            why_missing: str) -> list[tuple[Cell, type[InferenceBackend] | None]]:
    """Every backend x precision cell in order, with the backend that still needs an artifact
    for it, or None when the cell is already settled (skipped here, or a backend that runs
    the model directory)."""
    triaged: list[tuple[Cell, type[InferenceBackend] | None]] = []
    for name in backends:
        for precision in precisions:
            cell = Cell(name, precision)
            backend, reason = _usable(name, precision)
            if backend is None:
                triaged.append((cell.skip(reason), None))
            elif loads_model_dir(backend):
                triaged.append((_model_dir_cell(cell, model_dir, why_missing), None))
            else:
                triaged.append((cell, backend))
    return triaged


def plan_bundle(target: BenchTarget, backends: list[str], precisions: list[str]) -> list[Cell]:
    cells = []
    have = ", ".join(f"{a.file} ({a.backend}, {a.precision})" for a in target.manifest.artifacts)
    source = target.manifest.source.get("model_dir")
    for cell, backend in _triage(backends, precisions, target.model_dir, f"the bundle's source model directory "
                                 f"{source} is not on this machine; give the model directory as TARGET"):
        if backend is None:
            cells.append(cell)
            continue
        artifact = bundle_artifact(target.manifest, backend, cell.precision)
        if artifact is None:
            cells.append(cell.skip(f"the bundle has no {cell.backend} {cell.precision} artifact (it has: {have}); "
                                   f"export one or give the model directory as TARGET"))
            continue
        cell.bundle, cell.artifact = target.path, artifact.file
        cells.append(cell)
    return cells


def plan_model_dir(target: BenchTarget, backends: list[str], precisions: list[str], *, work: Path,
                   calib: Path | None, val: Path | None, calib_limit: int, threads: int | None,
                   progress: Callable[[str], None]) -> list[Cell]:
    from usfm_edge.export.targets import get_target

    cells: list[Cell] = []
    exports: list[Cell] = []
    for cell, backend in _triage(backends, precisions, target.path, ""):
        if backend is None:
            cells.append(cell)
            continue
        try:
            get_target(EXPORT_FOR[Backend(cell.backend)], cell.precision)
        except (KeyError, UsfmEdgeError) as exc:
            cells.append(cell.skip(str(exc) if isinstance(exc, UsfmEdgeError)
                                   else f"no export target makes {cell.backend} artifacts"))
            continue
        cells.append(cell)
        exports.append(cell)
    if calib is None and any(c.precision == "int8" for c in exports):
        raise InputError(f"int8 cells quantize {target.path} and need --calib DIR (a few hundred frames like those the "
                         "model will see); pass --calib, or leave int8 out of --precisions")
    weights = ModelConfig.read(target.path / CONFIG_FILE).provenance.get("weights_sha256")
    for cell in exports:
        out = work / f"{cell.backend}_{cell.precision}"
        cell_calib = calib if cell.precision == "int8" else None
        try:
            if not _cached(out, weights, cell_calib):
                from usfm_edge.export.exporter import export_bundle

                progress(f"exporting {cell.backend} {cell.precision} -> {out}")
                with quiet_vendor_output():
                    export_bundle(target.path, target=EXPORT_FOR[Backend(cell.backend)], precision=cell.precision,
                                  out=out, calib=cell_calib, val=val, calib_limit=calib_limit, threads=threads)
            manifest = read_verified(out)
        except UsfmEdgeError as exc:
            cell.fail(f"export failed: {exc}")
            continue
        artifact = bundle_artifact(manifest, get_backend(cell.backend), cell.precision)
        if artifact is None:  # the export target's artifact runs on another backend (a gate-only runner)
            cell.skip(f"the {cell.backend} {cell.precision} export has no artifact the {cell.backend} backend runs")
            continue
        cell.bundle, cell.artifact = out, artifact.file
    return cells


def _cached(out: Path, weights: str | None, calib: Path | None) -> bool:
    if not (out / MANIFEST).is_file() or weights is None:
        return False
    try:
        manifest = BundleManifest.read(out)
    except UsfmEdgeError:
        return False
    same_calib = calib is None or manifest.calibration.source == str(calib)
    return manifest.source.get("weights_sha256") == weights and same_calib


@contextlib.contextmanager
def quiet_vendor_output() -> Iterator[None]:
    """NNCF draws progress bars and logs INFO lines on stdout while it calibrates; in the
    middle of bench's own progress lines and table they are clutter. Swallowed here, for the
    export only; errors still raise and warnings still log."""
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        nncf_log.setLevel(level)
