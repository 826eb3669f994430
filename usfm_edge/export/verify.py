"""``usfm-edge bundle verify``: schema, hashes, and the golden pair on an available backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usfm_edge.errors import SchemaError
from usfm_edge.export.manifest import read_manifest, verify_hashes
from usfm_edge.runtime.backends import available_backends, get_backend

# The golden output is the fp32 model's; an int8 artifact is checked on the fp32 fallback
# (its own accuracy is in manifest.validation) and only for finiteness and shape.
FP32_RTOL = 1e-3


def verify_bundle(bundle: str | Path) -> list[str]:
    """Returns one line per check; raises ``SchemaError`` on the first failure."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_hashes(bundle, manifest)
    lines = [f"schema ok (v{manifest['schema_version']}), {len(manifest['artifacts'])} artifact(s), hashes ok"]
    golden_in = np.load(bundle / manifest["golden"]["input"])
    golden_out = np.load(bundle / manifest["golden"]["output"])
    for artifact in manifest["artifacts"]:
        backend = artifact.get("backend")
        if artifact["target"] in ("jetson", "tensorrt") and artifact["precision"] == "int8":
            from usfm_edge.export.qdq_rules import check_tensorrt_qdq

            problems = check_tensorrt_qdq(bundle / artifact["file"])
            if problems:
                raise SchemaError(f"{bundle / artifact['file']}: breaks TensorRT's Q/DQ rules: {problems[0]}")
            lines.append(f"{artifact['file']}: follows TensorRT's explicit-quantization (Q/DQ) rules")
        if backend not in available_backends() and artifact["format"] == "onnx" \
                and "onnxruntime" in available_backends():
            # a TensorRT-bound ONNX (Q/DQ or fp32) runs in ONNX Runtime too, as the export gate ran it
            lines.append(f"{artifact['file']}: {backend} not installed here; running the file in onnxruntime")
            backend = "onnxruntime"
        if backend not in available_backends():
            lines.append(f"{artifact['file']}: backend {backend} not installed here; skipped")
            continue
        out = get_backend(backend).load(bundle / artifact["file"], precision=artifact["precision"]).run(golden_in)
        if out.shape != golden_out.shape or not np.isfinite(out).all():
            raise SchemaError(f"{bundle / artifact['file']}: golden input gives shape {out.shape} "
                              f"(expected {golden_out.shape}) or non-finite values")
        error = float(np.abs(out - golden_out).max() / (np.abs(golden_out).max() or 1.0))
        if artifact["precision"] == "fp32" and error > FP32_RTOL:
            raise SchemaError(f"{bundle / artifact['file']}: golden output differs by {error:.2e} (relative), "
                              f"more than {FP32_RTOL}; the artifact does not match its source")
        lines.append(f"{artifact['file']} ({backend}, {artifact['precision']}): golden pair ok, rel error {error:.2e}")
    return lines
