"""The fault suite (training, export, data and tools; the runtime's is test_runtime_faults.py).

Every case runs the real CLI and asserts what a user relies on: a documented non-zero exit
code, ONE line without a traceback that names the thing, and nothing that existed before
changed. Classes: each reader x each corruption, each numeric option x invalid values, each
writer x read-only / full / permission-less folders, a long command x signals, and edited
model directories.

Full and read-only disks are small tmpfs mounts, which needs root (as on this project's
machines and in CI); those cases skip elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from usfm_edge.cli import cli

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--model", "usfm_vit_t16", "--model-args", '{"depth": 1}', "--img-size", "32", "--batch-size", "4",
              "--epochs", "1", "--no-progress"]


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file below the folders (what must not change)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders if folder.exists()
            for p in sorted(folder.rglob("*")) if p.is_file()}


INFO = ("pretrain: ",)  # lines a command prints before it starts (pretraining's peak lr)


def fails_in_one_line(args: list[str], *, codes=(2,), contains: str = "") -> str:
    result = CliRunner().invoke(cli, args)
    lines = [line for line in result.output.splitlines() if not line.startswith(INFO)]
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("usfm-edge ") and ": error: " in lines[0], result.output
    assert "Traceback" not in result.output and contains in lines[0], result.output
    return lines[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def seg(tmp_path_factory) -> Path:
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset

    return write_phantom_dataset("seg", tmp_path_factory.mktemp("faults") / "seg", n=12,
                                 config=PhantomConfig(size=(48, 48), organ="breast"))


@pytest.fixture(scope="module")
def model_dir(seg, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults_model") / "run"
    result = CliRunner().invoke(cli, ["finetune", "--task", "seg", "--data", str(seg), "--out", str(out), *TINY_TRAIN])
    assert result.exit_code == 0, result.output
    return out / "model"


@contextmanager
def mounted(tmp_path: Path, *, size: str = "64k", read_only: bool = False):
    """A small tmpfs at tmp_path/mnt (read-only, or of ``size``); skips without root."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    target = tmp_path / "mnt"
    target.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True).returncode:
        pytest.skip("mount is not permitted here")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


# --------------------------------------------------------------------------- readers x corruptions


def _png_bomb(path: Path) -> None:
    """A PNG whose header claims 100k x 100k pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


CORRUPTIONS = {
    "empty": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(2048)),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]) if p.stat().st_size else None,
    "decompression bomb": _png_bomb,
    "float out of range": lambda p: Image.fromarray(np.linspace(-5, 3000, 48 * 48, dtype=np.float32).reshape(48, 48))
    .save(p.with_suffix(".tif")),
}
SUFFIX = {"float out of range": ".tif"}


def corrupt_copy(seg: Path, tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A copy of the dataset whose first training image is broken in the way ``kind`` says."""
    data = tmp_path / "data"
    shutil.copytree(seg, data)
    image = sorted((data / "training_set" / "image").iterdir())[0]
    CORRUPTIONS[kind](image)
    if kind in SUFFIX:
        image.unlink()
        image = image.with_suffix(SUFFIX[kind])
    return data, image


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_broken_training_image_stops_finetune_in_one_line(seg, tmp_path, kind):
    data, image = corrupt_copy(seg, tmp_path, kind)
    before = snapshot(data)
    output = fails_in_one_line(["finetune", "--task", "seg", "--data", str(data), "--out", str(tmp_path / "run"),
                                *TINY_TRAIN], contains=image.name)
    assert snapshot(data) == before and str(image.parent) in output


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_calibration_skips_a_broken_frame_and_refuses_all_broken(model_dir, seg, tmp_path, kind):
    frames = tmp_path / "calib"
    frames.mkdir()
    for i, image in enumerate(sorted((seg / "training_set" / "image").iterdir())[:3]):
        shutil.copy(image, frames / f"{i}.png")
        CORRUPTIONS[kind](frames / f"{i}.png")
    if kind in SUFFIX:
        for p in frames.glob("*.png"):
            p.unlink()
    fails_in_one_line(["export", str(model_dir), "--target", "onnxruntime", "--precision", "int8", "--calib",
                       str(frames), "--out", str(tmp_path / "b")], contains="calib")


