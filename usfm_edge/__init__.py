"""usfm-edge: ultrasound foundation models from pretraining to real-time inference.

Stages live in subpackages: ``models`` (encoders, heads, the model directory), ``data``,
``train``, ``export`` and ``runtime``. Importing this package is cheap and imports no torch;
the torch-based subpackages are imported only by the code that needs them.
"""

from usfm_edge import offline as _offline
from usfm_edge._version import __version__

_offline.set_offline_environment()

__all__ = ["__version__"]
