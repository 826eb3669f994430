"""The CLI through click's test runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from usfm_edge.cli import COMMANDS, cli


def test_help_lists_every_stage():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_version():
    from usfm_edge import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_doctor_json_reports_backends():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    findings = {f["name"]: f for f in json.loads(result.output)}
    assert findings["ONNX Runtime"]["status"] == "ok"
    assert "CPUExecutionProvider" in findings["ONNX Runtime"]["detail"]
    assert findings["OpenVINO"]["status"] == "ok" and "CPU" in findings["OpenVINO"]["detail"]
    assert findings["torch"]["status"] == "ok"
    assert findings["TensorRT"]["status"] in ("ok", "info")
    assert any(name.startswith("GStreamer") for name in findings)


def test_doctor_table():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0
    assert "OpenCV" in result.output and "GStreamer" in result.output


def test_models_lists_the_registry():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0
    assert "usfm_vit_b16" in result.output and "85.7 M" in result.output and "upernet" in result.output


def test_user_errors_are_one_line_and_nonzero(tmp_path):
    result = CliRunner().invoke(cli, ["convert-checkpoint", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"usfm-edge convert-checkpoint: error: {tmp_path / 'missing.pth'}: no such file; give the path of a .pth or .safetensors file"]


def test_malformed_options_are_usage_errors(tmp_path):
    cases = [
        (["phantom", "--out", str(tmp_path), "--size", "abc"], "'--size': 'abc'; give S or HxW"),
        (["phantom", "--out", str(tmp_path), "--task", "cine", "--canvas", "0x640"], "'--canvas'"),
        (["finetune", "--data", str(tmp_path), "--model-args", "{bad"], "'--model-args': not JSON"),
        (["pretrain", "--data", str(tmp_path), "--model-args", "[1]"], "give a JSON object"),
        (["distill", "--teacher", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o"),
          "--student-args", "{bad"], "'--student-args': not JSON"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
