"""The demo's outputs for people: DIR/report.html with its assets in DIR/report/ (relative
links, nothing fetched from anywhere), DIR/summary.json with every number, and the summary
tables printed at the end of the run."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from string import Template

import numpy as np

from usfm_edge.demo.stages import CineCollector, Paths

SECTIONS = {  # id -> heading, in page order
    "summary": "Summary",
    "overlay": "The runtime on a phantom cine",
    "frames": "Sample frames",
    "reconstructions": "SF-MIM reconstructions",
    "label-fractions": "Labels used vs Dice",
    "latency": "Latency",
    "machine": "Machine and libraries",
}
GIF_FRAME_MS = 100
RED = (230, 40, 40)


# --------------------------------------------------------------------------- assets


def write_animation(collector: CineCollector, path: Path) -> int:
    """The overlays the pipeline drew, as an animated GIF (browsers cannot play OpenCV's
    mp4v). Returns the frame count."""
    from PIL import Image

    frames = [Image.fromarray(o) for o in collector.overlays if o is not None]
    if not frames:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0)
    return len(frames)


def write_sample_frames(collector: CineCollector, folder: Path, count: int = 4) -> list[tuple[int, str]]:
    """A few cine frames: the pipeline's overlay with the truth's outline in red."""
    import cv2
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    n = len(collector.overlays)
    written = []
    for i in sorted({round(k) for k in np.linspace(0, n - 1, min(count, n))}) if n else []:
        image = collector.overlays[i].copy()
        contours, _ = cv2.findContours(collector.truths[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(image, contours, -1, RED, 1, cv2.LINE_AA)
        path = folder / f"cine_{i:03d}.png"
        Image.fromarray(image).save(path)
        written.append((i, path.name))
    return written


def copy_assets(sources: list[Path], folder: Path, prefix: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for source in sources:
        name = f"{prefix}{source.name}"
        shutil.copyfile(source, folder / name)
        names.append(name)
    return names


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_label_fractions(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for init in sorted({r["init"] for r in rows}):
        cells = sorted((r for r in rows if r["init"] == init), key=lambda r: r["fraction"])
        label = "SF-MIM encoder" if init == "pretrained" else "from scratch"
        ax.plot([100 * r["fraction"] for r in cells], [r["dice"] for r in cells], marker="o", label=label)
    ax.set_xscale("log")
    fractions = sorted({r["fraction"] for r in rows})
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_xlabel("training labels used (%)")
    ax.set_ylabel("test Dice")
    ax.set_title("tiny demo runs on synthetic frames, equal step budget", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    labels = [f"{r['model']} {r['precision']}\n{r['backend']}" for r in rows]
    values = [r["p50_ms"] for r in rows]
    colours = ["#8a8f98" if r["backend"] == "torch" else "#4c9be8" if r["precision"] == "fp32" else "#f0a030"
               for r in rows]
    fig, ax = plt.subplots(figsize=(6, 0.55 * len(rows) + 1.2), dpi=110)
    bars = ax.barh(range(len(rows)), values, color=colours)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    for bar, r in zip(bars, rows):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r['p50_ms']:.2f} ms, {r['fps']:.0f} fps",
                va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.45)
    ax.set_xlabel("p50 latency per frame (ms, batch 1, model call only)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- tables


def dice_rows(summary: dict) -> list[dict]:
    """Teacher fp32, student fp32, student INT8 per backend: all on the same test frames."""
    dice = summary["dice"]
    rows = [{"step": "fine-tuned teacher", "precision": "fp32", "backend": "torch", "dice": dice["teacher_fp32"],
             "note": f"{summary['teacher']['labelled_frames']} labelled frames"},
            {"step": "distilled student", "precision": "fp32", "backend": "torch", "dice": dice["student_fp32"],
             "note": f"{summary['models']['macs_ratio']:.1f}x fewer MACs"}]
    for backend, result in summary["export"]["backends"].items():
        failed = result["status"] != "passed"
        note = ("gate FAILED: " + result["message"] if failed
                else f"gate passed: drop {result['drop']:+.4f} (max {result['max_drop']})")
        rows.append({"step": "INT8 bundle", "precision": "int8", "backend": backend,
                     "dice": dice["student_int8"].get(backend), "note": note, "failed": failed})
    return rows


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_summary(summary: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    dice = Table(title=f"Dice on the {summary['dice']['frames']} held-out test frames")
    for column in ("step", "precision", "backend", "Dice", "note"):
        dice.add_column(column, justify="right" if column == "Dice" else "left")
    for r in dice_rows(summary):
        dice.add_row(r["step"], r["precision"], r["backend"], _num(r["dice"]), Text(r["note"]),  # not markup
                     style="red" if r.get("failed") else None)
    console.print(dice)
    latency = Table(title=f"Latency (batch 1, model call only, {summary['threads']} CPU thread(s))")
    for column in ("model", "precision", "backend", "p50 ms", "fps"):
        latency.add_column(column, justify="right" if column in ("p50 ms", "fps") else "left")
    for r in summary["latency"]:
        latency.add_row(r["model"], r["precision"], r["backend"], _num(r["p50_ms"], 2), f"{r['fps']:.0f}")
    console.print(latency)
    run = summary["run"]
    console.print(f"run: {run['frames']} cine frames on {run['backend']}, {run['fps_out']:.1f} fps end to end, "
                  f"live Dice {_num(run['dice_mean'])}; video {run['video']}")


# --------------------------------------------------------------------------- HTML

PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>usfm-edge demo report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f5f6f8; color: #1d232b; }
header { background: #1d232b; color: #fff; padding: 1.4em 2em; }
header h1 { margin: 0 0 .3em 0; font-size: 1.6em; }
header p { margin: .2em 0; color: #c9d1db; }
.chain { font-size: .95em; color: #ffd27a; }
main { max-width: 1100px; margin: 0 auto; padding: 1em 2em 3em; }
section { background: #fff; border-radius: 8px; padding: 1em 1.5em; margin: 1.2em 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { margin-top: .2em; font-size: 1.25em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .92em; }
th, td { padding: .35em .8em; border-bottom: 1px solid #e3e6ea; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { color: #b3261e; font-weight: 600; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
figcaption { font-size: .85em; color: #5b6470; margin-top: .3em; }
img.pixel { image-rendering: pixelated; }
.note { color: #5b6470; font-size: .9em; }
</style>
</head>
<body>
<header>
<h1>usfm-edge demo</h1>
<p class="chain">phantom frames &rarr; SF-MIM pretraining &rarr; fine-tuning ($fraction_pct % of the labels)
&rarr; distillation &rarr; INT8 export through the accuracy gate &rarr; runtime on a scanner cine &rarr; latency</p>
<p>$mode mode, $created, $wall_s s on this machine. Tiny models trained for seconds on synthetic
phantom frames: the numbers show that the chain works end to end, not how well a real model does.</p>
</header>
<main>
$sections
</main>
</body>
</html>
""")


