"""Where every benchmark script leaves its figures: ``STEM.json`` (the whole result, machine
and settings included) beside ``STEM.md`` (the table the README links), and the table on
the terminal."""

from __future__ import annotations

import json
from pathlib import Path


def store(stem: Path, result: dict, lines: list[str]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
