"""Loading foreign weights: safe, strict, and with errors that say what to do."""

from __future__ import annotations

import argparse

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import TINY
from usfm_edge.cli import cli
from usfm_edge.errors import CheckpointError, CheckpointMismatchError
from usfm_edge.models import create_model, load_model_dir


def _same_output(a, b, size=32, chans=3):
    x = torch.randn(1, chans, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_official_flat_state_dict_loads_strictly(tmp_path, b16_state):
    path = tmp_path / "USFM_latest.pth"
    torch.save(b16_state, path)
    model = create_model("usfm_vit_b16", checkpoint=path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in b16_state.items())


def test_simmim_format_with_decoder_and_mask_token(tmp_path, tiny_state):
    raw = {"model": {f"encoder.{k}": v for k, v in tiny_state.items()}}
    raw["model"]["encoder.mask_token"] = torch.zeros(1, 1, 192)
    raw["model"]["decoder.0.weight"] = torch.zeros(768, 192, 1, 1)
    raw["epoch"] = 99
    path = tmp_path / "simmim.pth"
    torch.save(raw, path)
    from usfm_edge.models.checkpoint import load_encoder_checkpoint

    model = create_model("usfm_vit_t16", **TINY)
    report = load_encoder_checkpoint(model, path)
    assert report.loaded == len(tiny_state)
    assert "decoder.0.weight" in report.ignored and "mask_token" in report.ignored
    reference = create_model("usfm_vit_t16", **TINY)
    reference.load_state_dict(tiny_state)
    assert _same_output(model, reference)


def test_safetensors_and_ddp_prefix(tmp_path, tiny_state):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in tiny_state.items()}, str(path))
    model = create_model("usfm_vit_t16", checkpoint=path, **TINY)
    assert torch.equal(model.cls_token, tiny_state["cls_token"])


def test_missing_weight_is_named(tmp_path, tiny_state):
    state = dict(tiny_state)
    del state["blocks.1.gamma_2"]
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        create_model("usfm_vit_t16", checkpoint=tmp_path / "w.pth", **TINY)
    assert info.value.missing == ["blocks.1.gamma_2"]
    assert "1 missing (blocks.1.gamma_2)" in str(info.value)


def test_unexpected_weight_is_not_silently_dropped(tmp_path, tiny_state):
    state = {**tiny_state, "pos_embed": torch.zeros(1, 5, 192)}
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointMismatchError, match="unexpected \\(pos_embed\\)"):
        create_model("usfm_vit_t16", checkpoint=tmp_path / "w.pth", **TINY)


def test_other_size_is_a_shape_error(tmp_path, tiny_state):
    torch.save(tiny_state, tmp_path / "t16.pth")
    with pytest.raises(CheckpointMismatchError, match="other shapes"):
        create_model("usfm_vit_s16", checkpoint=tmp_path / "t16.pth", **TINY)


def test_bias_table_is_resized_for_another_input_size(tmp_path, tiny_state):
    torch.save(tiny_state, tmp_path / "w.pth")
    model = create_model("usfm_vit_t16", checkpoint=tmp_path / "w.pth", img_size=64, depth=2)
    assert model.rel_pos_bias.relative_position_bias_table.shape == ((2 * 4 - 1) ** 2 + 3, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 17, 192)


def test_corrupt_index_is_refused(tmp_path, tiny_state):
    state = dict(tiny_state)
    state["rel_pos_bias.relative_position_index"] = state["rel_pos_bias.relative_position_index"].flip(0)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="BEiT layout"):
        create_model("usfm_vit_t16", checkpoint=tmp_path / "w.pth", **TINY)


def test_pickled_config_is_refused_with_the_conversion_hint(tmp_path, tiny_state):
    path = tmp_path / "simmim_with_config.pth"
    torch.save({"model": {f"encoder.{k}": v for k, v in tiny_state.items()},
                "config": argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(CheckpointError, match="convert-checkpoint .* --trust-pickle"):
        create_model("usfm_vit_t16", checkpoint=path, **TINY)


def test_convert_checkpoint_needs_trust_and_writes_a_model_dir(tmp_path, b16_state):
    path = tmp_path / "release.pth"
    torch.save({"model": {f"encoder.{k}": v for k, v in b16_state.items()}, "config": argparse.Namespace(a=1)}, path)
    runner = CliRunner()
    refused = runner.invoke(cli, ["convert-checkpoint", str(path), "--out", str(tmp_path / "m")])
    assert refused.exit_code == 2 and "--trust-pickle" in refused.output
    assert not (tmp_path / "m").exists()
    done = runner.invoke(cli, ["convert-checkpoint", str(path), "--out", str(tmp_path / "m"),
                               "--trust-pickle", "--in-chans", "3"])
    assert done.exit_code == 0, done.output
    model = load_model_dir(tmp_path / "m")
    reference = create_model("usfm_vit_b16")
    reference.load_state_dict(b16_state)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    assert model.config.provenance["converted_from"] == "release.pth"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_corrupt_files_raise_a_checkpoint_error(tmp_path, content):
    for name in ("w.pth", "w.safetensors"):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=name):
            create_model("usfm_vit_t16", checkpoint=path, **TINY)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        create_model("usfm_vit_t16", checkpoint=tmp_path / "nope.pth", **TINY)


def test_timm_backbone_takes_a_plain_timm_state_dict(tmp_path):
    from usfm_edge._compat.torchvision import import_timm

    timm = import_timm()
    source = timm.create_model("resnet10t", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "r.pth")
    from usfm_edge.models.checkpoint import load_encoder_checkpoint

    model = create_model("timm:resnet10t")
    report = load_encoder_checkpoint(model, tmp_path / "r.pth")
    assert report.ignored == ["fc.bias", "fc.weight"] or sorted(report.ignored) == ["fc.bias", "fc.weight"]
    assert torch.equal(model.body.conv1[0].weight, source.conv1[0].weight)


def test_a_shallower_student_starts_from_the_first_blocks(tmp_path):
    """distill --student-init: a 1-block student takes block 0 of a 3-block encoder (and its
    patch embedding and norm); without first_blocks_only the extra blocks are refused."""
    from usfm_edge.models import build_task_model, make_config, save_model_dir
    from usfm_edge.train.finetune import init_encoder

    def seg_model(depth: int):
        return build_task_model(make_config("usfm_vit_t16", "seg", labels=["background", "lesion"], img_size=32,
                                            model_args={"depth": depth}))

    deep = seg_model(3)
    save_model_dir(deep, tmp_path / "deep")
    student = seg_model(1)
    with pytest.raises(CheckpointMismatchError, match="blocks.1"):
        init_encoder(student, str(tmp_path / "deep"))
    summary = init_encoder(student, str(tmp_path / "deep"), first_blocks_only=True)
    assert "blocks 1-2 (the model keeps the first 1)" in summary
    source = deep.encoder.state_dict()
    assert all(torch.equal(v, source[k]) for k, v in student.encoder.state_dict().items())
