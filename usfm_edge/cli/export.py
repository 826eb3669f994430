"""``usfm-edge export`` and ``usfm-edge bundle verify``."""

from __future__ import annotations

from pathlib import Path

import click

from usfm_edge.cli.options import POSITIVE, Finite
from usfm_edge.contracts.enums import EXPORT_TARGETS, Precision


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--target", required=True, type=click.Choice([t.value for t in EXPORT_TARGETS]),
              help="Where the bundle will run (valid precisions per target are listed when a pair is wrong).")
@click.option("--precision", type=click.Choice(Precision.values()), default="fp32", show_default=True)
@click.option("--calib", type=click.Path(path_type=Path), help="Frames for int8 calibration (folder or dataset root).")
@click.option("--val", type=click.Path(path_type=Path), help="Dataset root (validation split) for the accuracy gate.")
@click.option("--max-drop", type=Finite(min=0.0), help="Allowed metric drop (default 0.01 Dice / balanced accuracy, "
              "0.5 dB PSNR).")
@click.option("--calib-limit", default=300, type=POSITIVE, show_default=True,
              help="At most this many calibration frames.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle folder to write.")
def export(model_dir: Path, target: str, precision: str, calib, val, max_drop, calib_limit: int, out: Path) -> None:
    """Export MODEL_DIR to a deployment bundle, measured against its fp32 source."""
    from usfm_edge.contracts.manifest import BundleManifest
    from usfm_edge.export.exporter import export_bundle

    bundle = export_bundle(model_dir, target=target, precision=precision, out=out, calib=calib, val=val,
                           max_drop=max_drop, calib_limit=calib_limit)
    validation = BundleManifest.read(bundle).validation
    for name, result in validation.artifacts.items():
        summary = f"{name}: parity max abs {validation.parity[name]['max_abs']:.3g}"
        if validation.metric:
            summary += (f", {validation.metric} {result['value']:.4f} (source {validation.source:.4f}, "
                        f"drop {result['drop']:+.4f}, limit {validation.max_drop})")
        click.echo(summary)
    click.echo(f"wrote {bundle}/")


@click.group()
def bundle() -> None:
    """Inspect deployment bundles."""


@bundle.command()
@click.argument("path", type=click.Path(path_type=Path))
def verify(path: Path) -> None:
    """Check the manifest schema and hashes, and run the golden pair on available backends."""
    from usfm_edge.backends.verify import verify_bundle

    for line in verify_bundle(path):
        click.echo(line)
    click.echo("bundle ok")


@bundle.command("build-engine")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), help="Engine cache (default: BUNDLE/engines).")
def build_engine_command(path: Path, cache_dir: Path | None) -> None:
    """On the device (Jetson or TensorRT GPU box): build the TensorRT engine of a jetson
    bundle once and cache it under a key of GPU, compute capability, TensorRT version, ONNX
    hash and build flags. The runtime does the same on first start."""
    from usfm_edge.backends.tensorrt_engine import build_engine
    from usfm_edge.contracts.manifest import read_verified

    manifest = read_verified(path)
    artifact = next((a for a in manifest.artifacts if a.for_tensorrt), None)
    if artifact is None:
        raise click.ClickException(f"{path}: no jetson/tensorrt artifact; export with --target jetson")
    engine = build_engine(path, artifact, cache_dir=cache_dir or path / "engines")
    click.echo(f"engine: {engine}")
