"""Fused inner loops for autoregressive generation (numba, compiled at first use and cached on disk).

Each kernel module exposes ``available()``, ``unavailable_reason()`` and functions that take a
PyTorch model, so callers fall back to the PyTorch reference path when numba is missing, and
when the model is not on the CPU (:func:`runs_on`).
"""

from __future__ import annotations

import torch


def runs_on(device: torch.device | str) -> bool:
    """Whether the fused loops can run a model on ``device``. They read the weights and write the
    samples through NumPy views of host memory, so only ``cpu`` qualifies; a model on a GPU samples
    with the PyTorch loop on its own device (callers warn once per call). Tests monkeypatch this to
    take the GPU branch on a CPU-only machine."""
    return torch.device(device).type == "cpu"
