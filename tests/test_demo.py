"""The demo: ``usfm-edge demo --fast`` runs the whole chain to its report, once (about two
minutes on 2 CPU cores); every test below reads what that one run wrote."""

from __future__ import annotations

import io
import json
import math
import re
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from PIL import Image

from usfm_edge.cli.demo import demo
from usfm_edge.errors import InputError
from usfm_edge.demo.report import SECTIONS, print_summary, render_html
from usfm_edge.demo.stages import BACKENDS


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(demo, ["--fast", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for key in ("src", "href"):
            if attrs.get(key):
                self.links.append(attrs[key])


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_the_run_ends_with_the_summary_table(demo_dir):
    _, output = demo_dir
    assert "Dice on the" in output and "Latency" in output and "report.html" in output


def test_report_has_every_section_and_every_asset(demo_dir):
    out, _ = demo_dir
    page = (out / "report.html").read_text()
    parser = _Page()
    parser.feed(page)
    assert set(SECTIONS) <= set(parser.ids)
    for heading in SECTIONS.values():
        assert f"<h2>{heading}</h2>" in page
    assert parser.links, "the report links no assets"
    for link in parser.links:
        assert not re.match(r"[a-z]+://", link), f"{link}: the report must not fetch anything"
        assert (out / link).is_file(), f"{link}: referenced by report.html but missing"


def test_summary_has_finite_dice_and_latency_per_backend(demo_dir):
    out, _ = demo_dir
    summary = json.loads((out / "summary.json").read_text())
    dice = summary["dice"]
    assert _finite(dice["teacher_fp32"]) and _finite(dice["student_fp32"])
    for backend in BACKENDS:
        assert summary["export"]["backends"][backend]["status"] == "passed"
        assert _finite(dice["student_int8"][backend])
    timed = {(r["model"], r["precision"], r["backend"]): r for r in summary["latency"]}
    cells = [("teacher", "fp32", "torch"), ("student", "fp32", "torch")] + [("student", "int8", b) for b in BACKENDS]
    for key in cells:
        assert _finite(timed[key]["p50_ms"]) and timed[key]["p50_ms"] > 0 and _finite(timed[key]["fps"])
    assert summary["run"]["frames"] == summary["plan"]["cine_frames"] and _finite(summary["run"]["dice_mean"])
    assert summary["label_fractions"][0]["fraction"] == summary["plan"]["label_fraction"]  # the teacher's run


def test_overlay_animation_plays(demo_dir):
    out, _ = demo_dir
    summary = json.loads((out / "summary.json").read_text())
    with Image.open(out / summary["report"]["animation"]) as gif:
        assert gif.is_animated and gif.n_frames > 1
        gif.seek(gif.n_frames - 1)
        assert gif.size[0] > 0
    assert (out / summary["run"]["video"]).stat().st_size > 0


def test_a_failed_gate_is_shown_not_hidden(demo_dir):
    from rich.console import Console

    out, _ = demo_dir
    summary = json.loads((out / "summary.json").read_text())
    summary["export"]["backends"]["openvino"] = {"status": "gate failed", "message": "openvino int8 loses 0.2 dice"}
    summary["dice"]["student_int8"]["openvino"] = None
    page = render_html(summary)
    assert '<tr class="fail">' in page and "gate FAILED: openvino int8 loses 0.2 dice" in page
    console = Console(file=io.StringIO(), width=200)
    print_summary(summary, console)
    assert "gate FAILED" in console.file.getvalue()


def test_rerun_into_the_same_folder_starts_over(tmp_path):
    """Only the demo's own outputs are removed before a new run; other files stay."""
    from usfm_edge.demo.chain import clear

    target = tmp_path / "again"
    (target / "pretrain" / "previews").mkdir(parents=True)
    (target / "pretrain" / "previews" / "step_9999999.png").write_bytes(b"stale")
    (target / "summary.json").write_text("{}")
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="a demo did not make"):  # no marker: not the demo's folder
        clear(target)
    assert (target / "summary.json").is_file()
    (target / ".usfm-edge-demo").write_text("")
    clear(target)
    assert sorted(p.name for p in target.iterdir()) == [".usfm-edge-demo", "notes.txt"]
