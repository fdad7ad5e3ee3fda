"""Fused inner loops for autoregressive generation (numba, compiled at first use and cached on disk).

Each kernel module exposes ``available()``, ``unavailable_reason()`` and functions that take a
PyTorch model, so callers fall back to the PyTorch reference path when numba is missing.
"""
