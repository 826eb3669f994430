"""The runtime and the CLI's entry stay free of torch (a cart runs them without it)."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True,
    ).stdout
    return set(out.split())


HEAVY = {"torch", "timm", "torchvision", "nncf", "safetensors"}


def test_runtime_imports_no_torch():
    assert not HEAVY & _modules_after(
        "import usfm_edge.runtime, usfm_edge.backends, usfm_edge.data, usfm_edge.contracts, usfm_edge.contracts.prepare\n"
        "import usfm_edge.contracts.manifest, usfm_edge.backends.verify, usfm_edge.metrics.validation\n"
        "import usfm_edge.runtime.app, usfm_edge.runtime.sources, usfm_edge.runtime.sinks, usfm_edge.cli.run\n"
        "from usfm_edge.backends import get_backend; get_backend('onnxruntime'); get_backend('openvino')"
    )


def test_cli_help_imports_no_torch():
    loaded = _modules_after(
        "from click.testing import CliRunner\nfrom usfm_edge.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0 and 'finetune' in r.output"
    )
    assert not HEAVY & loaded


def test_package_import_imports_nothing_heavy():
    loaded = _modules_after("import usfm_edge")
    assert not (HEAVY | {"cv2", "onnxruntime", "openvino"}) & loaded
