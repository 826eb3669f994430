"""The runtime's fault suite, through the command line as a user meets it: every source with
corrupt input, every numeric option and URI option with values it must refuse (0, negative,
NaN, huge, misspelled), every writer on a read-only folder and a full disk, a failing sink or
callback, and SIGINT/SIGTERM during a run.

Each case asserts the exit status, exactly one error line and no traceback, and that nothing
that was there before changed. The CLI's own error handling prints ``UsfmEdgeError`` as one
line; anything else reaching click here is a bug this suite is meant to catch.

Read-only folders and full disks are real: as root (where permission bits do not stop a
write) a read-only tmpfs and a 1 MiB tmpfs are mounted in the test's folder; elsewhere the
read-only case uses chmod and the full-disk case skips.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from usfm_edge.cli import cli
from usfm_edge.errors import UsfmEdgeError
from usfm_edge.runtime.app import RunOptions, build_pipeline
from usfm_edge.runtime.sinks.base import Sink, SinkError
from tests.runtime_fixtures import runtime_bundle  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
PHANTOM = "phantom:?fps=0&frames=4&size=64&canvas=120x160"
LIVE = "phantom:?fps=30&frames=4&size=64&canvas=120x160"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def bundle(runtime_bundle):
    return runtime_bundle


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> Path:
    """A 40-frame phantom cine in scanner UI, as an MP4."""
    from usfm_edge.data.video import write_video
    from usfm_edge.runtime.sources import open_source

    source = open_source("phantom:?fps=0&frames=40&size=64&canvas=120x160")
    source.open()
    path = tmp_path_factory.mktemp("cine") / "cine.mp4"
    write_video(path, np.stack(source.screens), fps=20.0)
    return path


ERROR_LINE = re.compile(r"^usfm-edge(?: [\w-]+)?: error: ")


def one_error(result) -> str:
    """The command failed with exactly one error line and no traceback; returns that line."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if ERROR_LINE.match(line)]
    assert len(lines) == 1, result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(*args) -> object:
    return CliRunner().invoke(cli, ["run", *map(str, args), "--quiet"])


# ---------------------------------------------------------------- numeric options


RUN_OPTIONS = [("--threads", v) for v in ("0", "-1", "100000")] + \
              [("--max-frames", v) for v in ("0", "-1")] + \
              [("--ema", v) for v in ("0", "-0.5", "nan", "inf", "2")]
BENCH_OPTIONS = [("--threads", v) for v in ("0", "-2", "100000")] + \
                [("--iters", v) for v in ("0", "-1", "1000000000")] + \
                [("--warmup", v) for v in ("-1", "1000000000")] + \
                [("--batch-size", v) for v in ("0", "100000")] + \
                [("--rounds", v) for v in ("0", "-1", "1000")] + \
                [("--fps", v) for v in ("0", "-30", "nan", "inf", "1e9")] + \
                [("--val-limit", "0"), ("--calib-limit", "-5")]


@pytest.mark.parametrize(("option", "value"), RUN_OPTIONS)
def test_run_refuses_bad_numbers(bundle, option, value):
    result = run_cli(bundle, option, value)
    assert result.exit_code == 2 and option in one_error(result)


@pytest.mark.parametrize(("option", "value"), BENCH_OPTIONS)
def test_bench_refuses_bad_numbers(bundle, option, value):
    result = CliRunner().invoke(cli, ["bench", str(bundle), "--pipeline", option, value])
    assert result.exit_code == 2 and option in one_error(result)


# ---------------------------------------------------------------- URI options


