"""``usfm-edge bench``: on a tiny bundle and a tiny model directory, with a few iterations, it
writes a well-formed result document and a plot; nothing here asserts on time."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from usfm_edge.bench import BENCH_SCHEMA, run_bench
from usfm_edge.bench.vendor import _parse_benchmark_app, _parse_trtexec
from usfm_edge.cli.bench import bench
from usfm_edge.cli import cli
from usfm_edge.errors import InputError, UsfmEdgeError

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--warmup", "1", "--iters", "3"]
TOP_KEYS = {"schema", "schema_version", "usfm_edge_version", "created", "machine", "target", "settings", "metric",
            "reference", "cells"}
CELL_KEYS = {"backend", "precision", "status", "reason", "artifact", "reference", "runs_in", "float_precision",
             "load_s", "first_run_ms", "latency", "batch", "peak_rss_mb", "rss_before_load_mb", "parity", "metric",
             "vendor"}
LATENCY_KEYS = {"batch", "iters", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "fps"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained two-block ViT-Ti seg model at 64 px, phantom frames, and its OpenVINO int8
    bundle (accuracy does not matter here; the gate is switched off with max_drop=1)."""
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset
    from usfm_edge.export.exporter import export_bundle
    from usfm_edge.models import build_task_model, make_config, save_model_dir

    root = tmp_path_factory.mktemp("bench")
    data = write_phantom_dataset("seg", root / "data", n=12, config=PhantomConfig(size=(64, 64), organ="breast"))
    model_dir = save_model_dir(build_task_model(make_config("usfm_vit_t16", "seg", labels=["background", "lesion"],
                                                            img_size=64, model_args={"depth": 2})), root / "model")
    bundle = export_bundle(model_dir, target="openvino", precision="int8", out=root / "bundle", calib=data, val=data,
                           calib_limit=8, max_drop=1.0)
    return model_dir, bundle, data


def check_document(doc: dict, *, measured: set[tuple[str, str]]) -> None:
    """The structure documented in ``usfm_edge.bench``; every measured number finite."""
    assert TOP_KEYS <= set(doc) and doc["schema"] == BENCH_SCHEMA and doc["schema_version"] == 1
    assert doc["machine"]["cores"] >= 1 and "onnxruntime" in doc["machine"]["libraries"]
    assert doc["target"]["input_shape"] == [1, 64, 64] and doc["target"]["task"] == "seg"
    assert {(c["backend"], c["precision"]) for c in doc["cells"] if c["status"] == "ok"} == measured
    for cell in doc["cells"]:
        assert set(cell) == CELL_KEYS
        if cell["status"] != "ok":
            assert cell["status"] in ("skipped", "failed") and cell["reason"], cell
            continue
        assert cell["reason"] is None and set(cell["latency"]) == LATENCY_KEYS
        numbers = [cell["load_s"], cell["first_run_ms"], cell["peak_rss_mb"], *cell["latency"].values(),
                   *cell["parity"].values()]
        assert all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers), cell
        assert cell["latency"]["p50_ms"] <= cell["latency"]["p99_ms"] and cell["peak_rss_mb"] > 0
        assert cell["runs_in"] and cell["artifact"]
    assert sum(c["reference"] for c in doc["cells"]) <= 1


