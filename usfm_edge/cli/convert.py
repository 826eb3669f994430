"""``usfm-edge convert-checkpoint``."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import POSITIVE


@click.command("convert-checkpoint")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
@click.option("--arch", default="usfm_vit_b16", show_default=True, help="Registered encoder the weights are for.")
@click.option("--img-size", default=224, type=POSITIVE, show_default=True,
              help="Input size (a multiple of 16); the bias is resized.")
@click.option("--in-chans", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="1 = gray B-mode input (the patch embedding is folded exactly), 3 = RGB.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow pickled objects (SimMIM-format files pickle their config). Unpickling runs code: "
                   "only for files whose origin you trust.")
def convert_checkpoint(checkpoint: Path, out: Path, arch: str, img_size: int, in_chans: str, trust_pickle: bool) -> None:
    """Read CHECKPOINT (flat state dict, SimMIM {"model": {"encoder.*"}} or safetensors), load
    it strictly into ARCH and write a model directory (task: features) with safe weights."""
    from usfm_edge.errors import InputError
    from usfm_edge.fileio import sha256_file
    from usfm_edge.models import build_task_model, make_config, save_model_dir
    from usfm_edge.models.checkpoint import load_encoder_checkpoint

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not empty; give a new folder for the model directory")
    config = make_config(
        arch, "features", img_size=img_size, in_chans=int(in_chans),
        provenance={"converted_from": str(checkpoint.name), "source_sha256": None},
    )
    model = build_task_model(config)
    report = load_encoder_checkpoint(model.encoder, checkpoint, trust_pickle=trust_pickle)
    config.provenance["source_sha256"] = sha256_file(checkpoint)
    save_model_dir(model, out)
    click.echo(report.summary())
    click.echo(f"wrote {out}/ (config.json + model.safetensors)")
