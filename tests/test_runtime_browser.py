"""The browser view in a real browser: headless Chromium (Debian's ``chromium``) opens the
``http:`` sink's page on 127.0.0.1. The MJPEG stream must show the overlay where the
phantom's lesion is, and the stats panel must update and show fps and latency.

The masks come from the phantom's own truth (an injected postprocessor), so what is checked
is the display path, overlay -> JPEG -> MJPEG -> the browser's pixels, exactly and
independently of how well a test model segments. Skips where chromium is not installed;
CI installs it (``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from usfm_edge.backends.bundle import load_bundle
from usfm_edge.contracts.region import RegionTracker
from usfm_edge.runtime.metrics import RunMetrics
from usfm_edge.runtime.overlay import PALETTE
from usfm_edge.runtime.pipeline import Pipeline, PipelineConfig
from usfm_edge.runtime.sinks import SinkContext, open_sink
from usfm_edge.runtime.sources import open_source
from tests.runtime_fixtures import runtime_bundle  # noqa: F401  (a fixture)

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="chromium not installed (apt-get install -y chromium)")
WINDOW = (480, 400)  # W, H: the 320 px wide screen shows at its own size, below the stats panel
BROWSER_TIMEOUT_S = 60


class TruthMasks:
    """A postprocessor that returns the phantom's true lesion mask for each crop."""

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth

    def reset(self) -> None:
        pass

    def __call__(self, output, view, crop, region=0):
        x, y, w, h = view.box
        return {"mask": self.truth[y:y + h, x:x + w].copy(), "areas_px": {}}


@pytest.fixture
def served(runtime_bundle):
    """A live phantom screen (one frame, 30 fps) streamed by the browser view, while the test
    runs; yields (url, screen, truth)."""
    source = open_source("phantom:?fps=30&frames=1&size=128&canvas=240x320&seed=3")
    source.open()
    screen, truth = source.screens[0], source.truth[0]
    assert truth.sum() > 1000  # this seed's lesion: a few thousand pixels
    model = load_bundle(runtime_bundle)
    metrics = RunMetrics()
    sink = open_sink("http:0", SinkContext(fps=30.0, labels=tuple(model.labels), task="seg", stats=metrics.report,
                                           record=metrics.time))
    pipeline = Pipeline(source, model, TruthMasks(truth), RegionTracker(), [sink], PipelineConfig(), metrics=metrics)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        yield sink.url, screen, truth
    finally:
        pipeline.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           f"--window-size={WINDOW[0]},{WINDOW[1]}", *args, url],
                          capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)


def test_the_stream_shows_the_overlay_where_the_lesion_is(served, tmp_path):
    url, screen, truth = served
    shot_path = tmp_path / "shot.png"
    chromium(url, tmp_path / "profile", "--virtual-time-budget=3000", f"--screenshot={shot_path}")
    shot = cv2.cvtColor(cv2.imread(str(shot_path)), cv2.COLOR_BGR2RGB).astype(np.int16)
    # Where the stream's image is on the page: the screen itself, matched in the screenshot.
    gray = cv2.cvtColor(shot.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    scores = cv2.matchTemplate(gray, screen, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    assert best > 0.8, f"the phantom screen is not on the page (best match {best:.2f})"
    shown = shot[y:y + screen.shape[0], x:x + screen.shape[1]]
    # The overlay's fill blends the palette colour into gray: red minus blue is its signature.
    signature = np.array(PALETTE[0]) @ np.array([1, 0, -1])
    warmth = shown[..., 0] - shown[..., 2]
    kernel = np.ones((5, 5), np.uint8)
    inside = cv2.erode(truth, kernel, iterations=1) > 0
    outside = cv2.dilate(truth, kernel, iterations=3) == 0
    assert np.median(warmth[inside]) > 0.25 * signature  # alpha 0.35 of the colour, less JPEG's chroma loss
    assert np.percentile(np.abs(warmth[outside]), 99) < 0.15 * signature  # gray everywhere else


def test_the_stats_panel_updates_with_fps_and_latency(served, tmp_path):
    url, _, _ = served
    dom = chromium(url, tmp_path / "profile", "--virtual-time-budget=4000", "--dump-dom").stdout
    panel = re.search(r'<div id="stats" data-updates="(\d+)">([^<]*)</div>', dom)
    assert panel is not None, dom[:2000]
    updates, text = int(panel.group(1)), panel.group(2)
    assert updates >= 2, text  # polled and redrawn more than once
    fps = re.search(r"([\d.]+) fps", text)
    latency = re.search(r"capture-&gt;viewer ([\d.]+) ms \(p50\)", text)
    frames = re.search(r"frames (\d+)", text)
    assert fps and latency and frames, text
    assert float(fps.group(1)) > 0 and float(latency.group(1)) > 0 and int(frames.group(1)) > 0
