"""Validated is deployed: on whole scanner screens, the Dice that ``usfm-edge run`` delivers is
the Dice the export gate recorded in the bundle, for OpenVINO and ONNX Runtime INT8."""

from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.screen_parity import runtime_dice
from usfm_edge.cli import cli
from usfm_edge.contracts.manifest import BundleManifest


@pytest.mark.parametrize("target", ["openvino", "onnxruntime"])
def test_the_runtime_delivers_the_gates_dice_on_scanner_screens(screen_model_and_data, tmp_path, target):
    from usfm_edge.export.exporter import export_bundle

    model_dir, data = screen_model_and_data
    bundle = export_bundle(model_dir, target=target, precision="int8", out=tmp_path / "b", calib=data, val=data,
                           calib_limit=32)
    manifest = BundleManifest.read(bundle)
    artifact = manifest.artifacts[0]
    gate = manifest.validation.artifacts[artifact.file]["value"]
    assert manifest.validation.prepare["crop"] == "scan_region" and manifest.validation.frames > 0
    val = data / "val_set"
    result = CliRunner().invoke(cli, ["run", str(bundle), "--source", str(val / "image"), "--sink",
                                      f"jsonl:{tmp_path / 'out.jsonl'}", "--quiet"])
    assert result.exit_code == 0, result.output
    scores = runtime_dice(tmp_path / "out.jsonl", val / "mask")
    assert len(scores) == manifest.validation.frames
    assert abs(float(np.mean(scores)) - gate) <= 0.005, (np.mean(scores), gate)
    # A model that learned the lesions (all background scores 0, all foreground a few per cent).
    assert gate > 0.25
