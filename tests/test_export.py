"""Export: every CPU target x precision builds a bundle that verifies, with parity and the
accuracy gate measured; tampering and bad manifests are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from usfm_edge.backends.verify import verify_bundle
from usfm_edge.cli import cli
from usfm_edge.contracts.manifest import BundleManifest
from usfm_edge.errors import IntegrityError, SchemaError, UsfmEdgeError
from usfm_edge.export.exporter import ExportGateError, export_bundle
from usfm_edge.export.targets import target_table


def read_manifest(bundle) -> dict:
    """The manifest as JSON, after the typed reader accepted it."""
    BundleManifest.read(bundle)
    return json.loads((bundle / "manifest.json").read_text())

# TensorRT builds engines on the machine itself; it cannot be installed here (its own test below).
PAIRS = [(t, p) for t, ps in target_table().items() for p in ps if t != "tensorrt"]
# Documented parity tolerances (max |artifact - fp32 torch| / max |fp32 torch| over all logits
# of the val frames). INT8 logits move a lot near decision boundaries of a small model (0.41
# measured on OpenVINO) while the masks barely change; for INT8 the gate's task metric is the
# check, and parity is reported.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.6}


@pytest.mark.parametrize("target, precision", PAIRS)
def test_every_cpu_target_and_precision(model_and_data, tmp_path, target, precision):
    model_dir, data = model_and_data
    bundle = export_bundle(model_dir, target=target, precision=precision, out=tmp_path / "b",
                           calib=data if precision == "int8" else None, val=data, calib_limit=32)
    manifest = read_manifest(bundle)
    assert manifest["task"] == "seg" and manifest["labels"] == ["background", "foreground"]
    assert manifest["io"]["input"]["shape"] == ["batch", 1, 64, 64]
    artifact = manifest["artifacts"][0]
    assert (artifact["target"], artifact["precision"]) == (target, precision)
    assert any(a["file"] == "model.onnx" and a["precision"] == "fp32" for a in manifest["artifacts"])
    result = manifest["validation"]["artifacts"][artifact["file"]]
    assert result["drop"] <= manifest["validation"]["max_drop"]
    assert manifest["validation"]["parity"][artifact["file"]]["max_rel"] < TOLERANCE[precision]
    if precision == "int8":
        assert manifest["calibration"]["count"] > 0 and len(manifest["calibration"]["sha256"]) == 64
    if target == "openvino" and precision == "fp32":
        assert result["runs_in"] == "fp32"  # not OpenVINO's bf16 default
    assert any("golden pair ok" in line for line in verify_bundle(bundle))


def test_an_encoder_exports_gated_on_parity_alone(model_and_data, tmp_path):
    from usfm_edge.models import build_task_model, make_config, save_model_dir

    model_dir, data = model_and_data
    encoder = build_task_model(make_config("usfm_vit_t16", "features", img_size=64, model_args={"depth": 1}))
    save_model_dir(encoder, tmp_path / "encoder")
    with pytest.raises(UsfmEdgeError, match="'features' model with no task metric"):
        export_bundle(tmp_path / "encoder", target="onnxruntime", precision="fp32", out=tmp_path / "x", val=data)
    bundle = export_bundle(tmp_path / "encoder", target="openvino", precision="int8", out=tmp_path / "b", calib=data,
                           calib_limit=16)
    manifest = read_manifest(bundle)
    assert manifest["task"] == "features" and manifest["validation"]["metric"] is None
    assert manifest["validation"]["parity"][manifest["artifacts"][0]["file"]]["max_rel"] < TOLERANCE["int8"]
    assert any("golden pair ok" in line for line in verify_bundle(bundle))


def test_invalid_pair_is_an_error_listing_valid_ones(model_and_data, tmp_path):
    model_dir, _ = model_and_data
    result = CliRunner().invoke(cli, ["export", str(model_dir), "--target", "onnxruntime", "--precision", "fp16",
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "does not build fp16" in result.output and "openvino: fp32, fp16, int8" in result.output
    with pytest.raises(UsfmEdgeError, match="needs --calib"):
        export_bundle(model_dir, target="openvino", precision="int8", out=tmp_path / "c")


def test_the_gate_fails_loudly(model_and_data, tmp_path):
    model_dir, data = model_and_data
    with pytest.raises(ExportGateError, match="loses .* dice .* after 2 fallback levels"):
        export_bundle(model_dir, target="onnxruntime", precision="int8", out=tmp_path / "b", calib=data, val=data,
                      max_drop=-1.0, calib_limit=16)


@pytest.fixture
def fp32_bundle(model_and_data, tmp_path):
    model_dir, data = model_and_data
    return export_bundle(model_dir, target="onnxruntime", precision="fp32", out=tmp_path / "b", val=data)


def test_tampered_artifact_is_refused(fp32_bundle):
    blob = bytearray((fp32_bundle / "model.onnx").read_bytes())
    blob[-10] ^= 0xFF
    (fp32_bundle / "model.onnx").write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="sha256 differs"):
        verify_bundle(fp32_bundle)
    result = CliRunner().invoke(cli, ["bundle", "verify", str(fp32_bundle)])
    assert result.exit_code == 2 and "model.onnx: sha256 differs" in result.output


@pytest.mark.parametrize("breakage, message", [
    (lambda m: m.update(schema_version=3), "schema_version 3 is not read"),
    (lambda m: m.update(schema_version=1), "schema_version 1 is not read .* re-export"),
    (lambda m: m.pop("preprocess"), "'preprocess' is a required property"),
    (lambda m: m["artifacts"][0].update(precision="int4"), "artifacts/0/precision"),
    (lambda m: m["artifacts"][0].update(file="../outside.onnx"), "artifacts/0/file"),
    (lambda m: m["io"]["input"].update(shape=["batch", 1, 32, 32]), "io.input.shape .* does not match"),
    (lambda m: m["io"]["output"].update(shape=["batch", 3, 64, 64]), "does not fit a seg model with 2 labels"),
    (lambda m: m.update(labels=["a", "b", "c"]), "does not fit a seg model with 3 labels"),
    (lambda m: m["preprocess"].update(std=[0.0]), "preprocess/std"),
    (lambda m: m.update(task="cls"), "does not fit a cls model"),
    (lambda m: m["golden"]["input"].update(path="/etc/passwd"), "golden/input/path"),
    (lambda m: m.update(artifacts=[]), "artifacts"),
    (lambda m: m.update(extra=1), "Additional properties"),
])
def test_wrong_schema_manifest_is_refused(fp32_bundle, breakage, message):
    path = fp32_bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    breakage(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match=message):
        verify_bundle(fp32_bundle)


def test_golden_pair_matches_the_source(fp32_bundle):
    golden_in, golden_out = np.load(fp32_bundle / "golden_input.npy"), np.load(fp32_bundle / "golden_output.npy")
    assert golden_in.shape == (1, 1, 64, 64) and golden_out.shape == (1, 2, 64, 64)


def test_jetson_bundle_carries_a_tensorrt_ready_model_and_its_build(model_and_data, tmp_path):
    from usfm_edge.backends.qdq_rules import check_tensorrt_qdq

    model_dir, data = model_and_data
    bundle = export_bundle(model_dir, target="jetson", precision="int8", out=tmp_path / "j", calib=data, val=data,
                           calib_limit=16)
    manifest = read_manifest(bundle)
    artifact = manifest["artifacts"][0]
    assert (artifact["backend"], artifact["file"]) == ("tensorrt", "model.trt.int8.onnx")
    command = artifact["options"]["trtexec"]
    assert command[0] == "trtexec" and "--stronglyTyped" in command and "--fp16" not in command
    assert "--minShapes=image:1x1x64x64" in command and "--maxShapes=image:8x1x64x64" in command
    assert check_tensorrt_qdq(bundle / artifact["file"]) == []
    lines = verify_bundle(bundle)
    assert any("Q/DQ) rules" in line for line in lines) and any("model.onnx" in line and "ok" in line for line in lines)
    assert any(line.startswith("model.trt.int8.onnx (onnxruntime, int8): golden pair ok") for line in lines)
    # ONNX Runtime's own int8 file (asymmetric uint8 activations) is what TensorRT refuses
    ort = export_bundle(model_dir, target="onnxruntime", precision="int8", out=tmp_path / "o", calib=data,
                        calib_limit=16)
    problems = check_tensorrt_qdq(ort / "model.int8.onnx")
    assert any("uint8" in p for p in problems)


def test_jetson_fp16_builds_with_fp16_flag(model_and_data, tmp_path):
    model_dir, _ = model_and_data
    manifest = read_manifest(export_bundle(model_dir, target="jetson", precision="fp16", out=tmp_path / "j"))
    assert "--fp16" in manifest["artifacts"][0]["options"]["trtexec"]
    assert {a["backend"] for a in manifest["artifacts"]} == {"tensorrt", "onnxruntime"}


def test_tensorrt_code_imports_without_tensorrt_and_says_what_to_do(model_and_data, tmp_path):
    import importlib

    for module in ("usfm_edge.backends.tensorrt", "usfm_edge.backends.tensorrt_engine",
                   "usfm_edge.export.targets.tensorrt"):
        importlib.import_module(module)
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    model_dir, _ = model_and_data
    with pytest.raises(UsfmEdgeError, match="use --target jetson"):
        export_bundle(model_dir, target="tensorrt", precision="fp16", out=tmp_path / "t")


def test_engine_cache_key_covers_device_library_model_and_flags():
    from usfm_edge.backends.tensorrt_engine import engine_cache_key

    base = dict(gpu="Orin", compute_capability="8.7", tensorrt="10.3", onnx_sha256="a" * 64,
                flags=["trtexec", "--onnx=x", "--stronglyTyped"])
    key = engine_cache_key(**base)
    for field, other in (("gpu", "Xavier"), ("compute_capability", "7.2"), ("tensorrt", "10.4"),
                         ("onnx_sha256", "b" * 64), ("flags", ["trtexec", "--onnx=x", "--fp16"])):
        assert engine_cache_key(**{**base, field: other}) != key
    assert engine_cache_key(**{**base, "flags": ["trtexec", "--onnx=elsewhere", "--stronglyTyped"]}) == key


def test_distill_then_export_the_student(model_and_data, tmp_path):
    from PIL import Image

    from usfm_edge.train.distill import DistillConfig, run_distill

    teacher, data = model_and_data
    unlabeled = tmp_path / "frames"
    unlabeled.mkdir()
    for i, image in enumerate(sorted((data / "test_set" / "image").iterdir())[:4]):
        Image.open(image).save(unlabeled / f"{i}.png")
    run = run_distill(DistillConfig(teacher=str(teacher), student="usfm_vit_t16", student_args={"depth": 1},
                                    data=str(data), unlabeled=str(unlabeled), out=str(tmp_path / "d"), epochs=2,
                                    precision="bf16"),  # the fp32 path runs in the demo tests
                      progress=False)
    report = json.loads((run / "distill_report.json").read_text())
    assert report["metric"] == "dice" and 0 <= report["student"] <= 1
    assert report["macs_ratio"] > 1.5  # one block instead of two
    assert len(report["per_case"]) == len(list((data / "val_set" / "image").iterdir()))
    student = run / "model"
    from usfm_edge.models import load_model_dir

    assert load_model_dir(student).config.preprocess == load_model_dir(teacher).config.preprocess
    bundle = export_bundle(student, target="openvino", precision="int8", out=tmp_path / "b", calib=data, val=data,
                           calib_limit=16)
    assert read_manifest(bundle)["source"]["architecture"] == "usfm_vit_t16"
    import subprocess
    import sys
    from pathlib import Path

    subprocess.run([sys.executable, "-m", "benchmarks.teacher_student", "--data", str(data), "--split", "val",
                    "--teacher", str(teacher), "--student", str(student), "--bundle", str(bundle), "--tag", "t",
                    "--out", str(tmp_path)], check=True, cwd=Path(__file__).resolve().parents[1], capture_output=True)
    table = json.loads((tmp_path / "teacher_student_t.json").read_text())
    assert [r["model"] for r in table["results"]] == ["teacher", "student", "student openvino int8"]
    assert len(table["per_case"]) == table["frames"] and table["results"][0]["drop_vs_teacher"] == 0
