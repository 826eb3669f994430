"""Workarounds for third-party packaging problems, each with the reason in its module."""
