"""The model directory seam: schema, integrity, and atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from usfm_edge.errors import CheckpointError, CheckpointMismatchError, SchemaError
from usfm_edge.models import build_task_model, load_model_dir, make_config, save_model_dir
from usfm_edge.contracts import ModelConfig, Preprocess, Task


@pytest.fixture
def saved(tmp_path):
    config = make_config("usfm_vit_t16", "seg", labels=["background", "head"], img_size=32,
                         model_args={"depth": 2}, provenance={"data": "hc18"})
    model = build_task_model(config)
    save_model_dir(model, tmp_path / "m")
    return tmp_path / "m"


def test_config_holds_everything_export_needs(saved):
    data = json.loads((saved / "config.json").read_text())
    assert data["schema"] == "usfm-edge/model-dir" and data["schema_version"] == 2
    assert data["labels"] == ["background", "head"] and data["head"]["name"] == "light_seg"
    assert data["preprocess"] == {
        "channels": 1, "input_size": [32, 32], "mean": [pytest.approx(0.449)], "std": [pytest.approx(0.226)],
        "intensity": "unit_range", "resize": "stretch", "crop": "scan_region", "mask_sector": True,
    }
    assert data["provenance"]["data"] == "hc18" and len(data["provenance"]["weights_sha256"]) == 64
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]  # no temp files


def test_config_is_readable_without_torch(saved):
    config = ModelConfig.read(saved / "config.json")
    assert config.task is Task.SEGMENTATION and config.preprocess.input_size == (32, 32)


def test_a_version_1_config_reads_with_the_sector_rule_on(saved):
    data = json.loads((saved / "config.json").read_text())
    data["schema_version"] = 1
    del data["preprocess"]["mask_sector"]
    (saved / "config.json").write_text(json.dumps(data))
    assert load_model_dir(saved).config.preprocess.mask_sector is True


def test_unknown_schema_version_is_refused(saved):
    data = json.loads((saved / "config.json").read_text())
    data["schema_version"] = 99
    (saved / "config.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="schema_version 99 is not supported"):
        load_model_dir(saved)


def test_tampered_weights_are_detected(saved):
    blob = bytearray((saved / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (saved / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_model_dir(saved)


def test_weights_of_another_model_are_a_mismatch(saved, tmp_path):
    other = build_task_model(make_config("usfm_vit_t16", "seg", labels=["a", "b", "c"], img_size=32,
                                         model_args={"depth": 2}))
    save_model_dir(other, tmp_path / "other")
    (saved / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointMismatchError, match="head.classifier"):
        load_model_dir(saved, verify=False)


CONFIG = {"schema": "usfm-edge/model-dir", "schema_version": 2, "architecture": "usfm_vit_t16", "task": "seg",
          "head": {"name": "light_seg"}, "labels": ["b", "f"], "preprocess": {}}


@pytest.mark.parametrize("broken, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a JSON object, not list"),
    (json.dumps({"schema": "something-else"}), "not a usfm-edge model config"),
    (json.dumps({**CONFIG, "task": "segment"}), "task 'segment' is not one of seg, cls"),
    (json.dumps({**CONFIG, "head": "light_seg"}), "head must be"),
    (json.dumps({**CONFIG, "model_args": [1]}), "model_args must be a JSON object"),
    (json.dumps({**CONFIG, "preprocess": {"std": [float("nan")]}}), "must be finite"),
    (json.dumps({**CONFIG, "preprocess": [1]}), "preprocess must be an object"),
])
def test_broken_configs_name_the_problem(saved, broken, message):
    (saved / "config.json").write_text(broken)
    with pytest.raises(SchemaError, match=message):
        load_model_dir(saved)


def test_missing_pieces(tmp_path, saved):
    with pytest.raises(SchemaError, match="not a directory"):
        load_model_dir(tmp_path / "absent")
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model_dir(saved)


def test_preprocess_validation():
    with pytest.raises(SchemaError, match="one value per channel"):
        Preprocess(channels=3, mean=(0.5,), std=(0.2,))
    with pytest.raises(SchemaError, match="non-positive"):
        Preprocess(std=(0.0,))
    with pytest.raises(SchemaError, match="unknown field"):
        Preprocess.from_dict({"chanels": 1})
    assert Preprocess.from_dict(Preprocess.for_channels(3).to_dict()) == Preprocess.for_channels(3)


def test_task_needs_labels_and_head():
    with pytest.raises(SchemaError, match="at least 2 labels"):
        make_config("usfm_vit_t16", "cls", labels=["only"])


def test_save_overwrites_in_place(saved):
    model = load_model_dir(saved)
    with torch.no_grad():
        model.head.classifier.bias.add_(1.0)
    save_model_dir(model, saved)
    assert torch.equal(load_model_dir(saved).head.classifier.bias, model.head.classifier.bias)
