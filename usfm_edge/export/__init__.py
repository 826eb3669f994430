"""Distillation, INT8 quantization and deployment bundles per backend. Issue #7 builds it."""
