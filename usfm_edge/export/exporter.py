"""``export_bundle``: model directory -> verified deployment bundle.

    BUNDLE/model.onnx            fp32, always: the portable fallback and parity reference
    BUNDLE/<artifact>            the target's file(s)
    BUNDLE/golden_input.npy      a preprocessed frame and the fp32 model's output for it
    BUNDLE/golden_output.npy
    BUNDLE/manifest.json         schema, preprocessing, io, artifacts and every file's sha256,
                                 validation against the source, calibration

Nothing is written to ``--out`` until the bundle is complete and its gate has passed: it is
built in a hidden folder beside ``--out`` and swapped in at the end, so a failed export leaves
the bundle already there as it was. ``--out`` must be a new folder or an existing bundle.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from usfm_edge._version import __version__
from usfm_edge.backends import get_backend
from usfm_edge.contracts import ArtifactFormat, Backend, Precision, Target, Task
from usfm_edge.contracts.manifest import (
    MANIFEST, Artifact, BundleManifest, Calibration, FileRef, Golden, IoSpec, TensorSpec, Validation,
)
from usfm_edge.errors import InputError, UsfmEdgeError
from usfm_edge.export.calibration import calibration_frames
from usfm_edge.export.onnx_export import INPUT, OUTPUT, export_onnx
from usfm_edge.export.targets import get_target
from usfm_edge.export.targets.base import BuildContext
from usfm_edge.metrics import validation
from usfm_edge.models import load_model_dir

DEFAULT_MAX_DROP = {Task.SEGMENTATION: 0.01, Task.CLASSIFICATION: 0.01, Task.ENHANCEMENT: 0.5}
GOLDEN_INPUT, GOLDEN_OUTPUT = "golden_input.npy", "golden_output.npy"


class ExportGateError(UsfmEdgeError):
    """The artifact lost more accuracy than --max-drop allows at every fallback level."""


def export_bundle(model_dir: str | Path, *, target: str, precision: str, out: str | Path, calib: str | Path | None = None,
                  val: str | Path | None = None, max_drop: float | None = None, calib_limit: int = 300,
                  threads: int | None = None) -> Path:
    target_cls = get_target(target, precision)  # refuse an invalid pair before any work
    precision = Precision(precision)
    if precision is Precision.INT8 and calib is None:
        raise InputError("--precision int8 needs --calib DIR (a few hundred frames like those the model will see)")
    out = Path(out)
    check_out(out)
    model = load_model_dir(model_dir)
    config, spec = model.config, model.config.preprocess
    if val is not None and config.task not in DEFAULT_MAX_DROP:
        # an encoder's features have no task metric; the gate is output parity alone
        raise InputError(f"{model_dir} is a '{config.task}' model with no task metric to gate on; "
                         "export it without --val (parity against the fp32 source is still measured)")
    num_classes = max(2, len(config.labels))
    # Everything that can fail on the user's input is read before anything is written.
    calibration, calib_hash = calibration_frames(calib, spec, limit=calib_limit) if calib is not None else (None, None)
    valset = validation.load_val(val, config.task, spec, num_classes=num_classes) if val is not None else None
    limit = DEFAULT_MAX_DROP.get(config.task) if max_drop is None else max_drop

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a bundle is shared like any folder
    try:
        manifest = _build(model, staging, target_cls, precision, calibration, calib_hash, calib, valset, limit,
                          threads, model_dir)
        manifest.write(staging)
        _swap(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check_out(out: Path) -> None:
    """``--out`` is a new folder or a bundle to replace; anything else the user made is refused."""
    if out.is_file():
        raise InputError(f"--out {out}: is a file; give a folder for the bundle")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(f"--out {out}: a folder with files that is not a bundle (no {MANIFEST}); give a new "
                         "folder, or an existing bundle to replace")


def _build(model, staging: Path, target_cls, precision: Precision, calibration, calib_hash, calib, valset, limit,
           threads, model_dir) -> BundleManifest:
    config, spec = model.config, model.config.preprocess
    num_classes = max(2, len(config.labels))
    onnx_path = export_onnx(model, staging / "model.onnx", input_shape=(1, spec.channels, *spec.input_size))
    golden_in = (valset.inputs[:1] if valset is not None else calibration[:1] if calibration is not None
                 else np.random.default_rng(0).standard_normal((1, spec.channels, *spec.input_size)).astype(np.float32))
    with torch.no_grad():
        torch_run = lambda x: model(torch.from_numpy(x)).numpy()  # noqa: E731
        golden_out = torch_run(golden_in)
        reference = validation.run_batched(torch_run, valset.inputs) if valset is not None else golden_out
    np.save(staging / GOLDEN_INPUT, golden_in)
    np.save(staging / GOLDEN_OUTPUT, golden_out)
    probe = valset.inputs if valset is not None else golden_in

    source_score, source_cases = (validation.score(valset, reference, spec, num_classes=num_classes)
                                  if valset is not None else (None, []))
    attempts = []
    for level in range(target_cls.levels if precision is Precision.INT8 else 1):
        built = target_cls.build(precision, BuildContext(onnx_path, staging, calibration, level=level,
                                                         options={"input_shape": [1, spec.channels, *spec.input_size]}))
        session = get_backend(built.check_backend or built.backend).load(staging / built.file, precision=precision,
                                                                        threads=threads)
        outputs = validation.run_batched(session.run, probe)
        result = {"level": level, "parity": validation.parity(reference, outputs), "runs_in": session.precision}
        if valset is not None:
            value, cases = validation.score(valset, outputs, spec, num_classes=num_classes)
            result.update(value=value, drop=source_score - value, per_case=cases)
        attempts.append(result)
        if valset is None or result["drop"] <= limit:
            break
    else:
        last = attempts[-1]
        raise ExportGateError(
            f"{target_cls.name} {precision} loses {last['drop']:.4f} {validation.metric_name(config.task)} against "
            f"the fp32 source ({source_score:.4f} -> {last['value']:.4f}) after {len(attempts)} fallback levels, above "
            f"--max-drop {limit}; try more or more typical --calib frames, --precision fp16/fp32, or a larger --max-drop"
        )
    accepted = attempts[-1]
    artifact = Artifact(format=ArtifactFormat(built.format), precision=precision, target=target_cls.name,
                        backend=Backend(built.backend), file=built.file, sha256=FileRef.of(staging, built.file).sha256,
                        files=[FileRef.of(staging, f) for f in built.extra_files], built_with=target_cls.built_with(),
                        options={**built.options, "fallback_level": accepted["level"]})
    artifacts = [artifact]
    if (built.file, built.backend) != (onnx_path.name, Backend.ONNXRUNTIME):  # the portable fallback, always listed
        artifacts.append(Artifact(format=ArtifactFormat.ONNX, precision=Precision.FP32, target=Target.PORTABLE,
                                  backend=Backend.ONNXRUNTIME, file=onnx_path.name,
                                  sha256=FileRef.of(staging, onnx_path.name).sha256,
                                  built_with=get_target(Target.ONNXRUNTIME, Precision.FP32).built_with()))
    return BundleManifest(
        task=config.task, labels=list(config.labels), preprocess=spec,
        io=IoSpec(TensorSpec(INPUT, ("batch", spec.channels, *spec.input_size)),
                  TensorSpec(OUTPUT, ("batch", *golden_out.shape[1:]))),
        artifacts=artifacts,
        golden=Golden(FileRef.of(staging, GOLDEN_INPUT), FileRef.of(staging, GOLDEN_OUTPUT)),
        validation=Validation(
            metric=validation.metric_name(config.task) if valset is not None else None, frames=len(probe),
            source=source_score, max_drop=limit if valset is not None else None,
            prepare=validation.prepare_record(spec),
            artifacts={artifact.file: {k: v for k, v in accepted.items() if k != "parity"}},
            parity={artifact.file: accepted["parity"]}, source_per_case=source_cases,
            names=valset.names if valset is not None else [],
            attempts=[{k: v for k, v in a.items() if k != "per_case"} for a in attempts]),
        calibration=Calibration(count=0 if calibration is None else len(calibration), sha256=calib_hash,
                                source=str(calib) if calib is not None else None),
        source={"model_dir": str(model_dir), "architecture": config.architecture,
                "weights_sha256": config.provenance.get("weights_sha256")},
        usfm_edge_version=__version__, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap(staging: Path, out: Path) -> None:
    """Put the finished bundle at ``out``; an old bundle there is moved aside first and removed
    only once the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