def _table(headers: list[str], rows: list[list[str]], numeric: frozenset[int] | set[int] = frozenset(),
           row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if i in numeric else f"<td>{html.escape(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(src: str, caption: str, *, width: int | None = None, pixel: bool = False) -> str:
    attrs = f' width="{width}"' if width else ""
    cls = ' class="pixel"' if pixel else ""
    return (f'<figure><img src="{html.escape(src)}"{attrs}{cls} alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{SECTIONS[key]}</h2>\n{body}\n</section>'


def render_html(summary: dict) -> str:
    """The page; its images are ``summary["report"]``'s paths, relative to it."""
    assets = summary["report"]
    dice = dice_rows(summary)
    run, pre = summary["run"], summary["pretrain"]
    summary_body = (
        f"<p>Dice of each step on the same {summary['dice']['frames']} held-out test frames "
        f"({summary['data']['organ']} phantom, {summary['plan']['img_size']} px model input).</p>"
        + _table(["step", "precision", "backend", "Dice", "note"],
                 [[r["step"], r["precision"], r["backend"], _num(r["dice"]), r["note"]] for r in dice], {3},
                 ["fail" if r.get("failed") else "" for r in dice])
        + f"<p>Latency per frame, batch 1, model call only, {summary['threads']} CPU thread(s) (p50 of "
        f"{summary['latency'][0]['calls']} calls after a warm-up); fps = 1000 / p50.</p>"
        + _table(["model", "precision", "backend", "p50 ms", "p90 ms", "fps"],
                 [[r["model"], r["precision"], r["backend"], _num(r["p50_ms"], 2), _num(r["p90_ms"], 2),
                   f"{r['fps']:.0f}"] for r in summary["latency"]], {3, 4, 5})
        + "<p>Time per stage.</p>"
        + _table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in summary["stage_s"].items()], {1}))
    overlay_body = (
        f"<p>{run['frames']} frames of a phantom cine in scanner UI chrome, streamed through the "
        f"{html.escape(run['backend'])} {run['precision'].upper()} bundle by the runtime (<code>usfm-edge run</code>'s "
        f"pipeline: scan-region detection, crop, inference, temporal smoothing, overlay): {run['fps_out']:.1f} fps end "
        "to end, "
        f"inference p50 {_num(run['infer_p50_ms'], 2)} ms, live Dice against the phantom's truth "
        f"{_num(run['dice_mean'])}.</p>"
        + _figure(assets["animation"], "overlay (animated)")
        + f'<p><a href="{html.escape(assets["video"])}">Download the overlay video (mp4)</a></p>')
    frames_body = (
        "<p>Cine frames: the model's mask (filled) and the phantom's truth (red outline), with each frame's Dice.</p>"
        + '<div class="gallery">'
        + "".join(_figure(f["src"], f"frame {f['index']}: Dice {f['dice']:.3f}") for f in assets["frames"])
        + "</div><p>The teacher on held-out test frames: prediction in green, truth in red.</p>"
        + '<div class="gallery">'
        + "".join(_figure(src, f"test frame {i}", width=192, pixel=True) for i, src in enumerate(assets["previews"]))
        + "</div>")
    recon_body = (
        f"<p>Spatial-frequency masked image modelling: each row is input | corrupted | reconstruction. "
        f"{pre['steps']} steps on {summary['data']['unlabeled_frames']} unlabelled frames of every organ; "
        f"loss {pre['loss_first']:.3f} &rarr; {pre['loss_last']:.3f}.</p><div class=\"gallery\">"
        + "".join(_figure(f["src"], f"step {f['step']}", width=384, pixel=True) for f in assets["reconstructions"])
        + "</div>")
    fractions = summary["label_fractions"]
    fraction_body = (
        "<p>Fine-tuning with a fraction of the training labels, from the SF-MIM encoder and from scratch, "
        "each run with the same number of optimiser steps. These are tiny demo runs on synthetic data: "
        "the differences are mostly noise, not evidence for or against pretraining.</p>"
        + _figure(assets["label_fractions"], "test Dice against the labels used")
        + _table(["encoder", "labels (%)", "labelled frames", "epochs", "test Dice"],
                 [[r["init"], f"{100 * r['fraction']:g}", str(r["labelled_frames"]), str(r["epochs"]), _num(r["dice"])]
                  for r in sorted(fractions, key=lambda r: (r["init"], r["fraction"]))], {1, 2, 3, 4}))
    latency_body = (
        "<p>Grey: fp32 torch eager; blue: fp32 ONNX Runtime; orange: INT8 bundles. Timed in the demo's own "
        "process one model after another; <code>usfm-edge bench</code> runs each cell in its own process.</p>"
        + _figure(assets["latency"], "p50 latency per model and backend"))
    info = summary["machine"]
    machine_rows = [[k, ", ".join(map(str, v)) if isinstance(v, list) else str(v)]
                    for k, v in info.items() if k != "libraries"]
    machine_rows += [[lib, version] for lib, version in info.get("libraries", {}).items()]
    sections = [
        _section("summary", summary_body), _section("overlay", overlay_body), _section("frames", frames_body),
        _section("reconstructions", recon_body), _section("label-fractions", fraction_body),
        _section("latency", latency_body),
        _section("machine", _table(["", "this run"], machine_rows)
                 + '<p class="note">Every number on this page is in summary.json.</p>'),
    ]
    return PAGE.substitute(fraction_pct=f"{100 * summary['plan']['label_fraction']:g}", mode=summary["mode"],
                           created=html.escape(summary["created"]), wall_s=f"{summary['wall_s']:.0f}",
                           sections="\n".join(sections))


