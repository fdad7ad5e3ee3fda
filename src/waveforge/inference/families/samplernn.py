"""SampleRNN: autoregressive with carried GRU state, so inputs are synthesised whole."""

from __future__ import annotations

import torch

from waveforge.inference.families import SynthesisOptions
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig


class SampleRNNAdapter:
    name = "samplernn"
    chunk_context_frames = None

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> SampleRNN:
        model = SampleRNN(SampleRNNConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.eval()

    def synthesize(self, model: SampleRNN, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        return model.generate(
            None if cond is not None else n_samples, cond,
            temperature=options.temperature, top_p=options.top_p, batch_size=options.batch_size, progress=options.progress,
        )[..., :n_samples]


ADAPTER = SampleRNNAdapter()
