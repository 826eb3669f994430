"""``usfm-edge phantom``."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import NON_NEGATIVE, Finite, image_size


@click.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--task", type=click.Choice(["seg", "cls", "enhance", "pretrain", "cine"]), default="seg",
              show_default=True, help="Which dataset layout (cine: .mp4 + multi-frame DICOM).")
@click.option("--n", "count", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              help="Images, or frames for a cine.")
@click.option("--size", default="256", show_default=True, callback=image_size, help="B-mode image size: S or HxW pixels.")
@click.option("--organ", default=None, help="liver, kidney, thyroid, breast, muscle; 'mixed' (pretrain default).")
@click.option("--geometry", type=click.Choice(["linear", "curvilinear"]), default=None, help="Default: the organ's.")
@click.option("--seed", type=NON_NEGATIVE, default=0, show_default=True)
@click.option("--fps", type=Finite(0.0, 1000.0, min_open=True), default=20.0, show_default=True,
              help="Cine frame rate.")
@click.option("--ui/--no-ui", default=None, help="Scanner UI around each image, as a capture card delivers it "
              "(masks and targets on the screen's grid; screens.csv gives each image's box). Default: on for a "
              "cine, off for datasets.")
@click.option("--canvas", default="480x640", show_default=True, callback=image_size,
              help="With --ui: the screen's HxW (e.g. 1080x1920).")
@click.option("--photometric", type=click.Choice(["MONOCHROME2", "RGB", "YBR_FULL", "PALETTE COLOR"]),
              default="MONOCHROME2", show_default=True, help="Cine: DICOM colour encoding.")
@click.option("--rle/--no-rle", default=True, show_default=True, help="Cine: RLE Lossless DICOM.")
@click.option("--match-speckle", type=click.Path(exists=True, path_type=Path),
              help="Folder of real B-mode frames: render with a PSF whose speckle grain matches theirs "
                   "(enhancement training for that scanner).")
def phantom(out: Path, task: str, count: int, size: tuple[int, int], organ: str | None, geometry: str | None,
            seed: int, fps: float, ui: bool | None, canvas: tuple[int, int], photometric: str, rle: bool,
            match_speckle: Path | None) -> None:
    """Write synthetic B-mode ultrasound with exact ground truth: a dataset in the layouts the
    readers load (seg, cls, enhance, pretrain manifest) or a cine as .mp4 and DICOM."""
    import sys

    from rich.console import Console
    from rich.progress import Progress

    from usfm_edge.data.phantom import Geometry, PhantomConfig, list_organs
    from usfm_edge.data.phantom_datasets import Screen, write_phantom_dataset

    from usfm_edge.errors import InputError

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not empty; give a new folder (nothing there is overwritten)")
    organ = organ or ("mixed" if task == "pretrain" else "liver")
    if organ not in (*list_organs(), "mixed"):
        raise click.BadParameter(f"{organ!r}; use one of {', '.join(list_organs())} or mixed", param_hint="--organ")
    mixed = organ == "mixed"
    if mixed and task != "pretrain":
        raise click.BadParameter("'mixed' is for --task pretrain; name one organ", param_hint="--organ")
    config = PhantomConfig(size=size, organ=list_organs()[0] if mixed else organ,
                           geometry=Geometry(geometry) if geometry else None)
    if match_speckle is not None:
        config = _matched(config, match_speckle, out)
    extra: dict = {}
    ui = task == "cine" if ui is None else ui
    if ui and (canvas[0] < 96 or canvas[1] < 128):
        raise click.BadParameter(f"{canvas[0]}x{canvas[1]}: a scanner screen with its UI needs at least 96x128 px",
                                 param_hint="--canvas")
    if task == "cine":
        extra = {"fps": fps, "ui": ui, "canvas": canvas, "photometric": photometric, "rle": rle}
    elif task in ("seg", "cls", "enhance"):
        extra = {"screen": Screen(ui=ui, canvas=canvas, seed=seed)}
    elif ui:
        raise click.BadParameter("--ui is for seg, cls, enhance and cine", param_hint="--ui")
    if task == "pretrain":
        extra["organs"] = list_organs() if mixed else [organ]
    out.mkdir(parents=True, exist_ok=True)
    # On stderr, and only on a terminal: stdout stays for results, logs get no bar debris.
    with Progress(transient=True, console=Console(stderr=True), disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task(f"phantom {task}", total=count)
        write_phantom_dataset(task, out, n=count, config=config, seed=seed,
                              on_item=lambda: progress.advance(bar), **extra)
    click.echo(f"wrote {count} {'frames' if task == 'cine' else 'images'} to {out}/")


def _matched(config, folder: Path, out: Path):
    """``config`` with the PSF matched to up to 20 frames found under ``folder``."""
    import json

    from usfm_edge.data.readers import read_frames, supported_suffixes
    from usfm_edge.data.speckle_match import match_psf

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in supported_suffixes())[:20]
    if not files:
        raise click.BadParameter(f"no image, DICOM or video file in {folder}", param_hint="--match-speckle")
    frames = [read_frames(p).frames[0] for p in files]
    config, info = match_psf(frames, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speckle_match.json").write_text(json.dumps({"source": str(folder), "frames": len(frames), **info}, indent=2))
    click.echo(f"speckle matched to {len(frames)} frames: PSF sigma {info['psf_sigma_px'][0]:.2f} x "
               f"{info['psf_sigma_px'][1]:.2f} px (axial x lateral)")
    return config
