"""The benchmark scripts run at a tiny size and write their JSON and table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_encoder_benchmark_writes_json_and_table(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "benchmarks.encoders", "--img-size", "32", "--warmup", "1", "--iters", "2",
         "--out", str(tmp_path)],
        check=True, cwd=ROOT, capture_output=True, text=True,
    )
    result = json.loads((tmp_path / "encoders_cpu_32.json").read_text())
    assert {r["model"] for r in result["results"]} >= {"usfm_vit_b16", "usfm_vit_t16"}
    assert all(r["p50_ms"] > 0 for r in result["results"])
    assert result["machine"]["cores"] >= 1 and "torch" in result["machine"]["libraries"]
    assert "| usfm_vit_b16 |" in (tmp_path / "encoders_cpu_32.md").read_text()


def test_label_efficiency_writes_table_json_and_plot(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "usfm_edge", "phantom", "--out", str(data), "--task", "seg", "--n", "16",
                    "--size", "64", "--organ", "breast"], check=True, cwd=ROOT, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "benchmarks.label_efficiency", "--data", str(data), "--model-args", '{"depth": 1}',
         "--fractions", "0.5,1.0", "--epochs", "1", "--max-epochs", "2", "--out", str(tmp_path)],
        check=True, cwd=ROOT, capture_output=True, text=True,
    )
    result = json.loads((tmp_path / "label_efficiency.json").read_text())
    assert [(r["fraction"], r["epochs"]) for r in result["results"]] == [(0.5, 2), (1.0, 1)]
    assert all(0 <= r["dice"] <= 1 for r in result["results"])
    assert "| scratch | 50 |" in (tmp_path / "label_efficiency.md").read_text()
    assert (tmp_path / "label_efficiency.png").stat().st_size > 1000


def test_pretrain_throughput_benchmark(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "benchmarks.pretrain_throughput", "--models", "usfm_vit_t16", "--img-size", "64",
         "--batch-size", "2", "--steps", "1", "--warmup", "0", "--tag", "test", "--out", str(tmp_path)],
        check=True, cwd=ROOT, capture_output=True, text=True,
    )
    rows = json.loads((tmp_path / "pretrain_throughput_test.json").read_text())["results"]
    assert [r["objective"] for r in rows] == ["simmim", "sfmim", "mae"]
    assert rows[1]["cost_vs_simmim"] > 0 and all(r["img_per_s"] > 0 for r in rows)


def test_train_precision_benchmark(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "benchmarks.train_precision", "--models", "usfm_vit_t16:light_seg", "--img-size", "32",
         "--batch-size", "2", "--steps", "2", "--rounds", "1", "--out", str(tmp_path)],
        check=True, cwd=ROOT, capture_output=True, text=True,
    )
    rows = json.loads((tmp_path / "train_precision_cpu.json").read_text())["results"]
    assert [(r["model"], r["head"]) for r in rows] == [("usfm_vit_t16", "light_seg")]
    assert rows[0]["fp32_img_per_s"] > 0 and rows[0]["bf16_img_per_s"] > 0 and rows[0]["bf16_speedup"] > 0
    assert "| usfm_vit_t16 | light_seg |" in (tmp_path / "train_precision_cpu.md").read_text()


def test_phantom_stats_and_finetune_run(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks.phantom_stats", "--seeds", "1", "--out", str(tmp_path)],
                   check=True, cwd=ROOT, capture_output=True)
    stats = json.loads((tmp_path / "phantom_stats.json").read_text())
    assert len(stats["speckle"]) == 3 and all(1.6 < r["snr"] < 2.2 for r in stats["speckle"])
    assert stats["solidity_min_max"]["benign"][0] > stats["solidity_min_max"]["malignant"][1]
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "usfm_edge", "phantom", "--out", str(data), "--task", "seg", "--n", "12",
                    "--size", "64", "--organ", "breast"], check=True, cwd=ROOT, capture_output=True)
    subprocess.run([sys.executable, "-m", "benchmarks.finetune_run", "--data", str(data), "--model-args",
                    '{"depth": 1}', "--img-size", "64", "--epochs", "1", "--tag", "t", "--out", str(tmp_path)],
                   check=True, cwd=ROOT, capture_output=True)
    run = json.loads((tmp_path / "finetune_t.json").read_text())
    assert run["split"] == "test" and run["seconds"] > 0 and 0 <= run["metrics"]["dice_mean"] <= 1
