"""The bench result as a terminal table (rich), a JSON file and a PNG plot (matplotlib, the
``bench`` extra, imported only here and only when a plot is asked for)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from usfm_edge.errors import DependencyError
from usfm_edge.runtime.metrics import ReportError


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers (non-finite outputs) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(result: dict, path: str | Path) -> Path:
    from usfm_edge.runtime.metrics import write_report

    return write_report(path, finite(result), option="--json")


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "" if value is None else format(value, fmt)


def label(cell: dict) -> str:
    """``openvino fp32``; what runs in brackets when it differs: ``openvino int8 (int8+bf16)``."""
    floats = cell.get("float_precision") or cell.get("runs_in")
    if cell["precision"] == "int8":
        extra = f" (int8+{floats})" if floats and floats != "int8" else ""
    else:
        extra = f" ({floats})" if floats and floats != cell["precision"] else ""
    return f"{cell['backend']} {cell['precision']}{extra}"


def table(result: dict):
    """``rich`` renderables: the measured cells, then the ones not measured with why."""
    from rich.console import Group
    from rich.table import Table

    machine, settings = result["machine"], result["settings"]
    batch = settings["batch_size"]
    metric = result["metric"]
    title = (f"{result['target']['path']} ({result['target']['kind']}, {result['target']['task']}, input "
             f"{'x'.join(map(str, result['target']['input_shape']))}) on {machine['cpu']}, "
             f"threads {settings['threads'] or 'default'}, {settings['iters']} iters")
    grid = Table(title=title, title_justify="left")
    columns = ["cell (runs in)", "load s", "p50 ms", "p90 ms", "p99 ms", "fps b1"]
    columns += [f"fps b{batch}"] if batch > 1 else []
    columns += ["peak MiB", "parity max rel"]
    columns += [f"{metric} (drop)"] if metric else []
    columns += ["vendor ratio p50 (min)", ""]
    for name in columns:
        grid.add_column(name, justify="left" if name in ("cell (runs in)", "") else "right")
    for cell in (c for c in result["cells"] if c["status"] == "ok"):
        lat, parity, vend = cell["latency"] or {}, cell["parity"] or {}, cell["vendor"] or {}
        row = [label(cell), _num(cell["load_s"]), _num(lat.get("p50_ms")), _num(lat.get("p90_ms")),
               _num(lat.get("p99_ms")), _num(lat.get("fps"), ".1f")]
        if batch > 1:
            row.append(_num((cell["batch"] or {}).get("fps"), ".1f") or "error")
        row += [_num(cell["peak_rss_mb"], ".0f"), _num(parity.get("max_rel"), ".2e")]
        if metric:
            m = cell["metric"] or {}
            row.append(_num(m.get("value"), ".4f") + (f" ({m['drop']:+.4f})" if m.get("drop") is not None else ""))
        ratio = _num(vend.get("ratio"), ".2f") + (f" ({vend['ratio_min']:.2f})" if vend.get("ratio_min") else "")
        row.append(ratio or ("-" if vend else ""))
        row.append("reference" if cell["reference"] else "")
        grid.add_row(*row)
    reference = result["reference"]
    if not any(c["reference"] for c in result["cells"]):
        value = reference.get("metric_value")
        grid.caption = (f"parity reference: {reference['backend']} {reference['precision']} on {reference['artifact']}"
                        + (f", {metric} {value:.4f}" if metric and value is not None else "")
                        + (f" ({reference['status']}: {reference['reason']})" if reference["status"] != "ok" else ""))
        grid.caption_justify = "left"
    parts = [grid]
    missing = [c for c in result["cells"] if c["status"] != "ok"]
    if missing:
        other = Table(title="not measured", title_justify="left")
        for name in ("cell", "status", "why"):
            other.add_column(name)
        for cell in missing:
            other.add_row(f"{cell['backend']} {cell['precision']}", cell["status"], cell["reason"])
        parts.append(other)
    notes = [f"{c['backend']} {c['precision']}: {c['vendor']['tool']} "
             f"{c['vendor'].get('skipped') or c['vendor'].get('error')}"
             for c in result["cells"] if c["vendor"] and "ratio" not in c["vendor"]]
    return Group(*parts, *notes)


def plot(result: dict, path: str | Path) -> Path:
    """Latency per measured cell: p50 and p99 bars side by side, each cell's metric above."""
    try:
        import matplotlib
    except ImportError as exc:
        raise DependencyError("--plot needs matplotlib: pip install 'usfm-edge[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in result["cells"] if c["status"] == "ok" and c["latency"]]
    skipped = [c for c in result["cells"] if c["status"] != "ok"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(cells) + 2), 4.8))
    xs = range(len(cells))
    p50 = [c["latency"]["p50_ms"] for c in cells]
    p99 = [c["latency"]["p99_ms"] for c in cells]
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50", color="#3b75af")
    ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99", color="#a6c4e0")
    if p50 and max(p99) / max(min(p50), 1e-9) > 30:
        ax.set_yscale("log")
    for x, cell in zip(xs, cells):
        text = f"{cell['latency']['p50_ms']:.3g} ms"
        metric = cell.get("metric") or {}
        if metric.get("value") is not None:
            text += f"\n{metric['name']} {metric['value']:.3f}"
        ax.annotate(text, (x, max(p50[x], p99[x])), textcoords="offset points", xytext=(0, 3), ha="center",
                    fontsize=8)
    ax.set_xticks(list(xs), [label(c).replace(" ", "\n", 1) for c in cells], fontsize=8)
    ax.set_ylabel("latency per frame, batch 1 (ms)")
    ax.margins(y=0.25)
    machine, settings = result["machine"], result["settings"]
    ax.set_title(f"{Path(result['target']['path']).name}: {machine['cpu']}, "
                 f"threads {settings['threads'] or 'default'}, {settings['iters']} iters", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    if skipped:
        names = ", ".join(f"{c['backend']} {c['precision']}" for c in skipped)
        fig.text(0.01, 0.01, f"not measured ({len(skipped)}): {names}", fontsize=7, color="0.4", wrap=True)
    fig.tight_layout(rect=(0, 0.04 if skipped else 0, 1, 1))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise ReportError(f"--plot {path}: cannot write it ({exc.strerror or exc}); choose another place") from None
    finally:
        plt.close(fig)
    return path
