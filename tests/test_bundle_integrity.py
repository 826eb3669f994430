"""Bundle integrity: every file a bundle loads is hash-checked before use and stays inside the
bundle; the manifest agrees with itself and with the model; a failed export never damages the
bundle already at ``--out``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from usfm_edge.backends.bundle import load_bundle
from usfm_edge.backends.verify import verify_bundle
from usfm_edge.cli import cli
from usfm_edge.contracts.manifest import BundleManifest
from usfm_edge.errors import BundleMismatchError, InputError, IntegrityError
from usfm_edge.export.exporter import ExportGateError, export_bundle


@pytest.fixture(scope="module")
def ov_bundle(model_and_data, tmp_path_factory):
    model_dir, data = model_and_data
    return export_bundle(model_dir, target="openvino", precision="int8", out=tmp_path_factory.mktemp("ov") / "b",
                         calib=data, val=data, calib_limit=16)


@pytest.fixture
def bundle_copy(ov_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(ov_bundle, copy)
    return copy


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output, result.output
    return result.output


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_manifest_lists_every_file_the_bundle_loads(ov_bundle):
    manifest = BundleManifest.read(ov_bundle)
    listed = {ref.path for ref in manifest.files()}
    assert listed == {"openvino_int8.xml", "openvino_int8.bin", "model.onnx", "golden_input.npy", "golden_output.npy"}
    assert listed | {"manifest.json"} == {p.name for p in ov_bundle.iterdir()}


@pytest.mark.parametrize("name", ["openvino_int8.xml", "openvino_int8.bin", "model.onnx", "golden_input.npy",
                                  "golden_output.npy"])
def test_a_changed_byte_in_any_loaded_file_is_refused_by_verify_and_run(bundle_copy, name):
    path = bundle_copy / name
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    for args in (["bundle", "verify", str(bundle_copy)],
                 ["run", str(bundle_copy), "--source", "phantom:?fps=0&frames=2&size=64", "--quiet"]):
        assert f"{name}: sha256 differs" in one_line_error(args)


def test_a_file_that_leads_outside_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.bin"
    shutil.move(bundle_copy / "openvino_int8.bin", outside)
    (bundle_copy / "openvino_int8.bin").symlink_to(outside)
    with pytest.raises(IntegrityError, match="outside the bundle folder"):
        verify_bundle(bundle_copy)


def test_a_missing_file_is_named(bundle_copy):
    (bundle_copy / "openvino_int8.bin").unlink()
    assert "openvino_int8.bin: listed in the manifest but missing" in one_line_error(
        ["bundle", "verify", str(bundle_copy)])


def rewrite(bundle: Path, edit) -> None:
    """Edit the manifest and re-hash nothing: for edits that keep every file as it is."""
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_a_manifest_that_agrees_with_itself_but_not_with_the_model_is_refused(bundle_copy):
    def shrink(m):
        m["preprocess"]["input_size"] = [32, 32]
        m["io"]["input"]["shape"] = ["batch", 1, 32, 32]
        m["io"]["output"]["shape"] = ["batch", 2, 32, 32]

    rewrite(bundle_copy, shrink)
    with pytest.raises(BundleMismatchError, match="the model's input is .* manifest says"):
        load_bundle(bundle_copy)
    assert "does not match io.input" in one_line_error(["bundle", "verify", str(bundle_copy)])


def test_a_golden_file_with_pickled_objects_is_refused(bundle_copy):
    path = bundle_copy / "golden_input.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rewrite(bundle_copy, lambda m: m["golden"]["input"].update(sha256=digest))
    assert "not a plain .npy array" in one_line_error(["bundle", "verify", str(bundle_copy)])


def test_a_failed_export_leaves_the_bundle_at_out_as_it_was(model_and_data, bundle_copy, tmp_path):
    model_dir, data = model_and_data
    before = snapshot(bundle_copy)
    with pytest.raises(ExportGateError):
        export_bundle(model_dir, target="onnxruntime", precision="int8", out=bundle_copy, calib=data, val=data,
                      max_drop=-1.0, calib_limit=16)
    with pytest.raises(InputError, match="no such folder for --calib"):
        export_bundle(model_dir, target="openvino", precision="int8", out=bundle_copy, calib=tmp_path / "none")
    assert snapshot(bundle_copy) == before
    assert any("golden pair ok" in line for line in verify_bundle(bundle_copy))
    assert [p.name for p in bundle_copy.parent.iterdir()] == ["bundle"]  # no staging folder left behind


def test_a_successful_export_replaces_a_bundle_whole(model_and_data, bundle_copy):
    model_dir, data = model_and_data
    export_bundle(model_dir, target="onnxruntime", precision="fp32", out=bundle_copy, val=data)
    assert not (bundle_copy / "openvino_int8.bin").exists()
    assert BundleManifest.read(bundle_copy).artifacts[0].backend == "onnxruntime"
    assert [p.name for p in bundle_copy.parent.iterdir()] == ["bundle"]


def test_out_must_be_a_new_folder_or_a_bundle(model_and_data, tmp_path):
    model_dir, _ = model_and_data
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert "not a bundle" in one_line_error(["export", str(model_dir), "--target", "onnxruntime", "--out", str(mine)])
    assert (mine / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file" in one_line_error(["export", str(model_dir), "--target", "onnxruntime", "--out", str(a_file)])