def write_report(summary: dict, paths: Paths, collector: CineCollector) -> Path:
    """Assets into DIR/report/ (listed in ``summary["report"]``), then DIR/report.html and
    DIR/summary.json."""
    folder = paths.assets
    folder.mkdir(parents=True, exist_ok=True)
    rel = folder.name
    frames = write_sample_frames(collector, folder)
    previews = copy_assets(sorted((paths.teacher_run / "previews").glob("*.png")), folder, "teacher_")
    recon = copy_assets([paths.root / p for p in summary["pretrain"]["previews"]], folder, "sfmim_")
    plot_label_fractions(summary["label_fractions"], folder / "label_fractions.png")
    plot_latency(summary["latency"], folder / "latency.png")
    summary["report"] = {
        "html": "report.html", "animation": f"{rel}/overlay.gif",
        "animation_frames": write_animation(collector, folder / "overlay.gif"), "video": summary["run"]["video"],
        "frames": [{"index": i, "src": f"{rel}/{name}", "dice": collector.dice[i]} for i, name in frames],
        "previews": [f"{rel}/{n}" for n in previews],
        "reconstructions": [{"src": f"{rel}/{n}", "step": int(Path(n).stem.split("_")[-1])} for n in recon],
        "label_fractions": f"{rel}/label_fractions.png", "latency": f"{rel}/latency.png"}
    page = paths.root / "report.html"
    page.write_text(render_html(summary))
    (paths.root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return page
