"""The real-time runtime: replay against offline references, DICOM cines, injected faults,
the newest-frame policy, a soak with memory checked, every sink, clean stops, and the CLI.
Nothing is patched: tests inject their own sources, models and capture devices."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from usfm_edge.cli import cli
from usfm_edge.errors import BundleMismatchError, DependencyError, InputError, UsfmEdgeError
from usfm_edge.contracts.prepare import preprocess_frame, softmax, to_original_grid
from usfm_edge.runtime.app import RunOptions, build_pipeline
from usfm_edge.runtime.frame import Frame
from usfm_edge.backends.bundle import load_bundle
from usfm_edge.runtime.pipeline import BackendFailedError, Pipeline, PipelineConfig
from usfm_edge.runtime.postprocess import PostConfig, make_postprocessor, mask_to_rle, rle_to_mask
from usfm_edge.contracts.region import RegionTracker, View
from usfm_edge.runtime.sinks import SinkContext, open_sink
from usfm_edge.runtime.sinks.base import Sink
from usfm_edge.runtime.sources import Source, SourceOptions, open_source, parse_uri
from usfm_edge.runtime.sources.faults import Faults, FaultySource

# A small live-looking screen: 64 px phantom frames (the test model's size) in UI chrome.
PHANTOM = "phantom:?fps=0&frames=4&size=64&canvas=240x320"


@pytest.fixture(scope="session")
def bundle(model_and_data, tmp_path_factory):
    from usfm_edge.export.exporter import export_bundle

    model_dir, data = model_and_data
    return export_bundle(model_dir, target="onnxruntime", precision="fp32", out=tmp_path_factory.mktemp("rt") / "b",
                         val=data)


@pytest.fixture(scope="session")
def model(bundle):
    return load_bundle(bundle)


def _pipeline(model, source: Source, sinks=(), *, ema: float = 1.0, tracker=None, **config) -> Pipeline:
    post = make_postprocessor(model.task, model.spec, model.labels, PostConfig(ema=ema))
    return Pipeline(source, model, post, tracker or RegionTracker(), list(sinks), PipelineConfig(**config))


class Collect(Sink):
    scheme = "collect"

    def __init__(self) -> None:
        self.results = []

    def write(self, result) -> None:
        self.results.append(result)


# ---------------------------------------------------------------- replay and golden outputs


@pytest.mark.parametrize("prepare_thread", [False, True], ids=["inline", "prepare-thread"])
def test_phantom_replay_matches_the_offline_reference(model, prepare_thread):
    """Every frame in order; each mask equals the one computed by hand from the same crop
    (preprocess -> model -> softmax -> back to the crop grid), and the crop is the image."""
    source = open_source(PHANTOM)
    sink = Collect()
    report = _pipeline(model, source, [sink], prepare_thread=prepare_thread).run()
    assert report["frames_out"] == 4 and report["dropped"]["total"] == 0
    assert [r.frame.index for r in sink.results] == [0, 1, 2, 3]
    for result in sink.results:
        (x, y, w, h), = result.boxes
        tx, ty, tw, th = source.box
        assert abs(x - tx) <= 3 and abs(y - ty) <= 3 and abs(w - tw) <= 6 and abs(h - th) <= 6
        crop = result.frame.image[y:y + h, x:x + w]
        logits = model.session.run(preprocess_frame(crop, model.spec))[0]
        probs = to_original_grid(softmax(logits), crop.shape[:2], model.spec)
        expected = (probs[1] >= 0.5).astype(np.uint8)
        sector = result.views[0].sector
        expected[~sector] = 0  # cleared outside the imaging sector
        np.testing.assert_array_equal(result.outputs[0]["mask"], expected)
        assert result.overlay is not None and result.overlay.shape == (240, 320, 3)


def test_replay_is_deterministic(model):
    runs = []
    for _ in range(2):
        sink = Collect()
        _pipeline(model, open_source(PHANTOM), [sink], ema=0.5).run()
        runs.append([r.outputs[0]["mask"] for r in sink.results])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_temporal_smoothing_is_an_ema_on_probabilities_reset_by_a_new_region(model):
    post = make_postprocessor("seg", model.spec, model.labels, PostConfig(ema=0.25))
    h, w = model.spec.input_size
    view, crop = View((0, 0, w, h)), np.zeros((h, w), np.uint8)
    on, off = np.zeros((2, h, w), np.float32), np.zeros((2, h, w), np.float32)
    on[1], off[0] = 8.0, 8.0  # confident foreground, then confident background
    assert post(on, view, crop)["mask"].all()
    # Foreground probability 1 -> 0.75 -> 0.56 -> 0.42 under a run of background frames.
    assert post(off, view, crop)["mask"].all() and post(off, view, crop)["mask"].all()
    assert not post(off, view, crop)["mask"].any()
    post.reset()
    assert post(on, view, crop)["mask"].all()
    cls = make_postprocessor("cls", model.spec, ["a", "b"], PostConfig(ema=0.5))
    cls(np.array([4.0, -4.0]), view, crop)
    assert cls(np.array([-4.0, 4.0]), view, crop)["probs"]["a"] == pytest.approx(0.5, abs=1e-3)


def test_dicom_cine_replays_every_frame_with_its_times(model, shared_data, tmp_path):
    path = shared_data / "dicom" / "US-MONO2-8-8x-execho.dcm"
    result = CliRunner().invoke(cli, ["run", str(model.path), "--source", str(path), "--sink",
                                      f"video:{tmp_path / 'o.mp4'}", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}",
                                      "--report", str(tmp_path / "r.json"), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames_in"] == report["frames_out"] == 8 and report["dropped"]["total"] == 0
    for stage in ("preprocess", "infer", "postprocess", "capture_to_output", "capture_to_sink"):
        assert {"p50_ms", "p95_ms", "p99_ms"} <= set(report["stages"][stage])
    assert report["fps_out"] > 0
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [line["source_time_ms"] for line in lines] == pytest.approx([100.0 * i for i in range(8)])
    capture = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8


def test_dicom_ultrasound_regions_are_the_crop(model, shared_data):
    """The file's own regions beat detection: one tissue region (OBXXXX1A), or two side by
    side (the ALOKA dual-mode file), one result per region with --region all."""
    source = open_source(str(shared_data / "dicom" / "OBXXXX1A.dcm"))
    assert len(source.regions) == 1
    sink = Collect()
    _pipeline(model, source, [sink], max_frames=1).run()
    x, y, w, h = source.regions[0]  # the file's region runs one pixel past the frame: clipped
    assert sink.results[0].boxes == [(x, y, min(w, 800 - x), min(h, 600 - y))]
    dual = open_source(str(shared_data / "dicom" / "gdcm-US-ALOKA-16.dcm"))
    assert len(dual.regions) == 2
    sink = Collect()
    _pipeline(model, dual, [sink], max_frames=1, tracker=RegionTracker(pick="all")).run()
    assert sink.results[0].boxes == list(dual.regions) and len(sink.results[0].outputs) == 2


def test_several_regions_give_one_result_each(model):
    frame = np.zeros((120, 300), np.uint8)
    frame[10:110, 10:140] = 120
    frame[10:110, 160:290] = 60

    class TwoRegions(Source):
        scheme = "two"

        def __init__(self):
            self.sent = False

        def read(self):
            if self.sent:
                return None
            self.sent = True
            return Frame(frame, 0, time.monotonic(), regions=((10, 10, 130, 100), (160, 10, 130, 100)))

    sink = Collect()
    _pipeline(model, TwoRegions(), [sink], tracker=RegionTracker(pick="all")).run()
    result = sink.results[0]
    assert result.boxes == [(10, 10, 130, 100), (160, 10, 130, 100)]
    assert [o["mask"].shape for o in result.outputs] == [(100, 130), (100, 130)]


# ---------------------------------------------------------------- faults, policy, soak


@pytest.mark.parametrize("prepare_thread", [False, True], ids=["inline", "prepare-thread"])
def test_injected_faults_are_counted_and_survived(model, prepare_thread):
    faults = Faults(drop={2}, corrupt={4}, garbage={5, 6}, unplug={7}, stall={9: 0.3}, resize={11: (200, 260)})
    # A replay (every frame in order, so each fault lands) of a source that reconnects like a device.
    source = FaultySource(open_source("phantom:?fps=0&frames=4&size=64&canvas=240x320&loop=1"), faults)
    sink = Collect()
    report = _pipeline(model, source, [sink], max_frames=12, stall_timeout_s=0.1,
                       reconnect_backoff_s=(0.01, 0.05), prepare_thread=prepare_thread).run()
    counts = report["counts"]
    assert report["frames_out"] == 12
    assert counts["skipped_corrupt"] == 3  # one decode failure, two frames that are not images
    assert counts["reconnects"] == 1 and source.opens == 2
    assert counts["stalls"] >= 1
    assert report["dropped"]["source"] >= 1  # the dropped frame shows as a gap in the indices
    assert report["region_changes"] >= 1  # the resolution change moved the crop
    assert sink.results[-1].frame.image.shape[:2] == (200, 260)
    bx, by, bw, bh = sink.results[-1].boxes[0]
    assert bx + bw <= 260 and by + bh <= 200


class Flaky:
    """A model that fails on chosen frames (by call number)."""

    def __init__(self, model, fail: set[int]):
        self.model, self.fail, self.calls = model, fail, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def preprocess(self, crops):
        return self.model.preprocess(crops)

    def infer(self, x):
        self.calls += 1
        if self.calls in self.fail:
            raise RuntimeError("injected backend failure")
        return self.model.infer(x)


class FlakyPreprocess(Flaky):
    def preprocess(self, crops):
        self.calls += 1
        if self.calls in self.fail:
            raise ValueError("injected preprocessing failure")
        return self.model.preprocess(crops)

    def infer(self, x):
        return self.model.infer(x)


@pytest.mark.parametrize("flaky", [Flaky, FlakyPreprocess])
@pytest.mark.parametrize("prepare_thread", [False, True], ids=["inline", "prepare-thread"])
def test_backend_errors_are_counted_then_fatal_when_persistent(model, flaky, prepare_thread):
    """A failing frame, in inference or in preprocessing (on the prepare thread or not), is
    counted and skipped; failures in a row end the run with the last error."""
    report = _pipeline(flaky(model, {2, 3}), open_source(PHANTOM), max_backend_errors=3,
                       prepare_thread=prepare_thread).run()
    assert report["counts"]["backend_errors"] == 2 and report["frames_out"] == 2
    with pytest.raises(BackendFailedError, match="3 frames in a row; last error: injected"):
        _pipeline(flaky(model, set(range(1, 100))), open_source(PHANTOM), max_backend_errors=3,
                  prepare_thread=prepare_thread).run()


class Slow:
    def __init__(self, model, seconds):
        self.model, self.seconds = model, seconds

    def __getattr__(self, name):
        return getattr(self.model, name)

    def preprocess(self, crops):
        return self.model.preprocess(crops)

    def infer(self, x):
        time.sleep(self.seconds)
        return self.model.infer(x)


@pytest.mark.parametrize("prepare_thread", [False, True], ids=["inline", "prepare-thread"])
def test_live_source_keeps_only_the_newest_frame(model, prepare_thread):
    """A 200 fps source into a ~30 fps model: stale frames are dropped, and the frame taken
    is always fresh (it waited at most about one inference)."""
    source = open_source("phantom:?fps=200&frames=4&size=64&canvas=240x320")
    report = _pipeline(Slow(model, 0.03), source, max_frames=15, prepare_thread=prepare_thread).run()
    assert report["dropped"]["stale"] > 15
    assert report["stages"]["frame_age_at_pickup"]["p50_ms"] < 40


class SlowSink(Sink):
    scheme = "slow"

    def write(self, result) -> None:
        time.sleep(0.05)


def test_a_slow_sink_never_stalls_inference(model):
    source = open_source("phantom:?fps=300&frames=4&size=64&canvas=240x320")
    report = _pipeline(model, source, [SlowSink()], max_frames=40).run()
    assert report["dropped"]["sink"] > 0 and report["frames_out"] == 40
    assert report["stages"]["sink"]["count"] < 40


def test_soak_memory_stays_bounded(model):
    """Thousands of frames at an accelerated rate: traced memory after warm-up does not grow."""
    source = open_source("phantom:?fps=2000&frames=4&size=64&canvas=120x160")
    pipeline = _pipeline(model, source, [Collect.__new__(Collect)], max_frames=1500, ema=0.5)
    pipeline.sinks = [open_sink("none:")]
    samples = []

    def sample(result):
        if result.frame.index and len(samples) < 400 and pipeline._processed % 100 == 0:
            samples.append(tracemalloc.get_traced_memory()[0])

    pipeline.on_result = sample
    tracemalloc.start()
    try:
        report = pipeline.run()
    finally:
        tracemalloc.stop()
    assert report["frames_out"] == 1500
    warm, end = samples[3], samples[-1]
    assert end - warm < 2_000_000, f"traced memory grew by {(end - warm) / 1e6:.1f} MB over the soak"


# ---------------------------------------------------------------- sources


class FakeCapture:
    def __init__(self, target, api, log):
        self.target, self.api, self.log, self.opened = target, api, log, True
        log.append(("open", target, api))

    def isOpened(self):  # noqa: N802  (OpenCV's name)
        return self.opened

    def set(self, prop, value):
        self.log.append(("set", prop, value))
        return True

    def get(self, prop):
        return 60.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        return True, np.full((72, 128, 3), (10, 20, 30), np.uint8)

    def release(self):
        self.log.append(("release",))


def test_v4l2_sets_fourcc_before_size_and_a_one_frame_buffer():
    log = []
    options = SourceOptions(capture_factory=lambda target, api: FakeCapture(target, api, log))
    source = open_source("v4l2:/dev/video2?width=1920&height=1080&fps=60&fourcc=MJPG", options)
    source.open()
    frame = source.read()
    source.close()
    props = [entry[1] for entry in log if entry[0] == "set"]
    assert log[0] == ("open", "/dev/video2", cv2.CAP_V4L2)
    assert props == [cv2.CAP_PROP_FOURCC, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS,
                     cv2.CAP_PROP_BUFFERSIZE]
    assert dict((e[1], e[2]) for e in log if e[0] == "set")[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert dict((e[1], e[2]) for e in log if e[0] == "set")[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
    assert tuple(frame.image[0, 0]) == (30, 20, 10)  # BGR from OpenCV -> RGB
    assert open_source("v4l2:0", options).device() == 0


def test_gstreamer_pipeline_gets_a_dropping_appsink():
    log = []
    options = SourceOptions(capture_factory=lambda target, api: FakeCapture(target, api, log))
    source = open_source("gst:nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! appsink",
                         options)
    source.open()
    assert log[0][1].endswith("appsink drop=1 max-buffers=1") and log[0][2] == cv2.CAP_GSTREAMER
    with pytest.raises(InputError, match="must end in appsink"):
        open_source("gst:videotestsrc ! autovideosink", options).open()
    from usfm_edge.runtime.sources.capture import opencv_has

    if not opencv_has("GStreamer"):  # pip's OpenCV: a clear message instead of a silent failure
        with pytest.raises(DependencyError, match="no GStreamer support"):
            open_source("gst:videotestsrc ! appsink").open()


def test_uris_and_paths_name_their_source(tmp_path, shared_data):
    assert parse_uri("v4l2:/dev/video0?width=1920&fourcc=MJPG") == ("v4l2", "/dev/video0",
                                                                     {"width": "1920", "fourcc": "MJPG"})
    assert parse_uri("rtsp://10.0.0.5:554/live?x=1")[:2] == ("rtsp", "rtsp://10.0.0.5:554/live?x=1")
    assert parse_uri(str(shared_data / "dicom" / "US1_UNCR.dcm"))[0] == "dicom"
    assert parse_uri(str(tmp_path))[0] == "images"
    with pytest.raises(InputError, match="no such file or folder, and not a known scheme"):
        parse_uri("nosuch.mp4")
    with pytest.raises(InputError, match="width='wide' is not an integer"):
        open_source("v4l2:0?width=wide").properties()


def test_an_unplugged_capture_is_reopened_with_backoff(model):
    log, state = [], {"reads": 0}

    class Unplugging(FakeCapture):
        def read(self):
            state["reads"] += 1
            return (False, None) if state["reads"] in (3, 4) else super().read()

    options = SourceOptions(capture_factory=lambda target, api: Unplugging(target, api, log))
    source = open_source("v4l2:0", options)
    report = _pipeline(model, source, max_frames=5, reconnect_backoff_s=(0.01, 0.02),
                       tracker=RegionTracker(crop=False)).run()
    assert report["counts"]["reconnects"] == 2 and sum(e[0] == "open" for e in log) == 3


def test_corrupt_files_in_a_folder_are_skipped(model, tmp_path):
    image = np.full((64, 64), 90, np.uint8)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), image)
    (tmp_path / "f1.png").write_bytes(b"not a png")
    report = _pipeline(model, open_source(str(tmp_path)), tracker=RegionTracker(crop=False)).run()
    assert report["frames_out"] == 2 and report["counts"]["skipped_corrupt"] == 1


def test_corrupt_video_is_one_clear_error(bundle, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 2048)
    result = CliRunner().invoke(cli, ["run", str(bundle), "--source", str(bad), "--quiet"])
    assert result.exit_code == 2 and "clip.mp4" in result.output and "Traceback" not in result.output


def test_openigtlink_images_from_a_local_server(model):
    pyigtl = pytest.importorskip("pyigtl")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    try:
        source = open_source(f"igtl:127.0.0.1:{port}?device=Image_Reference&timeout=5")
        source.open()
        image = np.zeros((1, 96, 128), np.uint8)
        image[0, 20:80, 30:100] = 150
        received = None
        for _ in range(100):  # the client connects in the background
            server.send_message(pyigtl.ImageMessage(image, device_name="Image_Reference"), wait=True)
            try:
                received = source.read()
                break
            except UsfmEdgeError:
                continue
        source.close()
    finally:
        server.stop()
    assert received is not None and received.image.shape == (96, 128)
    np.testing.assert_array_equal(received.image, image[0])


def test_a_prepare_thread_only_where_inference_leaves_a_core(bundle):
    """By default inference gets every core but one and the prepare thread the last one; on a
    single core (or with --threads at the core count) the inference thread prepares."""
    from usfm_edge.runtime.pipeline import default_threads, spare_core, usable_cores

    cores = usable_cores()
    assert not spare_core(None) and not spare_core(cores) and spare_core(1) == (cores > 1)
    assert default_threads() == max(1, cores - 1) and spare_core(default_threads()) == (cores > 1)
    opencv_threads = cv2.getNumThreads()
    try:
        for threads in (None, 1, cores):
            pipeline = build_pipeline(RunOptions(bundle=bundle, source=PHANTOM, threads=threads, max_frames=2))
            assert pipeline.config.prepare_thread == spare_core(threads or default_threads())
            assert pipeline.run()["frames_out"] == 2
    finally:
        cv2.setNumThreads(opencv_threads)  # --threads 1 capped OpenCV for the whole process


# ---------------------------------------------------------------- sinks


def test_rle_round_trip():
    rng = np.random.default_rng(0)
    for mask in (rng.random((17, 23)) > 0.5, np.ones((5, 4), bool), np.zeros((3, 3), bool)):
        np.testing.assert_array_equal(rle_to_mask(mask_to_rle(mask)), mask.astype(np.uint8))


def test_file_sinks_write_what_they_are_given(bundle, tmp_path):
    sinks = [f"video:{tmp_path / 'v.avi'}", f"images:{tmp_path / 'frames'}",
             f"jsonl:{tmp_path / 'r.jsonl'}?masks=polygons"]
    report = build_pipeline(RunOptions(bundle=bundle, source=PHANTOM, sinks=sinks)).run()
    assert report["frames_out"] == 4
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 4
    capture = cv2.VideoCapture(str(tmp_path / "v.avi"))
    ok, first = capture.read()
    assert ok and first.shape == (240, 320, 3)
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(records) == 4 and isinstance(records[0]["regions"][0]["mask"], list)


def test_browser_view_serves_a_page_and_an_mjpeg_stream(bundle):
    pipeline = build_pipeline(RunOptions(bundle=bundle, source="phantom:?fps=30&frames=4&size=64&canvas=240x320",
                                         sinks=["http:0"]))
    sink = pipeline.sinks[0]
    assert sink.host == "127.0.0.1"  # never on the hospital network unless asked
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        page = urllib.request.urlopen(sink.url, timeout=5).read().decode()
        assert '<img id="view" src="/stream.mjpg"' in page
        stream = urllib.request.urlopen(sink.url + "stream.mjpg", timeout=5)
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"\xff\xd9") < 2:
            data += stream.read(4096)
        start = data.index(b"\xff\xd8")
        jpeg = data[start:data.index(b"\xff\xd9", start) + 2]
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (240, 320, 3)
        stats = json.loads(urllib.request.urlopen(sink.url + "stats.json", timeout=5).read())
        assert stats["frames_out"] >= 1
    finally:
        pipeline.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_window_sink_explains_why_it_cannot_open():
    from usfm_edge.runtime.sinks.window import can_show_windows

    problem = can_show_windows()
    if problem is None:
        pytest.skip("this machine can show windows")
    with pytest.raises(UsfmEdgeError, match="sink"):
        open_sink("window:", SinkContext())


# ---------------------------------------------------------------- backends and bundles


def test_backend_and_precision_must_match_the_bundle(bundle):
    with pytest.raises(BundleMismatchError, match="no artifact that backend auto at int8"):
        load_bundle(bundle, precision="int8")
    result = CliRunner().invoke(cli, ["run", str(bundle), "--backend", "tensorrt", "--quiet"])
    assert result.exit_code == 2 and "TensorRT" in result.output or "tensorrt" in result.output


def test_openvino_runs_the_portable_onnx(bundle, model):
    ov = load_bundle(bundle, backend="openvino")
    x = model.preprocess([np.full((64, 64), 100, np.uint8)])
    np.testing.assert_allclose(ov.infer(x), model.infer(x), atol=1e-3)


# ---------------------------------------------------------------- the command on a cart


def _run_cli(args: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "usfm_edge.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}, **kw)


def test_sigterm_stops_cleanly_with_files_finalised(bundle, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)  # a cart's read-only home
    process = _run_cli([str(bundle), "--source", "phantom:?fps=30&frames=4&size=64&canvas=240x320", "--sink",
                        f"video:{tmp_path / 'o.mp4'}", "--report", str(tmp_path / "r.json"), "--quiet"],
                       env={"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "o.mp4").exists():
        time.sleep(0.2)
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 143, output  # SIGTERM's documented code, after the files are finished
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames_out"] > 5
    capture = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == report["frames_out"]


def test_run_command_on_the_phantom(bundle, tmp_path):
    result = CliRunner().invoke(cli, ["run", str(bundle), "--source", PHANTOM, "--sink",
                                      f"video:{tmp_path / 'out.mp4'}", "--max-frames", "3", "--report",
                                      str(tmp_path / "r.json"), "--threads", "1", "--roi", "40,40,120,120"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames_out"] == 3 and report["model"]["backend"] == "onnxruntime"
    assert "frames out of" in result.output
    bad = CliRunner().invoke(cli, ["run", str(bundle), "--roi", "1,2,3"])
    assert bad.exit_code == 2 and "--roi" in bad.output


def test_pipeline_benchmark_reports_both_runs_per_source_and_sink(bundle, tmp_path):
    """Per sink a throughput and a paced run: the browser view with a viewer that really
    received frames (its latency measured to the viewer's socket), a video, and none:."""
    from usfm_edge.bench.pipeline import bench_pipeline, flicker_table, pipeline_table

    sinks = ("http:0", f"video:{tmp_path / 'b.avi'}", "none:")
    result = bench_pipeline(bundle, sources=("phantom:?size=64&canvas=240x320&frames=2",), sinks=sinks, frames=20,
                            warmup=2, fps=60.0, flicker_frames=6)
    (row,) = result["sources"]
    assert row["bare"]["fps"] > 0 and [s["sink"] for s in row["sinks"]] == list(sinks)
    http, video, none = row["sinks"]
    for s in row["sinks"]:
        assert s["throughput"]["fps"] > 0 and s["paced"]["p50_ms"] > 0 and s["paced"]["p99_over_p50"] >= 1.0
        assert {"preprocess", "infer", "postprocess", "capture_to_sink"} <= set(s["throughput"]["stages"])
    assert http["paced"]["latency_stage"] == "capture_to_viewer" and http["throughput"]["viewer"]["frames"] > 0
    assert http["throughput"]["sinks"][0]["frames_sent"] > 0
    assert video["paced"]["latency_stage"] == none["paced"]["latency_stage"] == "capture_to_sink"
    assert row["flicker"]["ema_1"]["mask_pairs"] == 5 and row["flicker"]["ema_0.5"]["mask_pairs"] == 5
    assert result["backend"] == "onnxruntime" and result["threads"] >= 1
    assert len(pipeline_table(result)) == 2 + 3 and len(flicker_table(result)) == 3


def test_torch_baseline_runs_the_bundles_source_model(bundle, model):
    pytest.importorskip("torch")
    baseline = load_bundle(bundle, backend="torch")
    x = model.preprocess([np.full((64, 64), 100, np.uint8)])
    assert baseline.backend == "torch" and baseline.session.precision == "fp32"
    np.testing.assert_allclose(baseline.infer(x), model.infer(x), atol=1e-4)
