"""``usfm-edge data index`` and ``usfm-edge data shard``."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import POSITIVE, Finite


@click.group()
def data() -> None:
    """Index and shard unlabeled archives for pretraining."""


@data.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Manifest CSV to write.")
@click.option("--stride", default=1, type=POSITIVE, show_default=True, help="Every N-th frame of cines and videos.")
@click.option("--dedup", default=2.0, type=Finite(min=0.0), show_default=True,
              help="Skip frames within this mean grey-level change (0: off).")
def index(sources, out: Path, stride: int, dedup: float) -> None:
    """Build a manifest (path,organ,frame) from folders, DICOM files and videos; organ from
    BodyPartExamined or the folder name; paths relative to the manifest. Label folders
    (masks/, targets/, ...) are skipped, a video that repeats a DICOM cine of the same name
    counts once. Unreadable files are listed, not fatal."""
    from collections import Counter

    from usfm_edge.data.index import index_sources
    from usfm_edge.data.layouts import write_manifest
    from usfm_edge.errors import InputError

    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        raise InputError(f"{missing[0]}: no such file or folder" + (f" (and {len(missing) - 1} more)"
                                                                   if len(missing) > 1 else ""))
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; give the manifest's file name, e.g. {out / 'manifest.csv'}")
    report = index_sources(sources, stride=stride, threshold=dedup)
    if not report.entries:
        raise InputError(f"no readable frames in {', '.join(map(str, sources))}"
                         + (f" (first problem: {report.errors[0]})" if report.errors else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out, report.entries)
    organs = Counter(e.organ for e in report.entries)
    click.echo(f"{len(report.entries)} frames ({', '.join(f'{o} {n}' for o, n in organs.most_common())}); skipped "
               f"{report.skipped_duplicates} near-duplicates, {report.skipped_labels} files in label folders, "
               f"{report.skipped_copies} video copies of DICOM cines; wrote {out}")
    for error in report.errors:
        click.echo(f"unreadable: {error}", err=True)


@data.command()
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for shard-NNNNNN.tar files.")
@click.option("--per-shard", default=1000, type=POSITIVE, show_default=True)
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