def test_bench_bundle_writes_json_and_plot(tiny, tmp_path):
    _, bundle, data = tiny
    out = tmp_path / "b.json"
    result = CliRunner().invoke(bench, [str(bundle), "--backends", "onnxruntime,openvino,torch,tensorrt",
                                        "--precisions", "fp32,int8", "--threads", "1", "--batch-size", "2", "--val",
                                        str(data), "--json", str(out), "--plot", str(tmp_path / "b.png"), *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    check_document(doc, measured={("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8"),
                                  ("torch", "fp32")})
    cells = {(c["backend"], c["precision"]): c for c in doc["cells"]}
    # the bundle's source model directory is here, so the fp32 torch model is the reference
    assert cells["torch", "fp32"]["reference"] and cells["torch", "fp32"]["parity"]["max_abs"] == 0
    assert doc["reference"]["backend"] == "torch" and doc["metric"] == "dice"
    assert "no onnxruntime int8 artifact" in cells["onnxruntime", "int8"]["reason"]
    assert cells["torch", "int8"]["status"] == "skipped" and cells["tensorrt", "fp32"]["status"] == "skipped"
    assert cells["openvino", "fp32"]["float_precision"] == "fp32"  # the f32 hint, not the CPU's bf16 default
    assert cells["openvino", "fp32"]["artifact"].endswith("model.onnx")  # the portable fallback
    for cell in (c for c in doc["cells"] if c["status"] == "ok"):
        assert 0 <= cell["metric"]["value"] <= 1 and math.isfinite(cell["metric"]["drop"])
        assert cell["batch"]["batch"] == 2 and cell["batch"]["fps"] > 0
    vendor = cells["openvino", "int8"]["vendor"]
    assert vendor["tool"] == "benchmark_app" and ("ratio" in vendor or "skipped" in vendor or "error" in vendor)
    assert cells["onnxruntime", "fp32"]["vendor"] is None
    assert cv2.imread(str(tmp_path / "b.png")) is not None
    assert "not measured" in result.output and "p50 ms" in result.output


def test_bench_pipeline_mode(tiny, tmp_path):
    _, bundle, _ = tiny
    result = CliRunner().invoke(bench, [str(bundle), "--pipeline", "--source", "phantom:?size=64&canvas=240x320&frames=2",
                                        "--backends", "openvino", "--threads", "1", "--iters", "8", "--warmup", "1",
                                        "--rounds", "2", "--json", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["backend"] == "openvino" and len(doc["sources"]) == 1 and "| source |" in result.output
    assert doc["sinks"] == ["http:0"] and doc["machine"]["cpu"]  # by default, the browser view with a viewer
    (row,) = doc["sources"]
    (sink,) = row["sinks"]
    assert doc["rounds"] == 2 and len(sink["rounds"]) == 2 and sink["throughput"]["viewer"]["frames"] > 0
    ratios = sorted(r["of_bare"] for r in sink["rounds"])
    assert sink["throughput"]["of_bare"] == pytest.approx(sum(ratios) / 2, abs=2e-3)  # the median of two
    assert "round 2/2" in result.stderr  # progress while it measures


def test_bench_model_directory_exports_then_measures(tiny, tmp_path):
    model_dir, _, data = tiny
    messages: list[str] = []
    doc = run_bench(model_dir, backends=["onnxruntime", "torch"], precisions=["fp32", "int8"], warmup=1, iters=3,
                    calib=data, calib_limit=8, work=tmp_path / "work", vendor_tools=False, progress=messages.append)
    check_document(doc, measured={("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32")})
    assert doc["target"]["kind"] == "model_dir" and doc["metric"] is None
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["onnxruntime_fp32", "onnxruntime_int8"]
    assert sum(m.startswith("exporting") for m in messages) == 2
    # the exported variants are reused when the weights and calibration are the same
    from usfm_edge.bench.plan import inspect_target, plan_model_dir

    again: list[str] = []
    cells = plan_model_dir(inspect_target(model_dir), ["onnxruntime"], ["fp32", "int8"], work=tmp_path / "work",
                           calib=data, val=None, calib_limit=8, threads=None, progress=again.append)
    assert again == [] and all(c.runnable for c in cells)


def test_int8_of_a_model_directory_needs_calib(tiny, tmp_path):
    model_dir, _, _ = tiny
    with pytest.raises(InputError, match="need --calib"):
        run_bench(model_dir, backends=["openvino"], precisions=["int8"], work=tmp_path / "w")
    assert not (tmp_path / "w").exists()  # refused before any export


def test_bad_target_is_a_one_line_error():
    result = CliRunner().invoke(cli, ["bench", "/nonexistent/target"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "neither a deployment bundle" in result.output
    result = CliRunner().invoke(cli, ["bench", "/nonexistent/target", "--backends", "onnxrun"])
    assert result.exit_code == 2 and "unknown onnxrun" in result.output


def test_torch_backend_runs_the_model_directory(tiny, tmp_path):
    import shutil

    import numpy as np

    from usfm_edge.backends import get_backend

    model_dir, bundle, _ = tiny
    torch_backend = get_backend("torch")
    golden_in, golden_out = np.load(bundle / "golden_input.npy"), np.load(bundle / "golden_output.npy")
    for path in (model_dir, bundle):  # a bundle stands for its source model directory
        out = torch_backend.load(path, threads=1).run(golden_in)
        np.testing.assert_allclose(out, golden_out, atol=1e-4)
    with pytest.raises(UsfmEdgeError, match="fp32 eager only"):
        torch_backend.load(model_dir, precision="int8")
    moved = tmp_path / "bundle"
    shutil.copytree(bundle, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"]["model_dir"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsfmEdgeError, match="not on this machine; .* pass its path"):
        torch_backend.load(moved)


def test_bench_imports_no_torch():
    code = ("import sys, usfm_edge.bench, usfm_edge.cli.bench, usfm_edge.backends\n"
            "print(' '.join(m for m in ('torch', 'nncf', 'matplotlib') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip() == ""


def test_vendor_outputs_are_parsed():
    text = "[ INFO ] Latency:\n[ INFO ]    Median:        229.05 us\n[ INFO ]    Average:   244.08 us\n" \
           "[ INFO ]    Min:           223.23 us\n"
    assert _parse_benchmark_app(text) == (pytest.approx(0.22905), pytest.approx(0.22323))
    assert _parse_benchmark_app("[ INFO ]    Median:        12.50 ms") == (12.5, None)
    line = "[I] Latency: min = 1.1 ms, max = 2.0 ms, mean = 1.3 ms, median = 1.25 ms, percentile(90%) = 1.5 ms"
    assert _parse_trtexec(line) == (1.25, 1.1) and _parse_trtexec("no figures") is None


@pytest.mark.slow
def test_benchmark_scripts_at_tiny_size(tiny, tmp_path):
    model_dir, bundle, data = tiny

    def run(*args: str) -> None:
        subprocess.run([sys.executable, "-m", *args, "--out", str(tmp_path)], check=True, cwd=ROOT, capture_output=True)

    run("benchmarks.cpu_peak", "--size", "64", "--reps", "1")
    peaks = json.loads((tmp_path / "cpu_peak_cpu.json").read_text())
    assert all(p["peak_gops"] > 0 for p in peaks["peaks"].values()) and peaks["machine"]["cpu"]
    run("benchmarks.bench_sizes", "--sizes", "t16", "--img-size", "64", "--backends", "onnxruntime",
        "--precisions", "fp32", "--iters", "2", "--warmup", "0", "--rounds", "1", "--peak-size", "64", "--no-vendor")
    sizes = json.loads((tmp_path / "bench_sizes_cpu_64.json").read_text())
    assert "untrained" in sizes["weights"] and sizes["gpu"]["device"] is None
    [row] = sizes["results"]
    assert row["status"] == "ok" and row["gmacs"] > 0 and row["achieved_gops"] > 0 and row["of_peak"] > 0
    assert (tmp_path / "bench_sizes_cpu_64.png").stat().st_size > 1000
    # given (trained) models get their Dice; the tiny model and its bundle stand in for both
    run("benchmarks.headline", "--teacher", str(model_dir), "--student-bundle", str(bundle), "--backends", "openvino",
        "--val", str(data), "--img-size", "64", "--iters", "2", "--warmup", "0", "--rounds", "2")
    head = json.loads((tmp_path / "headline_cpu_64.json").read_text())
    assert head["headline"]["student_cell"] == "openvino int8" and head["headline"]["speedup"] > 0
    assert len(head["headline"]["rounds_speedup"]) == 2
    ok = [r for r in head["results"] if r["status"] == "ok"]
    assert [r["role"] for r in ok] == ["teacher", "student"] and all(0 <= r["dice"] <= 1 for r in ok)


def test_pipeline_display_benchmark_script_at_tiny_size(tiny, tmp_path):
    """benchmarks/pipeline_throughput.py: every sink's row, the bare figures on every core,
    the glass-to-glass rows and the flicker tables, with the machine named and whether other
    work was running."""
    _, bundle, _ = tiny
    subprocess.run([sys.executable, "-m", "benchmarks.pipeline_throughput", "--bundle", str(bundle), "--source",
                    "phantom:?size=64&canvas=120x160&frames=2", "--frames", "8", "--rounds", "1", "--threads", "1",
                    "--flicker-bundle", str(bundle), "--flicker-source", "phantom:?size=64&canvas=120x160&frames=4",
                    "--flicker-frames", "4", "--tag", "t", "--out", str(tmp_path)],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "pipeline_display_t.json").read_text())
    (row,) = result["sources"]
    assert [s["sink"].split(":")[0] for s in row["sinks"]] == ["none", "http", "video"]
    assert row["bare"]["all_cores_fps"] > 0 and result["machine"]["cpu"] and "shared" in result["machine"]
    assert row["sinks"][1]["paced"]["glass_to_glass"]["measured"] == "capture_to_viewer"
    assert result["flicker_trained"]["ema_1"]["mask_pairs"] == 3
    (work,) = result["work_beside_inference"].values()
    assert work["infer"] > 0 and 0 < work["one_core_ceiling_display"] <= work["one_core_ceiling_none"] <= 1
    table = (tmp_path / "pipeline_display_t.md").read_text()
    assert "`http:0`" in table and "Glass-to-glass" in table and "Flicker of a trained bundle" in table
    assert "bound, display" in table