SOURCE_OPTIONS = [
    ("phantom:?fsp=5", "unknown option 'fsp'"),
    ("phantom:?fps=nan", "fps='nan'"), ("phantom:?fps=-1", "fps='-1'"), ("phantom:?fps=1e9", "fps='1e9'"),
    ("phantom:?frames=0", "frames='0'"), ("phantom:?frames=-3", "frames='-3'"),
    ("phantom:?frames=99999999", "frames="), ("phantom:?size=100000", "size='100000'"),
    ("phantom:?size=8", "size='8'"), ("phantom:?canvas=0x0", "canvas='0x0'"),
    ("phantom:?canvas=8000x8000&frames=10000", "GiB"), ("phantom:?seed=-1", "seed='-1'"),
    ("phantom:?organ=brain", "organ='brain'"), ("phantom:?ui=maybe", "ui='maybe'"),
    ("v4l2:0?width=-5", "width='-5'"), ("v4l2:0?fourcc=MJPEG", "fourcc='MJPEG'"), ("v4l2:0?fsp=30", "'fsp'"),
    ("igtl:127.0.0.1:99999", "1..65535"), ("igtl:127.0.0.1:18944?timeout=0", "timeout='0'"),
]
SINK_OPTIONS = [
    ("jsonl:{d}/r.jsonl?mask=polygons", "unknown option 'mask'"), ("jsonl:{d}/r.jsonl?masks=poly", "masks='poly'"),
    ("video:{d}/o.mp4?fps=0", "fps='0'"), ("video:{d}/o.mp4?fps=nan", "fps='nan'"),
    ("video:{d}/o.mp4?fourcc=ABCDE", "fourcc='ABCDE'"), ("video:{d}/o.webm", ".mp4"),
    ("images:{d}/frames?ext=gif", "ext='gif'"), ("none:?x=1", "unknown option 'x'"),
    ("http:99999", "0..65535"), ("http:-1", "0..65535"), ("http:127.0.0.1:0?quality=0", "quality='0'"),
    ("http:999.1.1.1:0", "cannot listen"),
]


@pytest.mark.parametrize(("uri", "named"), SOURCE_OPTIONS)
def test_source_options_are_checked(bundle, uri, named):
    result = run_cli(bundle, "--source", uri)
    assert result.exit_code == 2 and named in one_error(result)


@pytest.mark.parametrize(("uri", "named"), SINK_OPTIONS)
def test_sink_options_are_checked(bundle, tmp_path, uri, named):
    (tmp_path / "before.txt").write_text("kept")
    before = snapshot(tmp_path)
    result = run_cli(bundle, "--source", PHANTOM, "--sink", uri.format(d=tmp_path))
    assert result.exit_code == 2 and named in one_error(result)
    assert snapshot(tmp_path) == before


def test_file_source_options_are_checked(bundle, cine, tmp_path):
    assert "fps='0'" in one_error(run_cli(bundle, "--source", f"video:{cine}?fps=0"))
    assert "unknown option 'rate'" in one_error(run_cli(bundle, "--source", f"video:{cine}?rate=3"))
    (tmp_path / "a.png").write_bytes(b"x")
    assert "fps='nan'" in one_error(run_cli(bundle, "--source", f"images:{tmp_path}?fps=nan"))


# ---------------------------------------------------------------- sources with corrupt input


