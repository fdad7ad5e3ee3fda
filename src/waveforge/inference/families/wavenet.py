"""WaveNet: autoregressive, so inputs are synthesised whole (the cached loop streams through them)."""

from __future__ import annotations

import torch

from waveforge.inference.families import SynthesisOptions
from waveforge.likelihood import LikelihoodKind
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
        global_id = torch.zeros(batch, dtype=torch.long, device=model.head_out.weight.device) if model.config.n_global else None
        return model.generate(
            None if cond is not None else n_samples, cond, global_id,
            temperature=options.temperature, top_p=options.top_p, batch_size=batch, progress=options.progress,
        )[..., :n_samples]

    def likelihood_kind(self, model: WaveNet) -> LikelihoodKind:
        c = model.config
        return LikelihoodKind("mulaw", c.mu_law_bits) if c.output == "mulaw" else LikelihoodKind("linear", 16)

    def log_likelihood(self, model: WaveNet, audio: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Teacher-forced ``log p(audio | cond)`` in nats, summed over samples: ``audio (B, 1, T)`` -> ``(B,)``."""
        if model.config.output == "mulaw":
            targets = self.likelihood_kind(model).classes(audio[:, 0])  # (B, T)
            log_probs = -torch.nn.functional.cross_entropy(model(model.shift_right(targets), cond), targets, reduction="none")
        else:
            from waveforge.losses.logistic import discretized_mix_logistic_log_prob

            c = model.config
            log_probs = discretized_mix_logistic_log_prob(model(model.shift_right(audio), cond), audio, c.n_mixtures, c.logistic_classes)
        return log_probs.double().sum(dim=-1)


ADAPTER = WaveNetAdapter()
