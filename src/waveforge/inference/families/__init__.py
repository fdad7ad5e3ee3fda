"""How each model family is rebuilt from a model file and turned into audio.

Every family registers a :class:`FamilyAdapter` here by module path, imported only when used,
so loading a MelGAN never imports the diffusion code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from waveforge.errors import BadInputError


@dataclass(frozen=True)
class SynthesisOptions:
    """Sampling controls; each family reads the ones that apply to it."""

    temperature: float = 1.0  # AR softmax / logistic temperature; WaveGlow's sigma when `sigma` is None
    top_p: float = 1.0  # nucleus sampling for AR models
    steps: int | None = None  # diffusion steps
    sampler: str | None = None  # diffusion sampler name
    guidance: float = 1.0  # classifier-free guidance scale
    sigma: float | None = None  # WaveGlow prior temperature
    seed: int | None = None
    batch_size: int = 1  # unconditional sampling only; conditioned batches follow `cond`
    weights: str = "auto"  # SampleRNN's generation weights: auto, float32 or float16 (SampleRNN.generate)
    progress: bool = False


class FamilyAdapter(Protocol):
    name: str
    #: frames of context on each side that make chunked synthesis match whole-input synthesis;
    #: ``None`` means the family synthesises whole inputs (autoregressive models).
    chunk_context_frames: int | None

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> nn.Module:
        """Rebuild the model, load weights, and make it inference-ready (eval mode, weight norm removed...)."""

    def synthesize(self, model: nn.Module, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        """``cond: (B, C, F)`` or None -> ``(B, 1, n_samples)`` audio in [-1, 1]; ``n_samples = F * hop`` when conditioned."""


def chunked_synthesis(
    adapter: FamilyAdapter, model: nn.Module, cond: torch.Tensor, hop: int, chunk_frames: int, context: int, options: SynthesisOptions
):
    """Yield the audio of consecutive ``chunk_frames``-frame pieces of ``cond: (B, C, F)``, each ``(B, 1, n * hop)``.

    Each piece is synthesised with ``context`` frames of conditioning on both sides, which are
    then cropped away, so the pieces join into the whole-input result when ``context`` covers
    the model's receptive field.
    """
    n_frames = cond.shape[-1]
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        lo, hi = max(0, start - context), min(n_frames, stop + context)
        audio = adapter.synthesize(model, cond[..., lo:hi], (hi - lo) * hop, options)
        yield audio[..., (start - lo) * hop : (stop - lo) * hop]


FAMILIES: dict[str, str] = {
    "melgan": "waveforge.inference.families.melgan",
    "wavenet": "waveforge.inference.families.wavenet",
    "samplernn": "waveforge.inference.families.samplernn",
    "waveglow": "waveforge.inference.families.waveglow",
    "diffwave": "waveforge.inference.families.diffwave",
    "vqvae": "waveforge.inference.families.vqvae",
    "notes2mel": "waveforge.inference.families.notes2mel",  # notes -> mel, alone or composed with a vocoder
}


def get_adapter(family: str, where: str | None = None) -> FamilyAdapter:
    if family not in FAMILIES:
        raise BadInputError(where, f"unknown model family {family!r} (known: {', '.join(sorted(FAMILIES))})")
    try:
        module = importlib.import_module(FAMILIES[family])
    except ModuleNotFoundError:
        raise BadInputError(where, f"model family {family!r} is not available in this waveforge build") from None
    return module.ADAPTER