def test_corrupt_videos_are_one_clear_error(bundle, cine, tmp_path):
    cases = {"zeros.mp4": b"\0" * 4096, "noise.avi": np.random.default_rng(0).bytes(20000),
             "half.mp4": cine.read_bytes()[: cine.stat().st_size // 2], "empty.mp4": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        result = run_cli(bundle, "--source", tmp_path / name)
        assert result.exit_code == 2 and name in one_error(result), name


def test_a_corrupt_dicom_is_one_clear_error(bundle, tmp_path):
    path = tmp_path / "cine.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(1).bytes(500))
    result = run_cli(bundle, "--source", path)
    assert result.exit_code == 2 and "cine.dcm" in one_error(result)


def test_a_folder_of_only_corrupt_images_fails(bundle, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.png").write_bytes(b"not a png" * i)
    result = run_cli(bundle, "--source", folder, "--report", tmp_path / "r.json")
    assert result.exit_code == 2 and "no frame of the source could be used: 3 skipped" in one_error(result)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames_out"] == 0 and report["counts"]["skipped_corrupt"] == 3 and "error" in report
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in one_error(run_cli(bundle, "--source", empty))


def test_float_tiffs_are_shown_or_refused_never_black(bundle, tmp_path):
    """A [0, 1] float TIFF is shown as the image it is; one whose range would have to be
    guessed is refused by the reader, and with nothing else in the folder the run fails."""
    from PIL import Image

    from usfm_edge.runtime.sources import open_source

    source = open_source(PHANTOM)
    source.open()
    folder = tmp_path / "float"
    folder.mkdir()
    Image.fromarray(source.screens[0].astype(np.float32) / 255.0).save(folder / "s.tif")
    result = run_cli(bundle, "--source", folder, "--sink", f"images:{tmp_path / 'out'}")
    assert result.exit_code == 0, result.output
    shown = cv2.imread(str(tmp_path / "out" / "frame_000000.png"), cv2.IMREAD_GRAYSCALE)
    # the phantom screen (an overlay may cover part of it), not a black or flat frame
    assert np.corrcoef(shown.ravel().astype(float), source.screens[0].ravel().astype(float))[0, 1] > 0.5
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(source.screens[0].astype(np.float32) - 100.0).save(odd / "s.tif")  # negative: no range fits
    result = run_cli(bundle, "--source", odd)
    assert result.exit_code == 2 and "s.tif" in one_error(result) and "float" in one_error(result)


def test_float_frames_in_unit_range_are_shown(bundle):
    """The frame contract allows float images in [0, 1]: they are drawn as such, not black."""
    from usfm_edge.runtime.overlay import draw_result

    frame = np.linspace(0, 1, 64 * 80, dtype=np.float32).reshape(64, 80)
    overlay = draw_result(frame, [(0, 0, 80, 64)], [{"mask": np.zeros((64, 80), np.uint8)}])
    assert overlay.dtype == np.uint8 and overlay[..., 0].max() == 255 and abs(overlay.mean() - 127.5) < 2


def test_a_source_folder_deleted_mid_run_fails(bundle, tmp_path):
    """Not "complete": the replay could not be finished, and the exit status says so."""
    from usfm_edge.runtime.sources import open_source

    source = open_source(PHANTOM)
    source.open()
    folder = tmp_path / "screens"
    folder.mkdir()
    for i in range(30):
        cv2.imwrite(str(folder / f"s{i:02d}.png"), source.screens[i % 4])
    process = _start([bundle, "--source", f"images:{folder}?fps=10", "--realtime", "--report", tmp_path / "r.json"])
    _wait_for_start(process)
    time.sleep(0.5)
    shutil.rmtree(folder)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 3, output  # the machine could not deliver the replay
    assert "Traceback" not in output and "vanished during the run" in output
    report = json.loads((tmp_path / "r.json").read_text())
    assert 0 < report["frames_out"] < 30 and "vanished" in report["error"]


def test_gstreamer_without_gstreamer_opencv_is_one_clear_error(bundle):
    from usfm_edge.runtime.sources.capture import opencv_has

    if opencv_has("GStreamer"):
        pytest.skip("this OpenCV has GStreamer (tests/test_runtime_gstreamer.py runs it)")
    result = run_cli(bundle, "--source", "gst:videotestsrc num-buffers=5 ! appsink")
    assert result.exit_code == 2 and "no GStreamer support" in one_error(result)


# ---------------------------------------------------------------- writers: read-only, full, no permission


def _mount(folder: Path, options: str) -> bool:
    if not IS_ROOT or shutil.which("mount") is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A folder nothing can be written into: a read-only tmpfs as root (root ignores mode
    bits), mode 0555 otherwise."""
    folder = tmp_path / "ro"
    if IS_ROOT:
        if not _mount(folder, "ro,size=64k"):
            pytest.skip("cannot mount a read-only tmpfs here")
        yield folder
        _umount(folder)
        return
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A 1 MiB file system: runs fill it within a few dozen frames."""
    folder = tmp_path / "full"
    if not _mount(folder, "size=1m"):
        pytest.skip("a small tmpfs needs root and mount")
    yield folder
    _umount(folder)


WRITERS = {"video": "video:{d}/o.mp4", "images": "images:{d}/frames", "jsonl": "jsonl:{d}/r.jsonl"}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_writers_refuse_a_read_only_folder_before_the_run(bundle, tmp_path, read_only, writer):
    kept = tmp_path / "kept.jsonl"
    kept.write_text("an earlier run's results\n")
    before = snapshot(tmp_path)
    result = run_cli(bundle, "--source", PHANTOM, "--sink", f"jsonl:{kept}",
                     "--sink", WRITERS[writer].format(d=read_only / "sub"))
    assert result.exit_code == 3 and "cannot write in" in one_error(result)
    assert snapshot(tmp_path) == before  # not even the other sink's file was touched


def test_a_report_that_cannot_be_written_is_refused_before_the_run(bundle, tmp_path, read_only):
    result = run_cli(bundle, "--source", PHANTOM, "--report", read_only / "r.json")
    assert result.exit_code == 3 and "--report" in one_error(result) and "read-only" in one_error(result)
    (tmp_path / "folder.json").mkdir()
    assert "is a folder" in one_error(run_cli(bundle, "--source", PHANTOM, "--report", tmp_path / "folder.json"))


def test_bench_output_that_cannot_be_written_is_refused_before_measuring(bundle, read_only):
    result = CliRunner().invoke(cli, ["bench", str(bundle), "--pipeline", "--json", str(read_only / "p.json")])
    assert result.exit_code == 3 and "--json" in one_error(result)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_stops_the_run_and_the_report_counts_what_was_written(bundle, tmp_path, full_disk, writer):
    uri = WRITERS[writer].format(d=full_disk)
    result = run_cli(bundle, "--source", "phantom:?fps=0&frames=4&size=64&canvas=240x320&loop=1",
                     "--max-frames", "5000", "--sink", uri, "--report", tmp_path / "r.json")
    assert result.exit_code == 3 and "full" in one_error(result)
    report = json.loads((tmp_path / "r.json").read_text())
    (sink,) = report["sinks"]
    assert 0 < sink["frames"] <= report["frames_out"] < 5000
    if writer == "video":  # the run stopped while the file could still be finished: it plays
        capture = cv2.VideoCapture(sink["path"])
        decoded = 0
        while capture.read()[0]:
            decoded += 1
        assert decoded == sink["frames"]
    elif writer == "images":
        assert len(list((full_disk / "frames").glob("frame_*.png"))) == sink["frames"]
    else:
        lines = (full_disk / "r.jsonl").read_text().splitlines()
        assert len([json.loads(line) for line in lines if line.endswith("}")]) >= sink["frames"]


def test_a_report_on_a_full_disk_is_one_line(bundle, full_disk):
    (full_disk / "filler").write_bytes(b"\0" * (1 << 20))  # fills it (tmpfs stops at its size)
    result = run_cli(bundle, "--source", PHANTOM, "--report", full_disk / "r.json")
    assert result.exit_code == 3 and "--report" in one_error(result) and "full" in one_error(result)


# ---------------------------------------------------------------- a sink or callback that fails


class Breaks(Sink):
    scheme = "breaks"

    def __init__(self, after: int) -> None:
        self.after, self.frames = after, 0

    def write(self, result) -> None:
        if self.frames == self.after:
            raise OSError(28, "No space left on device")
        self.frames += 1


def test_a_failing_sink_ends_a_replay_with_its_error_and_files_finished(bundle, tmp_path):
    pipeline = build_pipeline(RunOptions(bundle=bundle, source="phantom:?fps=0&frames=4&size=64&canvas=120x160&loop=1",
                                         sinks=[f"video:{tmp_path / 'o.avi'}"], max_frames=500))
    pipeline.sinks.append(Breaks(after=6))
    started = time.monotonic()
    with pytest.raises(SinkError, match="sink breaks: OSError.*No space left"):
        pipeline.run()
    assert time.monotonic() - started < 30
    report = pipeline.report()
    assert report["sinks"][0]["frames"] == 7 and "SinkError" in report["error"]
    capture = cv2.VideoCapture(str(tmp_path / "o.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 7


def test_a_raising_callback_ends_the_run_instead_of_hanging_it(bundle, tmp_path):
    """The demo installs a progress callback: a bug in it used to kill the sink thread and
    leave the replay blocked forever."""
    pipeline = build_pipeline(RunOptions(bundle=bundle, source="phantom:?fps=0&frames=4&size=64&canvas=120x160&loop=1",
                                         sinks=[f"video:{tmp_path / 'o.mp4'}"], max_frames=500))

    def callback(result):
        if result.frame.index == 3:
            raise ValueError("a bug in a progress bar")

    pipeline.on_result = callback
    done = threading.Event()
    outcome = {}

    def run():
        try:
            pipeline.run()
        except ValueError as exc:
            outcome["error"] = exc
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(30), "the run hung after its callback raised"
    assert str(outcome["error"]) == "a bug in a progress bar"
    capture = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_ten_failed_frames_while_a_video_decodes_end_cleanly(bundle, cine):
    """An ROI outside the frame fails every frame; the run used to release the video while
    the capture thread was decoding it (segfaults, aborts in libavcodec, deadlocks)."""
    for _ in range(3):
        result = run_cli(bundle, "--source", cine, "--roi", "5000,5000,100,100")
        assert result.exit_code == 2 and "failed on 10 frames in a row" in one_error(result)
        assert "inside the 160x120 frame" in result.output


def test_max_frames_on_a_looping_realtime_video_ends_cleanly(bundle, cine, tmp_path):
    for i in range(2):  # 40 frames at 20 fps, then 5 more of the second pass: the run ends mid-decode
        result = run_cli(bundle, "--source", cine, "--realtime", "--loop", "--max-frames", "45", "--report",
                         tmp_path / f"r{i}.json")
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / f"r{i}.json").read_text())["frames_out"] == 45


def test_bench_with_a_failed_cell_exits_non_zero(bundle, tmp_path):
    """A backend that cannot even import in the cell's process: the table shows the failed
    cell, the JSON is written, and the exit status is not success."""
    broken = tmp_path / "site"
    (broken / "onnxruntime").mkdir(parents=True)
    (broken / "onnxruntime" / "__init__.py").write_text("raise ImportError('injected: a broken onnxruntime')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "usfm_edge", "bench", str(bundle), "--backends", "onnxruntime",
                           "--precisions", "fp32", "--iters", "2", "--warmup", "0", "--no-vendor", "--json",
                           str(tmp_path / "b.json")], capture_output=True, text=True, env=env, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in output, output
    assert "cells failed" in done.stderr.strip().splitlines()[-1]
    cells = json.loads((tmp_path / "b.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["failed"]


# ---------------------------------------------------------------- signals


def _start(args: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "usfm_edge", "run", *map(str, args), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                                        "")])})


def _wait_for_start(process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the command says what it runs (the bundle is loaded, the run begins)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if " on onnxruntime " in line:
            return
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail(f"the run did not start: {process.stdout.read()}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("source", ["video", "phantom"])
def test_signals_end_any_run_within_5_s_with_files_finished(bundle, cine, tmp_path, sig, source):
    uri = [cine, "--realtime", "--loop"] if source == "video" else [LIVE]
    video, report = tmp_path / "o.mp4", tmp_path / "r.json"
    process = _start([bundle, "--source", *uri, "--sink", f"video:{video}", "--report", report])
    _wait_for_start(process)
    time.sleep(1.5)
    sent = time.monotonic()
    process.send_signal(sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    ended = time.monotonic() - sent
    if process.poll() is None:
        process.kill()
    output = process.stdout.read()
    assert ended < 5 and process.returncode == 128 + sig, (ended, output)  # 130 / 143, after finishing files
    assert "Traceback" not in output
    written = json.loads(report.read_text())
    assert written["frames_out"] > 5
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == written["sinks"][0]["frames"] > 5


def test_errors_are_typed_for_library_users(bundle):
    """What the CLI prints as one line is a UsfmEdgeError for code that embeds the runtime."""
    with pytest.raises(UsfmEdgeError, match="unknown option 'fsp'"):
        build_pipeline(RunOptions(bundle=bundle, source="phantom:?fsp=5"))
