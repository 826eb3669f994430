"""The Jetson way, on this machine: a system OpenCV built with GStreamer and a numpy 1.x, as
JetPack ships them, with usfm-edge's core installed beside them without pip's OpenCV.

Debian's ``python3-opencv`` (4.6, GStreamer 1.22, built against Debian's numpy 1.24) stands in
for JetPack's. The environment is a venv made with ``--system-site-packages`` in which
``pip install --no-deps .`` and ``requirements/jetson-runtime.txt`` were installed (``.ci/run``
builds it as ``.venv-jetson``; ``USFM_EDGE_JETSON_PYTHON`` may name another interpreter).
Through ``usfm-edge run`` in that environment, with this tree's code:
- ``gst:videotestsrc ... ! appsink`` and ``gst:filesrc location=CINE.mp4 ! decodebin !
  videoconvert ! appsink`` (a recorded cine is a replay: every frame, then the run ends);
- the core runtime on numpy 1.24 + OpenCV 4.6: the phantom, a video, a DICOM cine and an
  image folder into every file sink, with masks equal to those of this (pip OpenCV 5, numpy
  2) environment on the same frames.
Skips where no such environment exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from usfm_edge.runtime.postprocess import rle_to_mask
from tests.runtime_fixtures import runtime_bundle, screen_bundle  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import json, cv2, numpy; print(json.dumps({'numpy': numpy.__version__, 'opencv': cv2.__version__, "
         "'gstreamer': any(l.strip().startswith('GStreamer:') and 'YES' in l "
         "for l in cv2.getBuildInformation().splitlines())}))")


def jetson_python() -> tuple[str, dict] | None:
    candidates = [os.environ.get("USFM_EDGE_JETSON_PYTHON"), str(ROOT / ".venv-jetson" / "bin" / "python")]
    for python in filter(None, candidates):
        if not Path(python).is_file():
            continue
        probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            versions = json.loads(probe.stdout)
            if versions["gstreamer"]:
                return python, versions
    return None


FOUND = jetson_python()
pytestmark = pytest.mark.skipif(FOUND is None, reason="no Jetson-style environment (a system OpenCV with GStreamer "
                                "beside usfm-edge's core; .ci/run builds .venv-jetson)")


def run_there(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    """``usfm-edge run`` in the Jetson-style environment, on this tree's code."""
    python, _ = FOUND
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([python, "-m", "usfm_edge", "run", *map(str, args), "--quiet"], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


def run_here(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "usfm_edge", "run", *map(str, args), "--quiet"], capture_output=True,
                          text=True, timeout=180, env=env, cwd=ROOT)


def ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr


def masks(jsonl: Path) -> list[np.ndarray]:
    return [rle_to_mask(json.loads(line)["regions"][0]["mask"]) for line in jsonl.read_text().splitlines()]


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> tuple[Path, int]:
    """A phantom cine in scanner UI as an MP4 (MPEG-4 part 2: GStreamer decodes it with
    avdec_mpeg4 from gstreamer1.0-libav) and its frame count."""
    from usfm_edge.data.video import write_video
    from usfm_edge.runtime.sources import open_source

    source = open_source("phantom:?fps=0&frames=24&size=128&canvas=240x320&seed=3")
    source.open()
    path = tmp_path_factory.mktemp("gst") / "cine.mp4"
    write_video(path, np.stack(source.screens), fps=20.0)
    return path, len(source.screens)


def test_the_environment_is_the_jetson_shape():
    _, versions = FOUND
    assert versions["gstreamer"]
    assert int(versions["numpy"].split(".")[0]) == 1, "a pip numpy 2 shadows the system OpenCV's numpy 1.x"


def test_a_gstreamer_test_pattern_runs_to_its_end(runtime_bundle, tmp_path):
    report = tmp_path / "r.json"
    ok(run_there(runtime_bundle, "--source", "gst:videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240 ! "
                 "videoconvert ! video/x-raw,format=BGR ! appsink", "--sink", f"video:{tmp_path / 'o.avi'}",
                 "--report", report))
    written = json.loads(report.read_text())
    assert written["frames_in"] == written["frames_out"] == 30 and written["dropped"]["total"] == 0
    assert written["source"]["scheme"] == "gst" and written["source"]["finite"]
    assert written["sinks"][0]["frames"] == 30


