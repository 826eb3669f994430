"""Shared fixtures. Heavy objects are built once per session; tests copy what they mutate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# A two-block ViT-Ti on 32x32 input (2x2 patches): every code path, milliseconds per call.
TINY = {"img_size": 32, "depth": 2}


def pytest_collection_modifyitems(items):
    for item in items:
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(pytest.mark.skip(reason=f"{SHARED_DATA} absent (only on the project's machines)"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def official_keys(shared_data: Path) -> dict[str, list[int]]:
    return json.loads((shared_data / "usfm_vit_b16_keys.json").read_text())


def assert_resumed_equals_straight(runs: Path, part: str) -> None:
    """The run stopped and resumed (runs/split) ends with the weights of the one that never stopped
    (runs/straight)."""
    import torch

    from usfm_edge.train.state import load_state

    straight = load_state(runs / "straight" / "state.pt")[part]
    split = load_state(runs / "split" / "state.pt")[part]
    for key in straight:
        torch.testing.assert_close(straight[key], split[key], atol=1e-6, rtol=1e-5)


def randomize_(module) -> None:
    """Give every parameter non-trivial values (zeros or ones hide wiring mistakes)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.02 if p.ndim > 1 else 0.2) + (0.1 if p.ndim == 1 else 0))


@pytest.fixture(scope="session")
def b16_state():
    """A state dict with the official USFM names and shapes, random values (built once)."""
    from usfm_edge.models import create_model

    model = create_model("usfm_vit_b16")
    randomize_(model)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def tiny_state():
    from usfm_edge.models import create_model

    model = create_model("usfm_vit_t16", **TINY)
    randomize_(model)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def model_and_data(tmp_path_factory):
    """A segmentation model directory fine-tuned for a few epochs on 64 px phantom frames,
    and its dataset: the source of every export and runtime test's bundle."""
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import write_phantom_dataset
    from usfm_edge.train.config import FinetuneConfig
    from usfm_edge.train.finetune import run_finetune

    root = tmp_path_factory.mktemp("export")
    data = write_phantom_dataset("seg", root / "data", n=40, config=PhantomConfig(size=(64, 64), organ="breast"))
    run_finetune(FinetuneConfig(task="seg", data=str(data), out=str(root / "run"), model="usfm_vit_t16",
                                model_args={"depth": 2}, img_size=64, epochs=4, lr=2e-3, previews=0), progress=False)
    return root / "run" / "model", data




@pytest.fixture(scope="session")
def screen_model_and_data(tmp_path_factory):
    """A segmentation model fine-tuned on whole scanner screens (UI chrome around a breast
    phantom, masks on the screen's grid), as a cart's capture card delivers them, and its
    dataset (screens.csv holds each image's box)."""
    from usfm_edge.data.phantom import PhantomConfig
    from usfm_edge.data.phantom_datasets import Screen, write_phantom_dataset
    from usfm_edge.train.config import FinetuneConfig
    from usfm_edge.train.finetune import run_finetune

    root = tmp_path_factory.mktemp("screens")
    data = write_phantom_dataset("seg", root / "data", n=48, config=PhantomConfig(size=(128, 128), organ="breast"),
                                 screen=Screen(ui=True, canvas=(240, 320)))
    run_finetune(FinetuneConfig(task="seg", data=str(data), out=str(root / "run"), model="usfm_vit_t16",
                                model_args={"depth": 2}, img_size=96, epochs=8, lr=2e-3, previews=0), progress=False)
    return root / "run" / "model", data
