"""Faster equivalents of the models' reference math, one module per family, each chosen by an
explicit argument of the model (``backend=``) and tested equal to the reference path.

* ``wavenet``, ``samplernn``: fused inner loops for autoregressive generation (numba, compiled at
  first use and cached on disk); they expose ``available()`` and ``unavailable_reason()``, so
  callers fall back to the PyTorch loop when numba is missing, and when the model is not on the
  CPU (:func:`runs_on`).
* ``waveglow``: the flow's inverse as time-major GEMMs (PyTorch only).
* ``primitives``: the spin barrier, float16 weights and MKL's packed GEMM the numba loops share.
"""

from __future__ import annotations

import torch


def runs_on(device: torch.device | str) -> bool:
    """Whether the fused loops can run a model on ``device``. They read the weights and write the
    samples through NumPy views of host memory, so only ``cpu`` qualifies; a model on a GPU samples
    with the PyTorch loop on its own device (callers warn once per call). Tests monkeypatch this to
    take the GPU branch on a CPU-only machine."""
    return torch.device(device).type == "cpu"
