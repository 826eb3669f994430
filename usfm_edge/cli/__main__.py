"""``python -m usfm_edge.cli``: the same as the ``usfm-edge`` command."""

from usfm_edge.cli import main

main()
