"""``usfm-edge bundle verify``: the manifest (schema, agreement, every file's sha256), each
artifact's declared shapes, and the golden pair on every backend available here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from usfm_edge.backends.base import available_backends, get_backend
from usfm_edge.backends.bundle import check_io
from usfm_edge.contracts.manifest import BundleManifest, FileRef, read_verified
from usfm_edge.errors import IntegrityError, SchemaError

# The golden output is the fp32 model's; an int8 artifact is checked on the fp32 fallback
# (its own accuracy is in manifest.validation) and only for finiteness and shape.
FP32_RTOL = 1e-3


def load_golden(bundle: Path, ref: FileRef) -> np.ndarray:
    """A golden array: a plain float32 .npy (no pickled objects)."""
    path = bundle / ref.path
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise IntegrityError(f"{path}: not a plain .npy array ({str(exc).splitlines()[0]}); re-export the bundle") \
            from None
    if array.dtype != np.float32:
        raise IntegrityError(f"{path}: golden arrays are float32, this one is {array.dtype}; re-export the bundle")
    return array


def verify_bundle(bundle: str | Path) -> list[str]:
    """Returns one line per check; raises on the first failure."""
    bundle = Path(bundle)
    manifest = read_verified(bundle)
    lines = [f"schema ok (v2), fields agree, {len(manifest.files())} files hashed ok, "
             f"{len(manifest.artifacts)} artifact(s)"]
    golden_in, golden_out = load_golden(bundle, manifest.golden.input), load_golden(bundle, manifest.golden.output)
    if list(golden_in.shape[1:]) != list(manifest.io.input.shape[1:]):
        raise SchemaError(f"{bundle}: golden input {golden_in.shape} does not match io.input "
                          f"{list(manifest.io.input.shape)}; re-export the bundle")
    for artifact in manifest.artifacts:
        lines += _verify_artifact(bundle, manifest, artifact, golden_in, golden_out)
    return lines


def _verify_artifact(bundle: Path, manifest: BundleManifest, artifact, golden_in: np.ndarray,
                     golden_out: np.ndarray) -> list[str]:
    lines = []
    backend = str(artifact.backend)
    path = bundle / artifact.file
    if artifact.for_tensorrt and artifact.precision == "int8":
        lines.append(_qdq_line(path))
    installed = available_backends()
    if backend not in installed and artifact.format == "onnx" and "onnxruntime" in installed:
        # a TensorRT-bound ONNX (Q/DQ or fp32) runs in ONNX Runtime too, as the export gate ran it
        lines.append(f"{artifact.file}: {backend} not installed here; running the file in onnxruntime")
        backend = "onnxruntime"
    if backend not in installed:
        return lines + [f"{artifact.file}: backend {backend} not installed here; skipped"]
    session = get_backend(backend).load(path, precision=artifact.precision)
    check_io(session, manifest, path)
    out = session.run(golden_in)
    if out.shape != golden_out.shape or not np.isfinite(out).all():
        raise SchemaError(f"{path}: golden input gives shape {out.shape} (expected {golden_out.shape}) or "
                          "non-finite values; re-export the bundle")
    error = float(np.abs(out - golden_out).max() / (np.abs(golden_out).max() or 1.0))
    if artifact.precision == "fp32" and error > FP32_RTOL:
        raise SchemaError(f"{path}: golden output differs by {error:.2e} (relative), more than {FP32_RTOL}; "
                          "the artifact does not match its source")
    return lines + [f"{artifact.file} ({backend}, {artifact.precision}): golden pair ok, rel error {error:.2e}"]


def _qdq_line(path: Path) -> str:
    if importlib.util.find_spec("onnx") is None:
        return f"{path.name}: the onnx package is not installed here; TensorRT's Q/DQ rule check skipped"
    from usfm_edge.backends.qdq_rules import check_tensorrt_qdq

    problems = check_tensorrt_qdq(path)
    if problems:
        raise SchemaError(f"{path}: breaks TensorRT's Q/DQ rules: {problems[0]}")
    return f"{path.name}: follows TensorRT's explicit-quantization (Q/DQ) rules"
