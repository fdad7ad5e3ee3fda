"""SampleRNN: autoregressive with carried GRU state, so inputs are synthesised whole."""

from __future__ import annotations

import torch

from waveforge.inference.families import SynthesisOptions
from waveforge.likelihood import LikelihoodKind
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
            weights=options.weights,
        )[..., :n_samples]

    def likelihood_kind(self, model: SampleRNN) -> LikelihoodKind:
        return LikelihoodKind("mulaw", model.config.mu_law_bits)

    def log_likelihood(self, model: SampleRNN, audio: torch.Tensor, cond: torch.Tensor | None, chunk: int = 16384) -> torch.Tensor:
        """``log p(audio | cond)`` in nats, summed: ``audio (B, 1, T)`` -> ``(B,)``, ``T`` a multiple of
        ``top_frame_size`` (and of ``hop_length`` when conditioned). The pass runs in chunks with the
        GRU state carried across them, as in truncated-BPTT training, so it equals one whole pass."""
        c = model.config
        classes = self.likelihood_kind(model).classes(audio[:, 0])  # (B, T)
        step = c.hop_length if cond is not None else c.top_frame_size
        chunk = max(step, chunk // step * step)
        context = torch.full((classes.shape[0], c.top_frame_size), model.silence, dtype=torch.long, device=classes.device)
        padded = torch.cat([context, classes], dim=1)
        hidden, total = None, torch.zeros(classes.shape[0], dtype=torch.float64, device=classes.device)
        for lo in range(0, classes.shape[-1], chunk):
            hi = min(lo + chunk, classes.shape[-1])
            cond_slice = None if cond is None else cond[..., lo // c.hop_length : hi // c.hop_length]
            out = model(padded[:, lo : hi + c.top_frame_size], hidden, cond_slice)
            hidden = out.hidden
            total -= torch.nn.functional.cross_entropy(out.logits, classes[:, lo:hi], reduction="none").double().sum(dim=-1)
        return total


ADAPTER = SampleRNNAdapter()
