"""SampleRNN: autoregressive with carried GRU state, so inputs are synthesised whole."""

from __future__ import annotations

import torch

from waveforge.inference.families import FamilyAdapter, SynthesisOptions
from waveforge.likelihood import LikelihoodKind
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig


class SampleRNNAdapter(FamilyAdapter):
    name = "samplernn"

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> SampleRNN:
        model = SampleRNN(SampleRNNConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.eval()

    def synthesize(self, model: SampleRNN, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        return model.generate(
            None if cond is not None else n_samples, cond,
            temperature=options.temperature, top_p=options.top_p, batch_size=options.batch_size, progress=options.progress,
            weights=options.weights,
        )[..., :n_samples]

    def likelihood_kind(self, model: SampleRNN) -> LikelihoodKind:
        return LikelihoodKind("mulaw", model.config.mu_law_bits)

    def log_likelihood(self, model, audio: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(audio | cond)`` in nats, summed: ``audio (B, 1, T)`` -> ``(B,)`` (the model's ``log_prob``)."""
        return model.log_prob(audio, cond).double().sum(dim=-1)


ADAPTER = SampleRNNAdapter()
