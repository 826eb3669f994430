"""``usfm-edge data index`` and ``usfm-edge data shard``."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def data() -> None:
    """Index and shard unlabeled archives for pretraining."""


@data.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Manifest CSV to write.")
@click.option("--stride", default=1, show_default=True, help="Every N-th frame of cines and videos.")
@click.option("--dedup", default=2.0, show_default=True, help="Skip frames within this mean grey-level change (0: off).")
def index(sources, out: Path, stride: int, dedup: float) -> None:
    """Build a manifest (path,organ,frame) from folders, DICOM files and videos; organ from
    BodyPartExamined or the folder name. Unreadable files are listed, not fatal."""
    from collections import Counter

    from usfm_edge.data.index import index_sources
    from usfm_edge.data.layouts import write_manifest

    report = index_sources(sources, stride=stride, threshold=dedup)
    if not report.entries:
        raise click.ClickException(f"no readable frames in {', '.join(map(str, sources))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out, report.entries)
    organs = Counter(e.organ for e in report.entries)
    click.echo(f"{len(report.entries)} frames ({', '.join(f'{o} {n}' for o, n in organs.most_common())}); "
               f"{report.skipped_duplicates} near-duplicates skipped; wrote {out}")
    for error in report.errors:
        click.echo(f"unreadable: {error}", err=True)


@data.command()
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for shard-NNNNNN.tar files.")
@click.option("--per-shard", default=1000, show_default=True)
def shard(manifest: Path, out: Path, per_shard: int) -> None:
    """Pack a manifest's frames into tar shards (PNG + JSON per frame) for streaming reads."""
    from usfm_edge.data.layouts import read_manifest
    from usfm_edge.data.shards import write_shards
    from usfm_edge.train.pretrain.data import FrameReader

    entries = read_manifest(manifest)
    reader = FrameReader()
    shards = write_shards(((reader(e), {"organ": e.organ, "source": str(e.path), "frame": e.frame}) for e in entries),
                          out, per_shard=per_shard)
    click.echo(f"wrote {len(entries)} frames in {len(shards)} shards to {out}/")