def test_a_cine_through_gstreamer_decodebin_is_replayed_frame_by_frame(screen_bundle, cine, tmp_path):
    path, frames = cine
    ok(run_there(screen_bundle, "--source", f"gst:filesrc location={path} ! decodebin ! videoconvert ! "
                 "video/x-raw,format=BGR ! appsink", "--sink", f"jsonl:{tmp_path / 'gst.jsonl'}",
                 "--report", tmp_path / "r.json"))
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["frames_out"] == frames and written["dropped"]["total"] == 0
    # the same file through OpenCV's FFmpeg reader, in the same environment: the same frames, the same masks
    ok(run_there(screen_bundle, "--source", path, "--sink", f"jsonl:{tmp_path / 'ffmpeg.jsonl'}"))
    through_gst, through_ffmpeg = masks(tmp_path / "gst.jsonl"), masks(tmp_path / "ffmpeg.jsonl")
    assert sum(int(m.sum()) for m in through_ffmpeg) > 500
    for a, b in zip(through_gst, through_ffmpeg, strict=True):
        assert a.shape == b.shape and np.mean(a != b) < 0.01


def test_a_missing_gstreamer_file_is_one_clear_error(runtime_bundle, tmp_path):
    done = run_there(runtime_bundle, "--source", f"gst:filesrc location={tmp_path / 'nothing.mp4'} ! decodebin ! "
                     "videoconvert ! appsink")
    assert done.returncode == 3 and "Traceback" not in done.stderr  # a source that cannot be opened: exit 3
    errors = [line for line in done.stderr.splitlines() if line.startswith("usfm-edge run: error:")]
    assert len(errors) == 1 and "cannot open the pipeline" in errors[0]
    assert "WARN" not in done.stderr  # OpenCV's GStreamer warnings stay off


@pytest.mark.parametrize("kind", ["phantom", "video", "dicom", "images"])
def test_the_core_runtime_on_numpy_1_and_opencv_4_matches_this_environment(screen_bundle, cine, tmp_path, kind):
    """Same bundle, same frames, every file sink: the Jetson-style environment's masks are
    this environment's (OpenCV's resize may differ in a rounding, so up to 1 % of pixels).
    The phantom is rendered in each environment, and OpenCV 4.6 and 5 draw its screen a
    little differently: there the crop may differ by a few pixels, and only that is compared."""
    from usfm_edge.data.dicom_write import write_dicom

    path, frames = cine
    if kind == "phantom":
        source = "phantom:?fps=0&frames=6&size=128&canvas=240x320&seed=3"
    elif kind == "video":
        source = str(path)
    elif kind == "dicom":
        capture = cv2.VideoCapture(str(path))
        decoded = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2GRAY) for _ in range(6)]
        source = str(write_dicom(tmp_path / "cine.dcm", np.stack(decoded), rle=True))
    else:
        folder = tmp_path / "screens"
        folder.mkdir()
        capture = cv2.VideoCapture(str(path))
        for i in range(5):
            cv2.imwrite(str(folder / f"s{i}.png"), capture.read()[1])
        source = str(folder)
    outputs = {}
    for where, run in (("jetson", run_there), ("here", run_here)):
        out = tmp_path / where
        ok(run(screen_bundle, "--source", source, "--sink", f"jsonl:{out / 'r.jsonl'}", "--sink",
               f"jsonl:{out / 'p.jsonl'}?masks=polygons", "--sink", f"video:{out / 'o.mp4'}", "--sink",
               f"images:{out / 'frames'}", "--report", out / "r.json"))
        report = json.loads((out / "r.json").read_text())
        assert report["frames_out"] > 0 and all(s["frames"] == report["frames_out"] for s in report["sinks"])
        outputs[where] = masks(out / "r.jsonl")
        assert int(cv2.VideoCapture(str(out / "o.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == report["frames_out"]
        assert len(list((out / "frames").glob("*.png"))) == report["frames_out"]
    assert len(outputs["jetson"]) == len(outputs["here"])
    assert sum(int(m.sum()) for m in outputs["here"]) > 500  # the lesions were found: not a comparison of blanks
    for a, b in zip(outputs["jetson"], outputs["here"]):
        if kind == "phantom":
            assert abs(a.shape[0] - b.shape[0]) <= 6 and abs(a.shape[1] - b.shape[1]) <= 6
            continue
        assert a.shape == b.shape and np.mean(a != b) < 0.01
