"""Describe the machine a benchmark ran on: one description for every script and for
``usfm-edge bench`` (``usfm_edge.bench.machine``)."""

from usfm_edge.bench.machine import cpu_model, describe

__all__ = ["cpu_model", "describe"]
