"""Nothing phones home: switch off the telemetry of the libraries usfm-edge uses.

A clinical device must not send usage data anywhere, and must work with a read-only ``$HOME``.
- Hugging Face hub (pulled in by timm): offline mode and telemetry off by environment.
- OpenVINO's model converter and NNCF report through ``openvino_telemetry``; its consent
  check is answered "declined" for this process, which is what a user's opt-out file says,
  without writing that file into ``$HOME``.
- ONNX Runtime: ``disable_telemetry_events()`` (its events exist on Windows builds).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
}
_silenced: set[str] = set()


def set_offline_environment() -> None:
    """Set the environment switches; values the user already set are kept."""
    for key, value in _ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def decline_openvino_telemetry() -> bool:
    """Make ``openvino_telemetry`` treat consent as declined. Returns whether it is installed."""
    if "openvino_telemetry" in _silenced:
        return True
    try:
        checker = importlib.import_module("openvino_telemetry.utils.opt_in_checker")
    except ImportError:
        return False
    declined = checker.ConsentCheckResult.DECLINED
    checker.OptInChecker.check = lambda self, *args, **kwargs: declined
    main = importlib.import_module("openvino_telemetry.main")
    instance = getattr(main.Telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:  # created before us: revoke its consent too
        instance.consent = False
    _silenced.add("openvino_telemetry")
    return True


def import_quietly(name: str) -> ModuleType:
    """Import ``openvino``, ``nncf`` or ``onnxruntime`` with its telemetry switched off.

    Raises ImportError like ``import`` does; callers turn that into a DependencyError.
    """
    if name in ("openvino", "nncf") or name.startswith(("openvino.", "nncf.")):
        decline_openvino_telemetry()
    module = importlib.import_module(name)
    if name == "onnxruntime" and name not in _silenced:
        disable = getattr(module, "disable_telemetry_events", None)
        if disable is not None:
            disable()
        _silenced.add(name)
    return module
