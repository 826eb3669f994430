"""Every registered encoder x task: builds, runs, and round-trips through a model directory."""

from __future__ import annotations

import json

import pytest
import torch

from usfm_edge.errors import ModelNotFoundError
from usfm_edge.models import build_task_model, create_head, create_model, list_heads, list_models, make_config
from usfm_edge.models import load_model_dir, save_model_dir
from usfm_edge.contracts import Task

TASKS = {"seg": ["background", "lesion", "vessel"], "cls": ["benign", "malignant"], "enhance": [], "features": []}
ENCODERS = [*list_models(), "timm:resnet10t"]


def _small(arch: str) -> dict:
    return {"depth": 2} if arch.startswith("usfm") else {}


def test_registry_lists_the_usfm_family():
    assert {"usfm_vit_b16", "usfm_vit_s16", "usfm_vit_t16"} <= set(list_models())
    assert list_models("usfm_vit_b*") == ["usfm_vit_b16"]
    assert {"upernet", "light_seg", "linear", "pixel_decoder"} <= set(list_heads())
    assert list_heads("cls") == ["linear"]


def test_unknown_names_are_typed_errors():
    with pytest.raises(ModelNotFoundError, match="usfm_vit_b16"):
        create_model("usfm_vit_x99")
    with pytest.raises(ModelNotFoundError, match="upernet"):
        create_head("nope", in_channels=[8], reductions=[16], num_outputs=2)
    with pytest.raises(ModelNotFoundError, match="timm has no model"):
        create_model("timm:not_a_model_xyz")


@pytest.mark.parametrize("arch", ENCODERS)
@pytest.mark.parametrize("task", list(TASKS))
def test_task_model_round_trip_is_bit_identical(tmp_path, arch, task):
    config = make_config(arch, task, labels=TASKS[task], img_size=64, in_chans=1, model_args=_small(arch))
    model = build_task_model(config).eval()
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    expected = {"seg": (2, 3, 64, 64), "cls": (2, 2), "enhance": (2, 1, 64, 64)}.get(task)
    if expected:
        assert tuple(y.shape) == expected
    save_model_dir(model, tmp_path / "m")
    loaded = load_model_dir(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(x), y)
    config_json = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config_json["architecture"] == arch and config_json["task"] == task
    assert config_json["preprocess"]["channels"] == 1 and config_json["preprocess"]["input_size"] == [64, 64]


@pytest.mark.parametrize("head", list_heads())
def test_every_head_runs_on_vit_and_cnn_features(head):
    from usfm_edge.models.registry import _HEADS

    task = _HEADS[head].tasks[0]
    for arch in ("usfm_vit_t16", "timm:resnet10t"):
        config = make_config(arch, task, labels=TASKS.get(task), img_size=64, in_chans=1, head=head,
                             model_args=_small(arch))
        model = build_task_model(config).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 1, 64, 64))
        assert out.shape[0] == 1 and torch.isfinite(out).all()


def test_enhancement_head_starts_as_the_identity():
    config = make_config("usfm_vit_t16", Task.ENHANCEMENT, img_size=32, in_chans=1, model_args={"depth": 2})
    model = build_task_model(config).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_upernet_is_the_default_for_b16_and_light_for_students():
    assert make_config("usfm_vit_b16", "seg", labels=["a", "b"]).head.name == "upernet"
    assert make_config("usfm_vit_t16", "seg", labels=["a", "b"]).head.name == "light_seg"
