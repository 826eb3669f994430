"""``export_bundle``: model directory -> verified deployment bundle.

    BUNDLE/model.onnx            fp32, always: the portable fallback and parity reference
    BUNDLE/<artifact>            the target's file(s)
    BUNDLE/golden_input.npy      a preprocessed frame and the fp32 model's output for it
    BUNDLE/golden_output.npy
    BUNDLE/manifest.json         schema, preprocessing, io, artifacts with sha256,
                                 validation against the source, calibration
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import torch

from usfm_edge._version import __version__
from usfm_edge.errors import InputError, UsfmEdgeError
from usfm_edge.export import gate
from usfm_edge.export.calibration import calibration_frames
from usfm_edge.export.manifest import BUNDLE_SCHEMA, BUNDLE_SCHEMA_VERSION, sha256, write_manifest
from usfm_edge.export.onnx_export import INPUT, OUTPUT, export_onnx
from usfm_edge.export.targets import get_target
from usfm_edge.export.targets.base import BuildContext
from usfm_edge.models import load_model_dir
from usfm_edge.runtime.backends import get_backend


class ExportGateError(UsfmEdgeError):
    """The artifact lost more accuracy than --max-drop allows at every fallback level."""


def export_bundle(model_dir: str | Path, *, target: str, precision: str, out: str | Path, calib: str | Path | None = None,
                  val: str | Path | None = None, max_drop: float | None = None, calib_limit: int = 300,
                  threads: int | None = None) -> Path:
    target_cls = get_target(target, precision)  # refuse an invalid pair before any work
    if precision == "int8" and calib is None:
        raise InputError("--precision int8 needs --calib DIR (a few hundred frames like those the model will see)")
    model = load_model_dir(model_dir)
    config, spec = model.config, model.config.preprocess
    if val is not None and config.task.value not in gate.DEFAULT_MAX_DROP:
        # an encoder's features have no task metric; the gate is output parity alone
        raise InputError(f"{model_dir} is a {config.task.value!r} model with no task metric to gate on; "
                         "export it without --val (parity against the fp32 source is still measured)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num_classes = max(2, len(config.labels))
    onnx_path = export_onnx(model, out / "model.onnx", input_shape=(1, spec.channels, *spec.input_size))

    calibration, calib_hash = (None, None)
    if calib is not None:
        calibration, calib_hash = calibration_frames(calib, spec, limit=calib_limit)
    valset = gate.load_val(val, config.task.value, spec, num_classes=num_classes) if val is not None else None
    golden_in = (valset.inputs[:1] if valset is not None else calibration[:1] if calibration is not None
                 else np.random.default_rng(0).standard_normal((1, spec.channels, *spec.input_size)).astype(np.float32))
    with torch.no_grad():
        torch_run = lambda x: model(torch.from_numpy(x)).numpy()  # noqa: E731
        golden_out = torch_run(golden_in)
        reference = gate.run_batched(torch_run, valset.inputs) if valset is not None else golden_out
    np.save(out / "golden_input.npy", golden_in)
    np.save(out / "golden_output.npy", golden_out)
    probe = valset.inputs if valset is not None else golden_in

    source_score, source_cases = (gate.score(valset, reference, spec, num_classes=num_classes)
                                  if valset is not None else (None, []))
    limit = gate.DEFAULT_MAX_DROP.get(config.task.value) if max_drop is None else max_drop
    attempts = []
    for level in range(target_cls.levels if precision == "int8" else 1):
        built = target_cls.build(precision, BuildContext(onnx_path, out, calibration, level=level,
                                                         options={"input_shape": [1, spec.channels, *spec.input_size]}))
        session = get_backend(built.check_backend or built.backend).load(out / built.file, precision=precision,
                                                                        threads=threads)
        outputs = gate.run_batched(session.run, probe)
        result = {"level": level, "parity": gate.parity(reference, outputs), "runs_in": session.precision}
        if valset is not None:
            value, cases = gate.score(valset, outputs, spec, num_classes=num_classes)
            result.update(value=value, drop=source_score - value, per_case=cases)
        attempts.append(result)
        if valset is None or result["drop"] <= limit:
            break
    else:
        last = attempts[-1]
        raise ExportGateError(
            f"{target} {precision} loses {last['drop']:.4f} {gate.metric_name(config.task.value)} against the fp32 "
            f"source ({source_score:.4f} -> {last['value']:.4f}) after {len(attempts)} fallback levels, above "
            f"--max-drop {limit}; try more or more typical --calib frames, --precision fp16/fp32, or a larger --max-drop"
        )
    accepted = attempts[-1]
    artifact = {"format": built.format, "precision": precision, "target": target, "backend": built.backend,
                "file": built.file, "extra_files": built.extra_files, "sha256": sha256(out / built.file),
                "built_with": target_cls.built_with(), "options": {**built.options, "fallback_level": accepted["level"]}}
    artifacts = [artifact]
    if (built.file, built.backend) != (onnx_path.name, "onnxruntime"):  # the portable fallback, always listed
        artifacts.append({"format": "onnx", "precision": "fp32", "target": "portable", "backend": "onnxruntime",
                          "file": onnx_path.name, "sha256": sha256(onnx_path),
                          "built_with": get_target("onnxruntime", "fp32").built_with()})
    manifest = {
        "schema": BUNDLE_SCHEMA, "schema_version": BUNDLE_SCHEMA_VERSION, "usfm_edge_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": config.task.value, "labels": config.labels, "preprocess": spec.to_dict(),
        "io": {"input": {"name": INPUT, "shape": ["batch", spec.channels, *spec.input_size], "dtype": "float32"},
               "output": {"name": OUTPUT, "shape": ["batch", *golden_out.shape[1:]], "dtype": "float32"},
               "layout": "NCHW"},
        "artifacts": artifacts,
        "validation": {
            "metric": gate.metric_name(config.task.value) if valset is not None else None,
            "frames": len(probe), "source": source_score, "max_drop": limit if valset is not None else None,
            "artifacts": {artifact["file"]: {k: v for k, v in accepted.items() if k != "parity"}},
            "parity": {artifact["file"]: accepted["parity"]},
            "source_per_case": source_cases, "names": valset.names if valset is not None else [],
            "attempts": [{k: v for k, v in a.items() if k != "per_case"} for a in attempts],
        },
        "calibration": {"count": 0 if calibration is None else len(calibration), "sha256": calib_hash,
                        "source": str(calib) if calib is not None else None},
        "golden": {"input": "golden_input.npy", "output": "golden_output.npy"},
        "source": {"model_dir": str(model_dir), "architecture": config.architecture,
                   "weights_sha256": config.provenance.get("weights_sha256")},
    }
    write_manifest(out, manifest)
    return out
