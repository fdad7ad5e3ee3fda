"""Autoregressive training: WaveNet (teacher forcing) and SampleRNN (truncated BPTT).

Both minimise the negative log-likelihood of the next sample, logged in nats per sample
(``train/nll``, ``val/nll``). Batches are ``{"audio": (B, 1, T), "cond": (B, C, T // hop)}``
(``cond`` absent when unconditional).
"""

from __future__ import annotations

from typing import Any

import torch

from waveforge.inference.modelfile import ModelFile
from waveforge.models.config import build_config
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig
from waveforge.tasks.base import WaveformTask


class WaveNetTask(WaveformTask):
    """Teacher-forced WaveNet training.

    Args:
        architecture: the network, ``{preset: small, <WaveNetConfig field>: value, ...}`` (e.g.
            ``{preset: paper, output: mulaw}``; :func:`~waveforge.models.config.build_config`, default
            preset ``small``). ``cond_channels`` (and ``hop_length`` when conditioned) come from the data.
        lr, betas, weight_decay: Adam; ``lr_decay`` multiplies the rate every 1000 steps.
        sample_temperature: temperature of the validation audio examples.
    """

    family = "wavenet"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        architecture: dict[str, Any] | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        lr_decay: float = 1.0,
        sample_temperature: float = 1.0,
    ):
        super().__init__(sample_rate, feature)
        self.save_hyperparameters()
        self.model = WaveNet(build_config(WaveNetConfig, architecture, "small", self._decided()))

    def _nll(self, batch: dict) -> torch.Tensor:
        """Mean NLL per sample (nats): ``audio (B, 1, T)``, ``cond (B, C, T // hop)``."""
        return -self.model.log_prob(batch["audio"], batch.get("cond")).mean()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._nll(batch)
        self.log("train/nll", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/nll", self._nll(batch), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.model.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        if hp.lr_decay == 1.0:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=hp.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        global_id = None
        if self.model.config.n_global:
            global_id = torch.zeros(1 if cond is None else cond.shape[0], dtype=torch.long, device=self.device)
        return self.model.generate(n_samples, cond, global_id, temperature=self.hparams.sample_temperature)

    def model_file(self) -> ModelFile:
        return self.model_file_for(self.model, global_step=int(self.global_step), receptive_field=self.model.config.receptive_field)


class SampleRNNTask(WaveformTask):
    """SampleRNN with truncated backpropagation through time.

    Each training segment is cut into subsequences of ``tbptt_length`` samples; the hidden state
    is carried from one to the next and detached, and each subsequence takes one optimiser step
    (manual optimisation), as in the paper.

    Args:
        architecture: the network, ``{preset: paper, <SampleRNNConfig field>: value, ...}``
            (:func:`~waveforge.models.config.build_config`; default preset ``paper``).
            ``cond_channels`` (and ``hop_length`` when conditioned) come from the data.
        tbptt_length: samples per subsequence, a multiple of the top frame size (and of the hop
            when conditioned); 512 in the paper's setup of 8-second sequences at 16 kHz.
        lr, gradient_clip: Adam learning rate and the gradient-norm clip (1.0 in the paper).
    """

    family = "samplernn"

    def __init__(
        self,
        sample_rate: int = 16000,
        feature: dict | None = None,
        architecture: dict[str, Any] | None = None,
        tbptt_length: int = 512,
        lr: float = 1e-3,
        gradient_clip: float = 1.0,
        sample_temperature: float = 1.0,
    ):
        super().__init__(sample_rate, feature)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = SampleRNN(build_config(SampleRNNConfig, architecture, "paper", self._decided()))
        c = self.model.config
        multiple = c.hop_length if c.cond_channels else c.top_frame_size
        if tbptt_length <= 0 or tbptt_length % multiple:
            raise ValueError(f"tbptt_length ({tbptt_length}) must be a positive multiple of {multiple}")

    def _subsequences(self, batch: dict):
        """Yield ``(samples (B, FS1 + L), targets (B, L), cond slice)`` over the segment, in order."""
        length = self.hparams.tbptt_length
        if batch["audio"].shape[-1] % length:
            raise ValueError(f"segment length {batch['audio'].shape[-1]} is not a multiple of tbptt_length {length}")
        return self.model.subsequences(batch["audio"], batch.get("cond"), length)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt = self.optimizers()
        hidden = None
        losses = []
        for samples, targets, cond in self._subsequences(batch):
            out = self.model(samples, hidden, cond)
            loss = self.model.loss(out.logits, targets)
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self.clip_gradients(opt, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm")
            opt.step()
            hidden = tuple(h.detach() for h in out.hidden)  # truncated BPTT: carry the state, not the graph
            losses.append(loss.detach())
        self.log("train/nll", torch.stack(losses).mean(), prog_bar=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        hidden, losses = None, []
        for samples, targets, cond in self._subsequences(batch):
            out = self.model(samples, hidden, cond)
            hidden = out.hidden
            losses.append(self.model.loss(out.logits, targets))
        self.log("val/nll", torch.stack(losses).mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        return self.model.generate(n_samples, cond, temperature=self.hparams.sample_temperature)

    def model_file(self) -> ModelFile:
        return self.model_file_for(self.model, global_step=int(self.global_step))
