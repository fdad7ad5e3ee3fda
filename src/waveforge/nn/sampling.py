"""Sampling from the output distributions of autoregressive models: temperature and nucleus (top-p)."""

from __future__ import annotations

import torch


def nucleus_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of classes whose probability mass reaches ``top_p`` (Holtzman et al. 2020).

    ``logits: (..., K)`` -> same shape, with the excluded classes set to ``-inf``. The most likely
    class is always kept, so ``top_p -> 0`` becomes greedy decoding.
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely classes
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_categorical(
    logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``logits: (B, K)`` -> class ids ``(B,)`` int64; ``temperature == 0`` is argmax."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    logits = nucleus_filter(logits.float() / temperature, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