@pytest.mark.parametrize("kind", ["empty", "random bytes", "truncated"])
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".dcm", ".mp4"])
def test_data_index_lists_broken_files_and_refuses_an_archive_of_only_broken_ones(seg, tmp_path, kind, suffix):
    archive = tmp_path / "archive" / "liver"
    archive.mkdir(parents=True)
    good = sorted((seg / "training_set" / "image").iterdir())[0]
    broken = archive / f"broken{suffix}"
    broken.write_bytes(good.read_bytes())
    CORRUPTIONS[kind](broken)
    fails_in_one_line(["data", "index", str(archive), "--out", str(tmp_path / "m.csv")], contains="no readable frames")
    shutil.copy(good, archive / "good.png")
    result = CliRunner().invoke(cli, ["data", "index", str(archive), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 0 and "unreadable: " in result.output and broken.name in result.output


def test_a_float_image_in_range_reads_as_16_bit(tmp_path):
    from usfm_edge.data.images import read_image

    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "unit.tif")
    image = read_image(tmp_path / "unit.tif")
    assert image.dtype == np.uint16 and image.max() == 65535 and image.min() == 0


# --------------------------------------------------------------------------- numeric options


NUMERIC = [
    ("finetune", "--epochs", ["0", "-1"]), ("finetune", "--batch-size", ["0", "-4"]),
    ("finetune", "--lr", ["nan", "-1", "0", "inf"]), ("finetune", "--layer-decay", ["nan", "0", "2"]),
    ("finetune", "--label-fraction", ["0", "1.5", "nan"]), ("finetune", "--max-steps", ["0", "-1"]),
    ("finetune", "--num-workers", ["-1"]), ("finetune", "--img-size", ["0", "-16"]),
    ("pretrain", "--steps", ["0"]), ("pretrain", "--mask-ratio", ["1.5", "nan", "0", "1"]),
    ("pretrain", "--ema", ["2.0", "nan"]), ("pretrain", "--warmup-steps", ["-5"]),
    ("pretrain", "--organ-alpha", ["nan", "-1"]), ("pretrain", "--frame-stride", ["0"]),
    ("pretrain", "--save-every", ["0"]), ("pretrain", "--log-every", ["0"]), ("pretrain", "--lr", ["nan", "-1"]),
    ("distill", "--epochs", ["0"]), ("distill", "--temperature", ["0", "nan"]),
    ("distill", "--feature-weight", ["-1", "nan"]),
    ("export", "--calib-limit", ["0", "-3"]), ("export", "--max-drop", ["nan", "-1"]),
    ("phantom", "--n", ["0", "-5"]), ("phantom", "--size", ["4", "100000", "abc"]),
    ("phantom", "--fps", ["0", "nan"]), ("convert-checkpoint", "--img-size", ["0"]),
    ("data index", "--stride", ["0"]), ("data index", "--dedup", ["-1", "nan"]),
    ("demo", "--threads", ["0"]),
]
REQUIRED = {
    "finetune": ["--task", "seg", "--data", "D", "--out", "O"], "pretrain": ["--data", "D", "--out", "O"],
    "distill": ["--teacher", "T", "--data", "D", "--out", "O"], "export": ["M", "--target", "onnxruntime", "--out", "O"],
    "phantom": ["--out", "O"], "convert-checkpoint": ["C", "--out", "O"], "data index": ["S", "--out", "O.csv"],
    "demo": ["--out", "O"],
}


@pytest.mark.parametrize("command, option, value",
                         [(c, o, v) for c, o, values in NUMERIC for v in values])
def test_every_invalid_number_is_refused_before_any_work(tmp_path, command, option, value):
    args = [*command.split(), *[str(tmp_path / a) if a.isupper() or a.endswith(".csv") else a
                                for a in REQUIRED[command]], f"{option}={value}"]
    fails_in_one_line(args, contains=option)
    assert list(tmp_path.iterdir()) == []  # nothing was written


# --------------------------------------------------------------------------- writers


def writers(seg: Path, model_dir: Path) -> dict[str, callable]:
    """Commands that write into OUT (a path given last)."""
    return {
        "finetune": lambda out: ["finetune", "--task", "seg", "--data", str(seg), *TINY_TRAIN, "--out", str(out)],
        "export": lambda out: ["export", str(model_dir), "--target", "onnxruntime", "--out", str(out)],
        "phantom": lambda out: ["phantom", "--task", "seg", "--n", "40", "--size", "64", "--out", str(out)],
        "data index": lambda out: ["data", "index", str(seg), "--out", str(out / "m.csv")],
        "pretrain": lambda out: ["pretrain", "--data", str(seg / "training_set" / "image"), "--model", "usfm_vit_t16",
                                 "--model-args", '{"depth": 1}', "--img-size", "32", "--batch-size", "2", "--steps",
                                 "2", "--no-progress", "--out", str(out)],
    }


WRITERS = ["finetune", "pretrain", "export", "phantom", "data index"]


@pytest.mark.parametrize("name", WRITERS)
def test_a_read_only_disk_is_one_line_and_exit_3(seg, model_dir, tmp_path, name):
    with mounted(tmp_path, read_only=True) as disk:
        fails_in_one_line(writers(seg, model_dir)[name](disk / "out"), codes=(3,), contains="read-only")


@pytest.mark.parametrize("name", ["finetune", "pretrain", "export", "phantom"])
def test_a_full_disk_is_one_line_and_leaves_no_partial_files(seg, model_dir, tmp_path, name):
    with mounted(tmp_path, size="48k") as disk:
        line = fails_in_one_line(writers(seg, model_dir)[name](disk / "out"), codes=(3,))
        assert "full" in line or "No space left" in line, line
        leftovers = [p.name for p in disk.rglob("*") if ".tmp" in p.name or ".partial" in p.name]
        assert leftovers == []


@pytest.mark.parametrize("name", WRITERS)
def test_out_that_is_a_file_is_refused(seg, model_dir, tmp_path, name):
    out = tmp_path / "file"
    out.write_text("mine")
    args = writers(seg, model_dir)[name](out)
    if name == "data index":
        args[-1] = str(tmp_path)  # a folder where the manifest file should be
    fails_in_one_line(args, codes=(2, 3))
    assert out.read_text() == "mine"


@pytest.mark.parametrize("name", ["finetune", "phantom", "export"])
def test_a_folder_of_the_users_files_is_never_written_into(seg, model_dir, tmp_path, name):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    before = snapshot(mine)
    fails_in_one_line(writers(seg, model_dir)[name](mine))
    assert snapshot(mine) == before


class Config:
    """What SimMIM-format files pickle next to the weights."""


def test_convert_checkpoint_refuses_pickles_naming_the_global(tmp_path):
    import torch

    from usfm_edge.models import create_model

    torch.save({"model": create_model("usfm_vit_t16", depth=1).state_dict(), "config": Config()},
               tmp_path / "simmim.pth")
    fails_in_one_line(["convert-checkpoint", str(tmp_path / "simmim.pth"), "--arch", "usfm_vit_t16", "--out",
                       str(tmp_path / "m")], contains="Config")


# --------------------------------------------------------------------------- signals


def test_sigterm_during_export_leaves_the_bundle_at_out_as_it_was(model_dir, seg, tmp_path):
    bundle = tmp_path / "bundle"
    assert CliRunner().invoke(cli, ["export", str(model_dir), "--target", "onnxruntime", "--out",
                                    str(bundle)]).exit_code == 0
    before = snapshot(bundle)
    process = subprocess.Popen([sys.executable, "-m", "usfm_edge", "export", str(model_dir), "--target", "openvino",
                                "--precision", "int8", "--calib", str(seg), "--val", str(seg), "--out", str(bundle)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".bundle.partial-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the export finished before the signal arrived")
    assert process.returncode == 143 and stderr.strip().count("\n") == 0 and "SIGTERM" in stderr, stderr
    assert snapshot(bundle) == before and not list(tmp_path.glob(".bundle.*"))


def test_sigterm_during_the_demo_is_one_line_and_exit_143(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "usfm_edge", "demo", "--fast", "--no-progress", "--out",
                                str(tmp_path / "demo")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "demo" / "pretrain" / "metrics.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith("usfm-edge demo: error: stopped") and "Traceback" not in stderr


def test_resuming_from_a_foreign_state_is_one_line(seg, tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["finetune", "--task", "seg", "--data", str(seg), "--out", str(out),
                                    *TINY_TRAIN, "--max-steps", "1"]).exit_code == 0
    import torch

    torch.save({"objective": {}, "position": {"step": 1}}, out / "state.pt")  # a pretraining run's state
    fails_in_one_line(["finetune", "--out", str(out), "--resume", "--no-progress"], contains="not the state of this")


# --------------------------------------------------------------------------- edited model directories


def edit(model_dir: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    path = copy / "config.json"
    data = json.loads(path.read_text())
    result = change(data)
    path.write_text(json.dumps(data if result is None else result))
    return copy


EDITS = {
    "a JSON list": (lambda d: [d], "a JSON object"),
    "an unknown model argument": (lambda d: d["model_args"].update(wings=2), "wings"),
    "a head that is a string": (lambda d: d.update(head="light_seg"), "head must be"),
    "3 channels for 1-channel weights": (lambda d: d.update(model_args={**d["model_args"], "in_chans": 3},
                                                            preprocess={**d["preprocess"], "channels": 3,
                                                                        "mean": [0.5] * 3, "std": [0.2] * 3}),
                                         "patch_embed"),
    "an input size the encoder was not built for": (lambda d: d["preprocess"].update(input_size=[48, 48]),
                                                    "differs from preprocess.input_size"),
    "std NaN": (lambda d: d["preprocess"].update(std=[float("nan")]), "finite"),
    "an unknown task": (lambda d: d.update(task="segment"), "task 'segment'"),
    "an unknown schema version": (lambda d: d.update(schema_version=9), "schema_version 9"),
}


@pytest.mark.parametrize("what", sorted(EDITS))
def test_an_edited_model_directory_is_refused_by_export_and_finetune(model_dir, seg, tmp_path, what):
    change, message = EDITS[what]
    copy = edit(model_dir, tmp_path, change)
    fails_in_one_line(["export", str(copy), "--target", "onnxruntime", "--out", str(tmp_path / "b")],
                      contains=message)
    fails_in_one_line(["finetune", "--task", "seg", "--data", str(seg), "--init", str(copy), *TINY_TRAIN,
                       "--out", str(tmp_path / "run")], contains=message)
    assert not (tmp_path / "b").exists()


def test_truncated_weights_are_refused(model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    fails_in_one_line(["export", str(copy), "--target", "onnxruntime", "--out", str(tmp_path / "b")],
                      contains="model.safetensors")


def test_a_core_install_says_what_to_install_for_training(tmp_path):
    """Without torch (the cart's install), a training command names the extra, in one line."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from usfm_edge.cli import main; sys.argv = ['usfm-edge', 'finetune', '--task', 'seg', '--data', "
            f"{str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "pip install -c constraints.txt 'usfm-edge[train]'" in result.stderr
