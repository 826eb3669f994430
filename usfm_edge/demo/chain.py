"""``run_demo``: the whole chain on the synthetic phantom, stage after stage, into one folder.

Re-running into the same folder starts over: the previous demo's outputs there (and only
those, see ``stages.OWNED``) are removed first.

Threads: one by default, for every stage (torch, OpenCV, ONNX Runtime, OpenVINO). The demo's
models are tiny (64 px, a few blocks): a second thread gains little, and when another process
shares the cores, OpenMP's spin-waiting turns each of thousands of small parallel regions
into a scheduler time slice. Measured on a busy 2-core machine: the teacher's forward pass took
3 ms on one thread and 578 ms on two; a fine-tuning run 21 s against 46 s."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from usfm_edge.bench.machine import describe
from usfm_edge.data.images import read_image
from usfm_edge.data.layouts import SEG_SPLITS
from usfm_edge.demo import latency, report, stages
from usfm_edge.demo.plan import DemoPlan
from usfm_edge.demo.stages import Paths
from usfm_edge.errors import DependencyError, InputError
from usfm_edge.backends.bundle import AUTO_ORDER

NEEDS = (("torch", "train"), ("nncf", "train"), ("onnx", "train"), ("matplotlib", "bench"))  # module, extra
STAGES = ("phantom data", "SF-MIM pretraining", "fine-tuning the teacher", "label-fraction runs", "distillation",
          "INT8 export", "runtime on a cine", "latency", "report")


class StageClock:
    """Prints ``[k/N] stage`` as each stage starts and keeps how long each took."""

    def __init__(self, console) -> None:
        self.console, self.seconds, self.k = console, {}, 0

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        self.k += 1
        self.console.rule(f"[bold][{self.k}/{len(STAGES)}] {name}[/bold]" + (f" [dim]{detail}[/dim]" if detail else ""),
                          align="left")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)

    def say(self, text: str) -> None:
        self.console.print(f"  {text}", markup=False, highlight=False)


MARKER = ".usfm-edge-demo"  # written into a folder the demo made; only such a folder is cleared


def clear(root: Path) -> None:
    """Make ``root`` ready for a new demo: create it, or clear the outputs of an earlier demo
    there. A folder with files that the demo did not make is refused, not cleared."""
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root}: is a file; give a folder for the demo")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise InputError(f"--out {root}: a folder with files that a demo did not make; give a new or empty folder "
                         "(the demo replaces only its own earlier outputs)")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by usfm-edge demo; its outputs here are replaced by the next demo\n")
    for name in stages.OWNED:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Torch's and OpenCV's thread pools at ``n`` for the demo, restored after."""
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def require_extras() -> None:
    """Fail before minutes of work, not at the last stage, when an extra is missing."""
    missing = sorted({extra for module, extra in NEEDS if importlib.util.find_spec(module) is None})
    if missing:
        raise DependencyError(f"the demo trains, exports and plots: it needs the {' and '.join(missing)} extra(s); "
                              "install with: pip install -c constraints.txt -e \".[all]\"")


def run_demo(out: str | Path, plan: DemoPlan, *, threads: int = 1, progress: bool = True,
             console=None) -> dict[str, Any]:
    """Run every stage into ``out`` on ``threads`` CPU threads; returns the summary (also in
    ``out``/summary.json)."""
    require_extras()
    with cpu_threads(threads):
        return _run(Paths(out), plan, threads=threads, progress=progress, console=console)


