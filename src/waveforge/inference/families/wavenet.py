"""WaveNet: autoregressive, so inputs are synthesised whole (the cached loop streams through them)."""

from __future__ import annotations

import torch

from waveforge.inference.families import SynthesisOptions
from waveforge.models.wavenet import WaveNet, WaveNetConfig


class WaveNetAdapter:
    name = "wavenet"
    chunk_context_frames = None  # whole inputs: chunking would restart the autoregression

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> WaveNet:
        model = WaveNet(WaveNetConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.eval()

    def synthesize(self, model: WaveNet, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        batch = options.batch_size if cond is None else cond.shape[0]
        # a globally conditioned model samples class 0 (SynthesisOptions has no class id)
        global_id = torch.zeros(batch, dtype=torch.long) if model.config.n_global else None
        return model.generate(
            None if cond is not None else n_samples, cond, global_id,
            temperature=options.temperature, top_p=options.top_p, batch_size=batch, progress=options.progress,
        )[..., :n_samples]


ADAPTER = WaveNetAdapter()
