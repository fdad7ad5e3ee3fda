"""Diffusion training (DiffWave backbone, continuous-time noise levels, classifier-free guidance dropout).

One loss, :meth:`waveforge.diffusion.Denoiser.loss`, at noise levels drawn from ``training_sigmas``;
with probability ``cond_drop_prob`` an example's condition is replaced by the model's learned null
condition, so the exported model supports guidance (``--guidance``) at sampling time.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from waveforge.diffusion import (
    DDPM_BETAS,
    Denoiser,
    SamplingConfig,
    generate,
    rand_log_normal,
    rand_vp_cosine,
    rand_vp_linear,
)
from waveforge.inference.modelfile import ModelFile
from waveforge.models.config import build_config
from waveforge.models.diffwave import DiffWave, DiffWaveConfig
from waveforge.tasks.base import WaveformTask


class DiffusionTask(WaveformTask):
    """Trains a :class:`DiffWave` denoiser on ``audio: (B, 1, T)`` (and ``cond: (B, C, T // hop)`` if conditioned).

    Args:
        architecture: the backbone, ``{preset: paper, <DiffWaveConfig field>: value, ...}``
            (:func:`~waveforge.models.config.build_config`; default preset ``paper``, the paper's
            vocoder). ``cond_channels`` and ``hop_length`` come from the data's feature
            (unconditional: 0 and 1).
        prediction: what the network predicts, ``"eps"``, ``"x0"``, ``"v"`` or ``"edm"`` (see ``Denoiser``).
        sigma_data: data standard deviation used by the preconditioning.
        training_sigmas: noise-level distribution: ``"vp_cosine"`` / ``"vp_linear"`` (uniform t) or
            ``"log_normal"`` (EDM, ``ln sigma ~ N(p_mean, p_std^2)``).
        beta_min, beta_max: the continuous linear-beta schedule for ``"vp_linear"`` (DDPM: 0.1, 20).
        cond_drop_prob: classifier-free guidance dropout probability (0 disables it).
        lr, betas, weight_decay: AdamW settings (DiffWave: 2e-4).
        sampler, sample_steps, schedule, guidance: default sampling settings, stored in the exported model.
    """

    family = "diffwave"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        architecture: dict[str, Any] | None = None,
        prediction: Literal["eps", "x0", "v", "edm"] = "v",
        sigma_data: float = 0.5,
        training_sigmas: Literal["vp_cosine", "vp_linear", "log_normal"] = "vp_cosine",
        p_mean: float = -1.2,
        p_std: float = 1.2,
        beta_min: float = DDPM_BETAS[0],
        beta_max: float = DDPM_BETAS[1],
        cond_drop_prob: float = 0.1,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        sampler: str = "dpmpp_2m",
        sample_steps: int = 12,
        schedule: str = "vp_cosine",
        guidance: float = 1.0,
        ema_decay: float = 0.9999,
    ):
        super().__init__(sample_rate, feature)
        self.save_hyperparameters()
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must lie in [0, 1), got {cond_drop_prob}")
        if training_sigmas not in ("vp_cosine", "vp_linear", "log_normal"):
            raise ValueError(f"unknown training_sigmas {training_sigmas!r}")
        decided = {"cond_channels": self.cond_channels, "hop_length": self.hop_length or 1}
        self.config = build_config(DiffWaveConfig, architecture, "paper", decided)
        self.model = DiffWave(self.config)
        self.denoiser = Denoiser(self.model, prediction, sigma_data)
        # EMA of the weights (DiffWave/EDM practice); sampling, validation audio and export use it
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        self.ema_model = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
        self.ema_model.requires_grad_(False)  # never optimised; DDP must not wait for its gradients
        self.ema_denoiser = Denoiser(self.ema_model.module, prediction, sigma_data)
        self.sampling = SamplingConfig(sampler=sampler, steps=sample_steps, schedule=schedule, guidance=guidance)

    # -- training ------------------------------------------------------------------------------
    def sample_sigmas(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        hp = self.hparams
        if hp.training_sigmas == "log_normal":
            sigma = rand_log_normal((n,), hp.p_mean, hp.p_std, generator=generator)
        elif hp.training_sigmas == "vp_linear":
            sigma = rand_vp_linear((n,), hp.beta_min, hp.beta_max, generator=generator)
        else:
            sigma = rand_vp_cosine((n,), generator=generator)
        return sigma.to(self.device)

    def _condition(self, batch: dict, drop_prob: float):
        cond = batch.get("cond") if self.model.conditional else None
        if cond is None:
            return None
        drop = torch.rand(cond.shape[0], device=cond.device) < drop_prob if drop_prob > 0 else None
        return self.model.prepare(cond, drop, precompute_layers=False)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        audio = batch["audio"]  # (B, 1, T)
        cond = self._condition(batch, self.hparams.cond_drop_prob)
        loss = self.denoiser.loss(audio, cond, self.sample_sigmas(audio.shape[0])).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.ema_model.update_parameters(self.model)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        audio = batch["audio"]
        g = torch.Generator().manual_seed(batch_idx)  # the same noise levels and noise at every validation
        sigma = self.sample_sigmas(audio.shape[0], g)
        noise = torch.randn(audio.shape, generator=g).to(audio)
        loss = self.denoiser.loss(audio, self._condition(batch, 0.0), sigma, noise).mean()
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.AdamW(self.model.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)

    # -- use -----------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        return generate(self.ema_denoiser, cond, n_samples, self.sampling, batch_size=1 if cond is None else cond.shape[0])

    def model_file(self) -> ModelFile:
        return ModelFile(
            family=self.family,
            model_config={
                "diffwave": self.config.to_dict(),
                "prediction": self.denoiser.prediction,
                "sigma_data": self.denoiser.sigma_data,
                "sampling": self.sampling.to_dict(),
            },
            feature=self.feature,
            sample_rate=self.sample_rate,
            state_dict=self.ema_model.module.state_dict(),
            extra={"global_step": int(self.global_step), "ema_decay": self.hparams.ema_decay, "receptive_field_samples": self.model.receptive_field()},
        )
