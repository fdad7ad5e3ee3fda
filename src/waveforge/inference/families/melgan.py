"""MelGAN: a feed-forward generator, so long inputs are vocoded in chunks with frame context."""

from __future__ import annotations

import torch

from waveforge.inference.families import SynthesisOptions
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig


class MelGANAdapter:
    name = "melgan"
    # the paper generator sees about +-13 frames; 32 makes chunk seams match a whole pass to float error
    chunk_context_frames = 32

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> MelGANGenerator:
        model = MelGANGenerator(MelGANGeneratorConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.remove_weight_norm().eval()

    def synthesize(self, model: MelGANGenerator, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        if cond is None:
            raise ValueError("MelGAN needs conditioning")
        return model(cond)[..., :n_samples]


ADAPTER = MelGANAdapter()