def _run(paths: Paths, plan: DemoPlan, *, threads: int, progress: bool, console) -> dict[str, Any]:
    from rich.console import Console

    console = console or Console()
    clear(paths.root)
    clock = StageClock(console)
    start = time.perf_counter()
    summary: dict[str, Any] = {"schema": "usfm-edge/demo", "schema_version": 1, "mode": plan.name,
                               "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                               "plan": plan.to_dict(), "threads": threads, "machine": describe()}

    with clock.stage(STAGES[0], f"{plan.seg_frames} labelled {plan.organ} + {plan.pretrain_frames} unlabelled"):
        summary["data"] = stages.make_data(plan, paths, progress=progress)
    with clock.stage(STAGES[1], f"{plan.pretrain_steps} steps"):
        summary["pretrain"] = stages.pretrain(plan, paths, progress=progress)
    with clock.stage(STAGES[2], f"{100 * plan.label_fraction:g} % of the labels"):
        teacher = stages.finetune(plan, paths, paths.teacher_run, fraction=plan.label_fraction,
                                  init=paths.pretrain / "encoder", previews=4, progress=progress)
        summary["teacher"] = teacher
        clock.say(f"teacher test Dice {teacher['dice']:.3f} ({teacher['labelled_frames']} labelled frames)")
    with clock.stage(STAGES[3], f"{len(plan.fraction_runs)} more runs"):
        summary["label_fractions"] = [teacher] + stages.fraction_runs(plan, paths, progress=progress, say=clock.say)
    with clock.stage(STAGES[4], f"teacher's soft masks on every frame, its {100 * plan.label_fraction:g} % of labels"):
        summary["models"] = stages.distill(plan, paths, progress=progress)
    with clock.stage(STAGES[5], " and ".join(stages.BACKENDS)):
        summary["export"] = stages.export(plan, paths, threads=threads, say=clock.say)
    passed = {b: paths.root / r["bundle"] for b, r in summary["export"]["backends"].items() if r["status"] == "passed"}
    summary["dice"] = {"split": teacher["split"], "frames": teacher["frames"], "teacher_fp32": teacher["dice"],
                       "student_fp32": summary["export"]["student_fp32_dice"],
                       "student_int8": {b: r.get("dice") for b, r in summary["export"]["backends"].items()}}

    # The runtime's own preference (``--backend auto``); with no INT8 bundle through its gate, fp32 ONNX.
    backend = next((b for b in AUTO_ORDER if b in passed), None)
    with clock.stage(STAGES[6], f"{plan.cine_frames} frames, {backend or 'onnxruntime fp32'}"):
        bundle = passed[backend] if backend else stages.fp32_fallback_bundle(paths)
        summary["run"], collector = stages.run_cine(plan, paths, bundle, backend or "onnxruntime", threads=threads,
                                                    progress=progress)
        if summary["dice"]["student_fp32"] is None:  # no gate passed: the fp32 bundle's own figure
            summary["dice"]["student_fp32"] = _source_dice(bundle)

    with clock.stage(STAGES[7], f"{plan.latency_calls} calls per model"):
        test_image = min((paths.seg / SEG_SPLITS["test"] / "image").glob("*.png"))
        x = _preprocessed(paths.student_run / "model", test_image)
        with stages.item_bar("timed calls", plan.latency_calls * latency.rows_expected(passed), progress) as advance:
            summary["latency"] = latency.latency_rows(teacher=paths.teacher_run / "model",
                                                      student=paths.student_run / "model", bundles=passed, x=x,
                                                      calls=plan.latency_calls, threads=threads, advance=advance)

    with clock.stage(STAGES[8]):
        summary["stage_s"] = dict(clock.seconds)  # the report's own few seconds are not in it
        summary["wall_s"] = round(time.perf_counter() - start, 1)
        page = report.write_report(summary, paths, collector)
    report.print_summary(summary, console)
    console.print(f"report: {page}")
    return summary


def _preprocessed(model_dir: Path, image: Path):
    """One test frame as the model sees it: (1, C, H, W) float32."""
    from usfm_edge.contracts import CONFIG_FILE, ModelConfig
    from usfm_edge.contracts.prepare import prepare

    return prepare(read_image(image), ModelConfig.read(model_dir / CONFIG_FILE).preprocess)[0]


def _source_dice(bundle: Path) -> float | None:
    from usfm_edge.contracts.manifest import BundleManifest

    return BundleManifest.read(bundle).validation.source
