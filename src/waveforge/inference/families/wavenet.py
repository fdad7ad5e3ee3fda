"""WaveNet: autoregressive, so inputs are synthesised whole (the cached loop streams through them)."""

from __future__ import annotations

import torch

from waveforge.inference.families import FamilyAdapter, SynthesisOptions
from waveforge.likelihood import LikelihoodKind
from waveforge.models.wavenet import WaveNet, WaveNetConfig


class WaveNetAdapter(FamilyAdapter):
    name = "wavenet"

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> WaveNet:
        model = WaveNet(WaveNetConfig(**model_config))
        model.load_state_dict(state_dict)
        return model.eval()

    def synthesize(self, model: WaveNet, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        batch = options.batch_size if cond is None else cond.shape[0]
        # a globally conditioned model samples class 0 (SynthesisOptions has no class id)
        global_id = torch.zeros(batch, dtype=torch.long, device=model.head_out.weight.device) if model.config.n_global else None
        return model.generate(
            None if cond is not None else n_samples, cond, global_id,
            temperature=options.temperature, top_p=options.top_p, batch_size=batch, progress=options.progress,
        )[..., :n_samples]

    def likelihood_kind(self, model: WaveNet) -> LikelihoodKind:
        c = model.config
        return LikelihoodKind("mulaw", c.mu_law_bits) if c.output == "mulaw" else LikelihoodKind("linear", 16)

    def log_likelihood(self, model, audio: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(audio | cond)`` in nats, summed: ``audio (B, 1, T)`` -> ``(B,)`` (the model's ``log_prob``)."""
        return model.log_prob(audio, cond).double().sum(dim=-1)


ADAPTER = WaveNetAdapter()
