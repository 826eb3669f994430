"""Real-time pipeline: sources, scan-region tracking, inference, overlay (``usfm-edge run``).

Must never import torch, training or export code: a cart runs it with the core install alone
(``tests/test_import_layers.py`` enforces it, lazy imports included). Frames are prepared by
``usfm_edge.contracts.prepare``, the code every other stage uses; models run through
``usfm_edge.backends``. ``runtime.app.build_pipeline`` assembles the stages from names.
"""
