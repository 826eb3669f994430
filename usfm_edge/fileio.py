"""Small file helpers shared by both seams (model directory and bundle): hashing, reading JSON
with errors that name the file, and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
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
    except OSError as exc:
        raise SchemaError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk and rename it into
    place: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def why_write_failed(folder: str | Path, exc: BaseException) -> str:
    """A write's failure in words a user can act on. Libraries that write through their own
    C++ code (torch.save, safetensors) report a full disk as a bare RuntimeError: the folder's
    file system says what happened."""
    import errno
    import shutil

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        return {errno.ENOSPC: "the disk is full", errno.EROFS: "the disk is read-only",
                errno.EACCES: "no permission to write there"}[exc.errno]
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "the disk is read-only"
        if shutil.disk_usage(folder).free < 1 << 20:
            return "the disk is full"
    except OSError:
        pass
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
