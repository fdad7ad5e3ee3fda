"""MelGAN: a feed-forward generator, so long inputs are vocoded in chunks with frame context.

Inference uses the reference generator with weight norm folded (``remove_weight_norm``): one
convolution per layer instead of a weight recomputed on every call.

A generator with a phase-integrating head (``output="stft"`` or ``"sines"``) is chunked too, but its
phase is a running sum over the whole input: each chunk starts from the phase the previous
chunk's frames reached, so the chunks join into the whole-input result.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from waveforge.inference.families import FamilyAdapter, SynthesisOptions, chunked_synthesis
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig


class MelGANAdapter(FamilyAdapter):
    name = "melgan"
    compilable = True  # Synthesizer.compile: torch.compile of the plain module

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> MelGANGenerator:
        model = MelGANGenerator(MelGANGeneratorConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.remove_weight_norm().eval()

    def chunk_frames(self, model: MelGANGenerator) -> int:
        """256 frames, or 8x the context when that is wider: larger chunks' activations fall out of
        cache and glibc maps them afresh on every call (``docs/benchmarks.md`` has the chunk sizes tried)."""
        return max(256, 8 * self.context_frames(model))

    def context_frames(self, model: MelGANGenerator) -> int:
        # the generator's own bound (tested): context is computed and thrown away, so no more than that
        return model.receptive_field_frames

    def synthesize(self, model: MelGANGenerator, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        if cond is None:
            raise ValueError("MelGAN needs conditioning")
        return model(_long_enough(model, cond))[..., :n_samples].clamp(-1.0, 1.0)

    def synthesize_chunked(self, model: MelGANGenerator, cond: torch.Tensor, hop: int, chunk_frames: int, context: int, options: SynthesisOptions):
        """Yield the audio of consecutive ``chunk_frames``-frame pieces of ``cond: (B, C, F)``, each ``(B, 1, n * hop)``."""
        n_frames = cond.shape[-1]
        if model.config.output == "waveform":
            yield from chunked_synthesis(self, model, cond, hop, chunk_frames, context, options)
            return
        rate = math.prod(model.config.upsample_factors)  # stft frames per conditioning frame
        phase_before_start = model.head.bin_start.double().expand(cond.shape[0], -1)  # (B, K): the phase before frame `start`
        for start in range(0, n_frames, chunk_frames):
            stop = min(start + chunk_frames, n_frames)
            lo, hi = max(0, start - context), min(n_frames, stop + context)
            window = _long_enough(model, cond[..., lo:hi])
            log_magnitude, increments = model.spectral_frames(window)
            summed = increments.double().cumsum(dim=-1)  # (B, K, L): phase advance from frame lo
            before_lo = phase_before_start - (summed[..., (start - lo) * rate - 1] if start > lo else 0.0)
            phase = model.head.integrate_phase(increments, start=before_lo)
            audio = model.spectral_audio(log_magnitude, increments, phase, window)
            yield audio[..., (start - lo) * hop : (stop - lo) * hop].clamp(-1.0, 1.0)
            phase_before_start = (before_lo + summed[..., (stop - lo) * rate - 1]).remainder(2 * math.pi)


def _long_enough(model: MelGANGenerator, cond: torch.Tensor) -> torch.Tensor:
    short = model.min_frames - cond.shape[-1]
    if short > 0:  # too short for the reflection padding: extend by repetition (the caller crops)
        cond = F.pad(cond, (0, short), mode="replicate")
    return cond


ADAPTER = MelGANAdapter()
