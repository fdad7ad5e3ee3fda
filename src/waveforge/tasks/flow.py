"""Flow vocoder training (WaveGlow): maximum likelihood, one loss, no discriminator.

The loss is the flow's negative log-likelihood per audio sample (:meth:`WaveGlow.nll <waveforge.models.waveglow.WaveGlow.nll>`: :func:`waveforge.losses.flow.flow_nll`),
logged in nats and bits per sample with its prior and log-determinant terms. Validation logs the
held-out NLL; the audio callback samples with ``infer_sigma`` (the paper's 0.6).
"""

from __future__ import annotations

from typing import Any

import torch

from waveforge.inference.modelfile import ModelFile
from waveforge.models.config import build_config
from waveforge.models.waveglow import WaveGlow, WaveGlowConfig
from waveforge.tasks.base import WaveformTask


class FlowVocoderTask(WaveformTask):
    """Trains a :class:`WaveGlow` on ``audio: (B, 1, T)`` given ``cond: (B, C, T // hop)``.

    Args:
        architecture: the flow, ``{preset: paper, <WaveGlowConfig field>: value, ...}``
            (:func:`~waveforge.models.config.build_config`; default preset ``paper``, the published
            model). ``cond_channels`` and ``hop_length`` come from the data's feature.
        infer_sigma: prior temperature of sampling: the logged audio's and the exported model's
            default (0.6 in the paper); it sets the config's ``infer_sigma``.
        lr: Adam learning rate (1e-4 in the paper).
        lr_decay: multiplicative decay applied every 1000 steps (1.0: constant).
    """

    family = "waveglow"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        architecture: dict[str, Any] | None = None,
        infer_sigma: float = 0.6,
        lr: float = 1e-4,
        lr_decay: float = 1.0,
    ):
        super().__init__(sample_rate, feature)
        self.save_hyperparameters()
        if self.feature is None:
            raise ValueError("FlowVocoderTask needs conditioning (mel or piano_roll); got an unconditional data setup")
        decided = {"cond_channels": self.cond_channels, "hop_length": self.feature.hop_length, "infer_sigma": infer_sigma}
        config = build_config(WaveGlowConfig, architecture, "paper", decided, decided_by={"infer_sigma": "the task argument infer_sigma"})
        self.model = WaveGlow(config)

    def _nll(self, batch: dict):
        return self.model.nll(batch["audio"], batch["cond"])  # (B, 1, T), (B, C, T // hop)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        nll = self._nll(batch)
        self.log("train/nll", nll.nats_per_sample, prog_bar=True)
        self.log_dict({"train/bits_per_sample": nll.bits_per_sample, "train/prior": nll.prior, "train/log_det": nll.log_det})
        return nll.loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        nll = self._nll(batch)
        self.log("val/nll", nll.nats_per_sample, prog_bar=True, sync_dist=True)
        self.log("val/bits_per_sample", nll.bits_per_sample, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_decay == 1.0:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=self.hparams.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- use -----------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        return self.model.infer(cond)[..., :n_samples].clamp(-1, 1)

    def model_file(self) -> ModelFile:
        return self.model_file_for(self.model, global_step=int(self.global_step), receptive_field_frames=self.model.receptive_field_frames)
