"""Tar shards (WebDataset layout): ``shard-000000.tar`` holding ``KEY.png`` + ``KEY.json``
pairs, for archives of millions of frames. Pretraining reads members by their byte offsets
(indexed once at start), so shards on local or mounted storage are read in any order the
sampler asks for, without unpacking."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from usfm_edge.errors import InputError


@dataclass(frozen=True)
class ShardMember:
    shard: Path
    offset: int
    size: int
    organ: str


def write_shards(frames: Iterable[tuple[np.ndarray, dict]], out: str | Path, *, per_shard: int = 1000,
                 on_item: Callable[[], None] = lambda: None) -> list[Path]:
    """Write (frame, metadata) pairs as PNG + JSON members, ``per_shard`` frames a shard. Each
    shard is written under a temporary name and renamed when complete; a folder that already
    holds shards is refused (they would be mixed with these)."""
    out = Path(out)
    if out.is_dir() and any(out.glob("shard-*.tar")):
        raise InputError(f"--out {out}: already holds shards; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    tar = None

    def close() -> None:
        tar.close()
        shards[-1].with_suffix(".tar.partial").replace(shards[-1])

    try:
        for i, (frame, meta) in enumerate(frames):
            if i % per_shard == 0:
                if tar is not None:
                    close()
                shards.append(out / f"shard-{len(shards):06d}.tar")
                tar = tarfile.open(shards[-1].with_suffix(".tar.partial"), "w")
            ok, png = cv2.imencode(".png", frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if not ok:
                raise InputError(f"frame {i}: could not encode as PNG")
            for name, data in ((f"{i:09d}.png", png.tobytes()), (f"{i:09d}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            on_item()
        if tar is not None:
            close()
    except BaseException:
        if tar is not None:
            tar.close()
            shards[-1].with_suffix(".tar.partial").unlink(missing_ok=True)
        raise
    return shards


def index_shard(shard: str | Path) -> list[ShardMember]:
    """The image members of a shard with their byte ranges and organ."""
    shard = Path(shard)
    try:
        with tarfile.open(shard, "r") as tar:
            members = tar.getmembers()
            meta = {m.name.rsplit(".", 1)[0]: json.load(tar.extractfile(m)) for m in members if m.name.endswith(".json")}
    except (tarfile.TarError, OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{shard}: not a readable shard ({exc})") from exc
    return [ShardMember(shard, m.offset_data, m.size, meta.get(m.name.rsplit(".", 1)[0], {}).get("organ", "unknown"))
            for m in members if m.name.endswith(".png")]


def read_member(member: ShardMember) -> np.ndarray:
    with open(member.shard, "rb") as fh:
        fh.seek(member.offset)
        data = np.frombuffer(fh.read(member.size), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{member.shard}@{member.offset}: corrupt PNG member")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
