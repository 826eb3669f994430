"""Small file helpers shared by both seams (model directory and bundle): hashing and reading
JSON with errors that name the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from usfm_edge.errors import SchemaError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | Path, *, missing: str) -> Any:
    """The parsed file; ``SchemaError`` naming it when it is absent (with ``missing`` as the
    hint) or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: {missing}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc})") from exc
