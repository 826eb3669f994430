"""A training run's lifecycle through the CLI, the same for finetune, distill and pretrain (one
engine): an existing run is never replaced silently, --resume needs only --out and refuses a
changed option, --max-steps exits 0, SIGINT and SIGTERM save the state, a resumed run logs no
step twice and ends where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import assert_resumed_equals_straight
from usfm_edge.cli import cli
from usfm_edge.train.state import load_state

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "usfm_vit_t16", "--model-args", '{"depth": 1}', "--img-size", "32", "--batch-size", "4",
        "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset

    return write_phantom_dataset("seg", tmp_path_factory.mktemp("life") / "seg", n=16,
                                 config=PhantomConfig(size=(48, 48), organ="breast"))


def invoke(args: list[str]):
    return CliRunner().invoke(cli, args)


def finetune(data, out, *extra: str):
    return invoke(["finetune", "--task", "seg", "--data", str(data), "--out", str(out), "--epochs", "2", *TINY, *extra])


def steps(out: Path) -> list[int]:
    return [row["step"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]


def test_a_finished_run_is_not_replaced_without_overwrite(data, tmp_path):
    out = tmp_path / "run"
    assert finetune(data, out).exit_code == 0
    before = (out / "metrics.jsonl").read_text()
    again = finetune(data, out)
    assert again.exit_code == 2 and "already holds a run (at step" in again.output and "--overwrite" in again.output
    assert (out / "metrics.jsonl").read_text() == before
    assert finetune(data, out, "--overwrite", "--seed", "3").exit_code == 0
    assert "seed: 3" in (out / "config.yaml").read_text()


def test_a_folder_that_is_not_a_run_is_never_written_into(data, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for extra in ([], ["--overwrite"]):
        result = finetune(data, mine, *extra)
        assert result.exit_code == 2 and "not a run folder" in result.output
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_max_steps_exits_0_and_resume_needs_only_out(data, tmp_path):
    out = tmp_path / "run"
    stopped = finetune(data, out, "--max-steps", "3")
    assert stopped.exit_code == 0 and "stopped at step 3 (--max-steps)" in stopped.output
    assert f"continue with: usfm-edge finetune --out {out} --resume" in stopped.output
    config = (out / "config.yaml").read_text()
    changed = invoke(["finetune", "--out", str(out), "--resume", "--lr", "0.5"])
    assert changed.exit_code == 2 and "--lr 0.5 differs from the run's 0.001" in changed.output
    assert (out / "config.yaml").read_text() == config
    resumed = invoke(["finetune", "--out", str(out), "--resume", "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    logged = steps(out)
    assert logged == sorted(set(logged)) and logged[-1] == load_state(out / "state.pt")["position"]["step"]


def test_resume_without_a_run_says_so(tmp_path):
    result = invoke(["finetune", "--out", str(tmp_path / "none"), "--resume"])
    assert result.exit_code == 2 and "no run to resume" in result.output


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_state_and_the_run_resumes(data, tmp_path, sig, code):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "usfm_edge", "finetune", "--task", "seg", "--data", str(data), "--out", str(out),
               "--epochs", "400", "--log-every", "1", *TINY]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not ((out / "metrics.jsonl").is_file() and steps(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "state saved; continue with" in stderr and "Traceback" not in stderr
    saved = load_state(out / "state.pt")["position"]["step"]
    assert saved >= 1 and steps(out)[-1] == saved


def test_distillation_resumes_exactly_like_finetune(data, tmp_path):
    teacher = tmp_path / "teacher"
    assert finetune(data, teacher).exit_code == 0
    base = ["distill", "--teacher", str(teacher / "model"), "--data", str(data), "--student", "usfm_vit_t16",
            "--student-args", '{"depth": 1}', "--epochs", "2", "--batch-size", "4", "--no-progress"]
    assert invoke([*base, "--out", str(tmp_path / "straight")]).exit_code == 0
    stopped = invoke([*base, "--out", str(tmp_path / "split"), "--max-steps", "3"])
    assert stopped.exit_code == 0 and "distill --out" in stopped.output
    assert invoke(["distill", "--out", str(tmp_path / "split"), "--resume", "--no-progress"]).exit_code == 0
    assert_resumed_equals_straight(tmp_path, "student")


def test_distillation_takes_a_recipe(data, tmp_path):
    teacher = tmp_path / "teacher"
    assert finetune(data, teacher).exit_code == 0
    recipe = tmp_path / "distill.yaml"
    recipe.write_text(f"teacher: {teacher / 'model'}\ndata: {data}\nstudent_args: {{depth: 1}}\nepochs: 1\n"
                      "batch_size: 4\n")
    result = invoke(["distill", "--config", str(recipe), "--out", str(tmp_path / "d"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "epochs: 1" in (tmp_path / "d" / "config.yaml").read_text()


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "'--epochs': 0 is not in the range x>=1"),
    (["--lr", "nan"], "'--lr': 'nan' is not a finite number"),
    (["--lr", "-1"], "'--lr': -1.0 is not in the range x>0.0"),
    (["--layer-decay", "nan"], "'--layer-decay': 'nan' is not a finite number"),
    (["--batch-size", "-4"], "'--batch-size': -4 is not in the range x>=1"),
    (["--max-steps", "0"], "'--max-steps': 0 is not in the range x>=1"),
    (["--num-workers", "-1"], "'--num-workers': -1 is not in the range x>=0"),
    (["--label-fraction", "1.5"], "'--label-fraction': 1.5 is not in the range 0.0<x<=1.0"),
    (["--model-args", '{"depth": 0}'], "depth"),
    (["--device", "tpu"], "device 'tpu': must be auto, cpu, cuda or cuda:N"),
])
def test_bad_training_options_are_one_line(data, tmp_path, args, message):
    result = finetune(data, tmp_path / "run", *args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output and "Traceback" not in result.output
