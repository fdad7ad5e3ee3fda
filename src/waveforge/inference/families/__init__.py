"""How each model family is rebuilt from a model file and turned into audio.

Every family registers a :class:`FamilyAdapter` here by module path, imported only when used,
so loading a MelGAN never imports the diffusion code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from waveforge.errors import BadInputError

if TYPE_CHECKING:
    from waveforge.likelihood import LikelihoodKind


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


class FamilyAdapter:
    """How one family's model is rebuilt from a model file and turned into audio.

    Every adapter subclasses this and implements :meth:`build` and :meth:`synthesize`. The other
    capabilities are declared here with their defaults, so callers never probe with ``hasattr``:

    * chunking: :meth:`context_frames` is ``None`` for a family that synthesises whole inputs
      (the default: autoregressive models, WaveGlow, the VQ-VAE); otherwise the frames of context
      each side of a chunk. :meth:`chunk_frames` is the chunk length, :meth:`synthesize_chunked`
      yields the chunks (by default each synthesised with its context, which is then cropped).
    * ``compilable``: whether :meth:`Synthesizer.compile` may ``torch.compile`` the model.
    * :meth:`synthesizer_class`: a family's own Synthesizer subclass (``None``: the plain one).
    * likelihood: :meth:`likelihood_kind` is ``None`` for families without one (the default);
      otherwise :meth:`log_likelihood` gives ``log p(audio | cond)`` (``waveforge eval``).
    """

    name: str = ""
    #: Synthesizer.compile (``--compile``) may wrap the model in torch.compile
    compilable: bool = False

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> nn.Module:
        """Rebuild the model, load weights, and make it inference-ready (eval mode, weight norm removed...)."""
        raise NotImplementedError

    def synthesize(self, model: nn.Module, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        """``cond: (B, C, F)`` or None -> ``(B, 1, n_samples)`` audio in [-1, 1]; ``n_samples = F * hop`` when conditioned."""
        raise NotImplementedError

    def synthesizer_class(self, model: nn.Module) -> type | None:
        """The :class:`~waveforge.inference.synthesizer.Synthesizer` subclass ``waveforge.load`` returns
        for ``model``, or ``None`` for the plain one (notes2mel: its two-stage front ends)."""
        return None

    # -- chunking --------------------------------------------------------------------------------
    def context_frames(self, model: nn.Module) -> int | None:
        """Frames of context on each side that make chunked synthesis match a whole-input pass;
        ``None``: this family synthesises whole inputs."""
        return None

    def chunk_frames(self, model: nn.Module) -> int:
        """Frames per chunk when :meth:`context_frames` is not ``None``."""
        return 512

    def synthesize_chunked(
        self, model: nn.Module, cond: torch.Tensor, hop: int, chunk_frames: int, context: int, options: SynthesisOptions
    ):
        """Yield the audio of consecutive ``chunk_frames``-frame pieces of ``cond: (B, C, F)``, each
        ``(B, 1, n * hop)``; override for families whose chunks carry state."""
        yield from chunked_synthesis(self, model, cond, hop, chunk_frames, context, options)

    # -- likelihood ------------------------------------------------------------------------------
    def likelihood_kind(self, model: nn.Module) -> "LikelihoodKind | None":
        """What :meth:`log_likelihood` measures (:class:`waveforge.likelihood.LikelihoodKind`), or ``None``."""
        return None

    def log_likelihood(self, model: nn.Module, audio: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(audio | cond)`` in nats, summed over samples, float64: ``audio (B, 1, T)`` -> ``(B,)``."""
        raise NotImplementedError(f"the {self.name} family has no likelihood")


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
