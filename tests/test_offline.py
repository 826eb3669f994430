"""Nothing phones home: telemetry is declined and nothing is written to $HOME."""

from __future__ import annotations

import os
import subprocess
import sys


def test_environment_switches_are_set():
    import usfm_edge  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_openvino_and_nncf_telemetry_declined_with_empty_home(tmp_path):
    code = (
        "import usfm_edge\n"
        "from usfm_edge.offline import import_quietly\n"
        "ov = import_quietly('openvino'); import_quietly('nncf'); import_quietly('onnxruntime')\n"
        "from nncf.telemetry import telemetry\n"
        "assert telemetry._impl.consent is False, 'nncf telemetry consented'\n"
        "import openvino_telemetry as tm\n"
        "t = tm.Telemetry(app_name='probe', app_version='0', tid='x', backend='ga4', enable_opt_in_dialog=False)\n"
        "assert t.consent is False\n"
        "print('declined')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "declined" in result.stdout
    written = [p for p in tmp_path.rglob("*") if "intel" in p.parts or "openvino_telemetry" in p.name]
    assert written == []
