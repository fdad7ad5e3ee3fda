"""mu-law companding (ITU G.711 curve), any bit depth; thin wrappers over torchaudio."""

from __future__ import annotations

import torch
import torchaudio.functional as AF


def mu_law_encode(audio: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Float audio in [-1, 1] -> integer classes in ``[0, 2**bits)`` (same shape, int64)."""
    return AF.mu_law_encoding(audio.clamp(-1.0, 1.0), 2**bits)


def mu_law_decode(classes: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Integer classes in ``[0, 2**bits)`` -> float audio in [-1, 1] (same shape, float32)."""
    return AF.mu_law_decoding(classes, 2**bits).float()
