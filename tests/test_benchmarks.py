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


def test_label_efficiency_writes_table_json_plot_and_chain(tmp_path):
    """The whole benchmark at toy size: pretraining, the fine-tuning grid, paired intervals,
    the target line and the teacher -> student -> INT8 chain; then a rerun reuses every run."""
    import yaml

    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "usfm_edge", "phantom", "--out", str(data), "--task", "seg", "--n", "16",
                    "--size", "64", "--organ", "breast"], check=True, cwd=ROOT, capture_output=True)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "data": str(data), "unlabeled": [str(data / "training_set" / "image")], "model_args": {"depth": 1},
        "img_size": 32, "pretrain_steps": 3, "pretrain_batch": 4,
        "objectives": {"sfmim": {}, "sfmim_long": {"objective": "sfmim", "steps": 4, "mask_patch": 8}},
        "steps": 4, "batch_size": 4, "eval_every": 2, "fractions": [0.2, 1.0], "seeds": [0, 1],
        "inits": ["scratch", "sfmim", "sfmim_long"], "student_args": {"depth": 1}, "distill_epochs": 1}))
    command = [sys.executable, "-m", "benchmarks.label_efficiency", "--recipe", str(recipe), "--work",
               str(tmp_path / "work"), "--tag", "t", "--out", str(tmp_path)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    result = json.loads((tmp_path / "label_efficiency_t.json").read_text())
    assert [(e["init"], e["fraction"]) for e in result["summary"]] == [
        ("scratch", 0.2), ("scratch", 1.0), ("sfmim", 0.2), ("sfmim", 1.0), ("sfmim_long", 0.2), ("sfmim_long", 1.0)]
    assert all(0 <= e["dice"] <= 1 and len(e["dice_seeds"]) == 2 for e in result["summary"])
    assert len(result["summary"][2]["ci95"]) == 2 and "gain_vs_scratch" not in result["summary"][0]
    assert set(result["target"]) >= {"init", "at_20", "scratch_100", "difference", "ci95", "met"}
    assert [t["init"] for t in result["targets"]] == ["sfmim", "sfmim_long"]
    variant = yaml.safe_load((tmp_path / "work" / "pretrain" / "sfmim_long" / "config.yaml").read_text())
    assert (variant["objective"], variant["steps"], variant["mask_patch"]) == ("sfmim", 4, 8)
    assert [(c["init"], c["student_init"]) for c in result["chain"]] == [
        ("scratch", "random"), ("sfmim", "random"), ("sfmim", "sfmim")]
    assert all(0 <= c["int8"] <= 1 for c in result["chain"])
    table = (tmp_path / "label_efficiency_t.md").read_text()
    assert "| sfmim | " in table and "Target, SF-MIM with 20 %" in table and "student INT8" in table
    assert "The other pretrained inits with 20 % against scratch with 100 %: sfmim_long " in table
    assert "Command: `python -m benchmarks.label_efficiency --recipe" in table
    assert (tmp_path / "label_efficiency_t.png").stat().st_size > 1000
    rerun = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    assert json.loads((tmp_path / "label_efficiency_t.json").read_text())["summary"] == result["summary"]
    assert "(0 s)" in rerun.stdout  # the encoders were reused, not trained again


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
