"""The deployment bundle's ``manifest.json``: the seam between export and runtime.

Torch-free: the runtime and the benchmarks read it with the core install. The runtime trusts
nothing but this file: it checks the schema (``manifest.schema.json``, published beside this
module) and the sha256 of every artifact before loading one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from usfm_edge.errors import SchemaError
from usfm_edge.fileio import read_json
from usfm_edge.fileio import sha256_file as sha256
from usfm_edge.spec import Preprocess

MANIFEST = "manifest.json"
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")
BUNDLE_SCHEMA = "usfm-edge/bundle"
BUNDLE_SCHEMA_VERSION = 1


def validate(manifest: dict[str, Any], source: str = MANIFEST) -> None:
    """Raise ``SchemaError`` naming the first violation of the published schema."""
    import jsonschema

    if manifest.get("schema_version") not in (None, BUNDLE_SCHEMA_VERSION) and manifest.get("schema") == BUNDLE_SCHEMA:
        raise SchemaError(f"{source}: bundle schema_version {manifest.get('schema_version')} is not supported "
                          f"(this usfm-edge reads {BUNDLE_SCHEMA_VERSION}); re-export the bundle or upgrade")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = "/".join(map(str, errors[0].path)) or "(top level)"
        raise SchemaError(f"{source}: {where}: {errors[0].message}; the bundle does not follow the manifest schema")


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    path = Path(bundle) / MANIFEST
    manifest = read_json(path, missing="missing; a bundle is a folder written by 'usfm-edge export'")
    validate(manifest, str(path))
    return manifest


def write_manifest(bundle: str | Path, manifest: dict[str, Any]) -> Path:
    validate(manifest)
    path = Path(bundle) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)
    return path


def verify_hashes(bundle: str | Path, manifest: dict[str, Any]) -> None:
    """Every artifact's file exists and has the recorded sha256 (extra files: exist)."""
    bundle = Path(bundle)
    for artifact in manifest["artifacts"]:
        path = bundle / artifact["file"]
        if not path.is_file():
            raise SchemaError(f"{path}: listed in the manifest but missing; re-export the bundle")
        if sha256(path) != artifact["sha256"]:
            raise SchemaError(f"{path}: sha256 differs from the manifest; the file was changed or corrupted, "
                              "re-export the bundle")
        for extra in artifact.get("extra_files", []):
            if not (bundle / extra).is_file():
                raise SchemaError(f"{bundle / extra}: missing (belongs to {artifact['file']})")


def preprocess_of(manifest: dict[str, Any]) -> Preprocess:
    return Preprocess.from_dict(manifest["preprocess"])


def pick_artifact(manifest: dict[str, Any], *, backend: str | None = None, precision: str | None = None) -> dict:
    """The first artifact matching the wishes; ``model.onnx`` (fp32) is always there."""
    for artifact in manifest["artifacts"]:
        if backend and artifact.get("backend") != backend:
            continue
        if precision and artifact["precision"] != precision:
            continue
        return artifact
    raise SchemaError(f"no artifact for backend={backend} precision={precision} in this bundle; it has "
                      + ", ".join(f"{a.get('backend')}/{a['precision']}" for a in manifest["artifacts"]))
