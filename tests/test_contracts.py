"""The names the stages share: each registry holds exactly its enum's members, and the CLI
offers what the registries hold, so no help text or table can drift from the code."""

from __future__ import annotations

import json

import click

from usfm_edge.contracts import EXPORT_TARGETS, Backend, Precision, Target, Task
from usfm_edge.contracts.manifest import SCHEMA_FILE, Artifact, BundleManifest


def choices(command: click.Command, option: str) -> list[str]:
    param = next(p for p in command.params if p.name == option)
    return list(param.type.choices)


def test_export_targets_are_the_target_enum():
    from usfm_edge.cli.export import export
    from usfm_edge.export.targets import list_targets

    assert set(list_targets()) == {t.value for t in EXPORT_TARGETS} == set(Target.values()) - {"portable"}
    assert set(choices(export, "target")) == set(list_targets())
    assert choices(export, "precision") == Precision.values()


def test_backends_are_the_backend_enum():
    from usfm_edge.backends import list_backends
    from usfm_edge.cli.run import run

    assert list_backends() == sorted(Backend.values())
    assert choices(run, "backend") == ["auto", *Backend.values()]


def test_pretraining_objectives_come_from_their_registry():
    from usfm_edge.cli.pretrain import pretrain
    from usfm_edge.train.pretrain.objectives import list_objectives

    assert choices(pretrain, "objective") == list_objectives() and "sfmim" in list_objectives()


def test_enums_read_and_write_as_their_values():
    assert Precision.INT8 == "int8" and f"{Precision.INT8}" == "int8" and str(Task.SEGMENTATION) == "seg"
    assert json.dumps({"p": Precision.FP16}) == '{"p": "fp16"}'


def test_the_schema_names_every_field_of_the_dataclasses():
    schema = json.loads(SCHEMA_FILE.read_text())
    top = {f for f in BundleManifest.__dataclass_fields__}
    assert top == set(schema["properties"]) - {"schema", "schema_version"}
    artifact = schema["properties"]["artifacts"]["items"]["properties"]
    assert set(Artifact.__dataclass_fields__) == set(artifact)
    assert set(schema["properties"]["artifacts"]["items"]["properties"]["target"]["enum"]) == set(Target.values())
    assert set(schema["properties"]["artifacts"]["items"]["properties"]["backend"]["enum"]) == set(Backend.values())
    assert set(schema["properties"]["task"]["enum"]) == set(Task.values())


def test_the_objective_names_a_config_checks_are_the_registry():
    from usfm_edge.train.pretrain.config import OBJECTIVES
    from usfm_edge.train.pretrain.objectives import list_objectives

    assert list(OBJECTIVES) == list_objectives()
