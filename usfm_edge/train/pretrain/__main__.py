"""``python -m usfm_edge.train.pretrain`` (the torchrun entry point): the same options as
``usfm-edge pretrain``."""

from usfm_edge.cli.lazy import run_standalone
from usfm_edge.cli.pretrain import pretrain

run_standalone(pretrain, "usfm_edge.train.pretrain")
