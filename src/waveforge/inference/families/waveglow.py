"""WaveGlow: sampling inverts the flow from Gaussian noise; long inputs are chunked inside the model.

The Synthesizer's own chunking would draw fresh noise per chunk, so this adapter asks for whole
inputs (``context_frames`` is ``None``) and lets :meth:`WaveGlow.infer` chunk with the noise drawn
once for the whole input, which matches a whole-input pass exactly.
"""

from __future__ import annotations

import torch

from waveforge.inference.families import FamilyAdapter, SynthesisOptions
from waveforge.likelihood import LikelihoodKind
from waveforge.models.waveglow import WaveGlow, WaveGlowConfig

#: frames per chunk inside WaveGlow.infer (~24 s at 22.05 kHz / hop 256; bounds activation memory)
CHUNK_FRAMES = 2048


class WaveGlowAdapter(FamilyAdapter):
    name = "waveglow"

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> WaveGlow:
        model = WaveGlow(WaveGlowConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.remove_weight_norm().eval()

    def synthesize(self, model: WaveGlow, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        if cond is None:
            raise ValueError("WaveGlow needs conditioning (mel or piano roll)")
        # `--sigma` when given, else the model's own infer_sigma (0.6 unless trained otherwise)
        return model.infer(cond, sigma=options.sigma, chunk_frames=CHUNK_FRAMES)[..., :n_samples].clamp(-1, 1)

    def likelihood_kind(self, model: WaveGlow) -> LikelihoodKind:
        return LikelihoodKind("continuous")

    def log_likelihood(self, model: WaveGlow, audio: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The flow's exact ``log p(audio | cond)`` (a density, nats, summed): ``audio (B, 1, T)`` -> ``(B,)``."""
        return model.log_prob(audio, cond)


ADAPTER = WaveGlowAdapter()
