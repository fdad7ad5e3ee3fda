"""Notes-to-mel training: the first stage of the two-stage MIDI renderer, by regression or by diffusion.

Both tasks read ``{"cond": (B, 264, F) piano roll, "mel": (B, n_mels, F) log-mel of the same crop}``
(``WaveformDataModule(conditioning="piano_roll", target_mel=True)``; without ``"mel"`` the task
computes it from ``"audio"``). ``vocoder_mel`` states the vocoder's mel settings; rate and hop come from the
piano-roll feature, and at fit start they are checked against the DataModule's ``target_feature``.

* :class:`Notes2MelRegressionTask`: ``l1`` and ``l2`` terms on the log-mel, weights in
  ``loss_weights``, each logged by name.
* :class:`Notes2MelDiffusionTask`: :meth:`waveforge.diffusion.Denoiser.loss` over the normalised
  log-mel at noise levels from ``training_sigmas``; with probability ``cond_drop_prob`` an example's
  roll is replaced by the learned null condition, so guidance is chosen at sampling time.

Validation logs ``val/log_mel_l1`` for both (diffusion: sampled with the model's default settings
every ``sample_every`` validations), and the ``AudioLogger`` callback draws reference and generated
log-mels (``synthesize_mel``) with Griffin-Lim audio of the generated mel.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from waveforge.audio.griffinlim import griffin_lim
from waveforge.audio.mel import MelConfig, MelSpectrogram, mel_band_hz
from waveforge.data.module import MelSettings
from waveforge.diffusion import Denoiser, SamplingConfig, rand_log_normal, rand_vp_cosine
from waveforge.inference.families import SynthesisOptions
from waveforge.inference.families.notes2mel import Notes2MelStage
from waveforge.inference.modelfile import ModelFile
from waveforge.midi.roll import PianoRollConfig
from waveforge.models.config import build_config
from waveforge.models.notes2mel import Notes2Mel, Notes2MelConfig, Notes2MelDenoiser
from waveforge.tasks.base import WaveformTask


class _Notes2MelTask(WaveformTask):
    family = "notes2mel"
    objective: str

    def __init__(self, sample_rate: int, feature: dict | None, mel: dict | None, architecture: dict | None, lr: float,
                 betas: tuple[float, float], weight_decay: float, lr_decay: float):
        super().__init__(sample_rate, feature)
        if not isinstance(self.feature, PianoRollConfig):
            raise ValueError("a notes-to-mel task reads piano rolls: set data.conditioning: piano_roll")
        m = MelSettings(**(mel or {}))  # a plain dict in the hyper-parameters: checkpoints load without pickled classes
        self.mel_config = MelConfig(sample_rate, m.n_fft, self.feature.hop_length, m.win_length, m.n_mels, m.f_min, m.f_max, m.log_floor)
        self.config = build_config(Notes2MelConfig, architecture, "small", {"n_mels": m.n_mels, "log_floor": m.log_floor},
                                   decided_by={"n_mels": "vocoder_mel", "log_floor": "vocoder_mel"})
        self.analysis = MelSpectrogram(self.mel_config)

    def band_hz(self) -> torch.Tensor:
        """The mel bands' centre frequencies (the note prior's starting guess)."""
        m = self.mel_config
        return mel_band_hz(m.n_mels, m.f_min, m.f_max if m.f_max is not None else m.sample_rate / 2)

    def target(self, batch: dict) -> torch.Tensor:
        """``(B, n_mels, F)``: the batch's log-mel, or the crop's analysed here."""
        mel = batch.get("mel")
        if mel is None:
            with torch.no_grad():
                mel = self.analysis(batch["audio"])
        return mel

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        target = getattr(datamodule, "target_feature", None)
        if target is not None and target != self.mel_config:
            raise ValueError(f"the DataModule's target mel {target} differs from the task's mel settings {self.mel_config}")

    def configure_optimizers(self):
        hp = self.hparams
        model = self.trainable()
        prior = list(model.prior.parameters()) if getattr(model, "prior", None) is not None else []
        rest = [p for p in model.parameters() if all(p is not q for q in prior)]
        groups = [{"params": rest}]
        if prior:  # each key's template only sees gradient when that key plays: it gets its own, larger step
            groups.append({"params": prior, "lr": hp.get("prior_lr") or hp.lr, "weight_decay": 0.0})
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: hp.lr_decay ** (step / 1000))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def trainable(self) -> torch.nn.Module:
        raise NotImplementedError

    def stage(self) -> Notes2MelStage:
        """The inference stage (what the exported model runs) on the current weights."""
        raise NotImplementedError

    @torch.no_grad()
    def synthesize_mel(self, cond: torch.Tensor) -> torch.Tensor:
        """``(B, 264, F) -> (B, n_mels, F)`` with the inference path (diffusion: default sampling, seed 0)."""
        return self.stage().mel(cond, SynthesisOptions(seed=0))

    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        """Griffin-Lim audio of the generated mel (the AudioLogger's clips; the vocoder is not in the loop)."""
        mel = self.synthesize_mel(cond).float().cpu()
        return griffin_lim(mel, self.mel_config, n_iter=32).unsqueeze(1)[..., :n_samples]

    def _model_file(self, state_dict: dict, **config) -> ModelFile:
        return ModelFile(
            family=self.family,
            model_config={"objective": self.objective, "notes2mel": self.config.to_dict(), "mel": self.mel_config.to_dict(), **config},
            feature=self.feature,
            sample_rate=self.sample_rate,
            state_dict=state_dict,
            extra={"global_step": int(self.global_step)},
        )


class Notes2MelRegressionTask(_Notes2MelTask):
    """Regression notes-to-mel (:class:`Notes2Mel`): weighted ``l1`` + ``l2`` on the log-mel.

    Args:
        vocoder_mel: the vocoder's mel settings other than rate and hop (which come from the data), as
            ``data.mel``: ``{n_fft, win_length, n_mels, f_min, f_max, log_floor}``; default ``MelSettings()``.
        architecture: the network, ``{preset: small, <Notes2MelConfig field>: value, ...}``
            (:func:`~waveforge.models.config.build_config`; default preset ``small``). ``n_mels`` and
            ``log_floor`` come from ``vocoder_mel``.
        prior_lr: the note prior's learning rate (default ``lr``): each key's template learns only when
            that key plays (the prior itself is ``architecture``'s ``note_frames`` / ``release_frames``).
        loss_weights: ``{"l1": w, "l2": w}``.
        lr, betas, weight_decay: AdamW; ``lr_decay``: factor per 1,000 steps.
    """

    objective = "regression"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        vocoder_mel: dict | None = None,
        architecture: dict[str, Any] | None = None,
        prior_lr: float | None = None,
        loss_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        lr_decay: float = 1.0,
    ):
        super().__init__(sample_rate, feature, vocoder_mel, architecture, lr, betas, weight_decay, lr_decay)
        self.save_hyperparameters()
        self.loss_weights = {"l1": 1.0, "l2": 0.0, **(loss_weights or {})}
        unknown = set(self.loss_weights) - {"l1", "l2"}
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)} (known: l1, l2)")
        self.model = Notes2Mel(self.config, self.band_hz())

    def trainable(self) -> torch.nn.Module:
        return self.model

    def stage(self) -> Notes2MelStage:
        return Notes2MelStage("regression", self.model, self.mel_config)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        error = self.model(batch["cond"]) - self.target(batch)  # (B, n_mels, F)
        terms = {"l1": error.abs().mean(), "l2": error.square().mean()}
        terms["total"] = sum(w * terms[k] for k, w in self.loss_weights.items())
        return terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch)
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name == "total")
        return terms["total"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        terms = self.losses(batch)
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True)
        self.log("val/log_mel_l1", terms["l1"], sync_dist=True)

    def model_file(self) -> ModelFile:
        return self._model_file(self.model.state_dict())


class Notes2MelDiffusionTask(_Notes2MelTask):
    """Spectrogram diffusion (:class:`Notes2MelDenoiser` in a :class:`Denoiser`) with guidance dropout.

    Args (beyond the regression task's architecture and optimiser ones):
        prediction, sigma_data: the preconditioning (:class:`waveforge.diffusion.Denoiser`); the
            state is the log-mel normalised by the architecture's ``mel_offset`` / ``mel_scale``.
        training_sigmas: ``"vp_cosine"`` (uniform t) or ``"log_normal"`` (EDM: ``p_mean``, ``p_std``).
        cond_drop_prob: probability of training on the null condition (0 disables guidance).
        prior_lr: as for regression; ``prior_weight`` weighs the note prior's own L1 on the log-mel,
            added to the diffusion loss.
        sampler, sample_steps, schedule, guidance: default sampling, stored in the exported model.
        ema_decay: exported weights are the EMA.
        sample_every: validations between sampled ``val/log_mel_l1`` figures.
    """

    objective = "diffusion"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        vocoder_mel: dict | None = None,
        architecture: dict[str, Any] | None = None,
        prior_lr: float | None = None,
        prior_weight: float = 1.0,
        prediction: Literal["eps", "x0", "v", "edm"] = "v",
        sigma_data: float = 1.0,
        training_sigmas: Literal["vp_cosine", "log_normal"] = "vp_cosine",
        p_mean: float = -1.2,
        p_std: float = 1.2,
        cond_drop_prob: float = 0.1,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        lr_decay: float = 1.0,
        sampler: str = "dpmpp_2m",
        sample_steps: int = 8,
        schedule: str = "vp_cosine",
        guidance: float = 1.0,
        ema_decay: float = 0.999,
        sample_every: int = 1,
    ):
        super().__init__(sample_rate, feature, vocoder_mel, architecture, lr, betas, weight_decay, lr_decay)
        self.save_hyperparameters()
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must lie in [0, 1), got {cond_drop_prob}")
        if training_sigmas not in ("vp_cosine", "log_normal"):
            raise ValueError(f"unknown training_sigmas {training_sigmas!r}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        self.model = Notes2MelDenoiser(self.config, self.band_hz())
        self.denoiser = Denoiser(self.model, prediction, sigma_data)
        self.ema_model = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
        self.ema_model.requires_grad_(False)  # never optimised; DDP must not wait for its gradients
        self.ema_denoiser = Denoiser(self.ema_model.module, prediction, sigma_data)
        self.sampling = SamplingConfig(sampler=sampler, steps=sample_steps, schedule=schedule, guidance=guidance)
        self._validations = 0

    def trainable(self) -> torch.nn.Module:
        return self.model

    def stage(self) -> Notes2MelStage:
        return Notes2MelStage("diffusion", self.ema_model.module, self.mel_config, self.ema_denoiser, self.sampling)

    def sample_sigmas(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        hp = self.hparams
        if hp.training_sigmas == "log_normal":
            return rand_log_normal((n,), hp.p_mean, hp.p_std, generator=generator).to(self.device)
        return rand_vp_cosine((n,), generator=generator).to(self.device)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x0 = self.model.normalise(self.target(batch))  # (B, n_mels, F)
        roll = batch["cond"]
        drop = torch.rand(roll.shape[0], device=roll.device) < self.hparams.cond_drop_prob
        loss = self.denoiser.loss(x0, self.denoiser.prepare(roll, drop), self.sample_sigmas(x0.shape[0])).mean()
        self.log("train/loss", loss, prog_bar=True)
        if self.model.prior is not None:
            # the prior is trained as a mel predictor in its own right (L1 on the log-mel, as regression is), so
            # the denoiser is conditioned on a first guess of the mel rather than on whatever features help it
            prior_l1 = (self.model.prior(roll) - self.target(batch)).abs().mean()
            self.log("train/prior_l1", prior_l1)
            loss = loss + self.hparams.prior_weight * prior_l1
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.ema_model.update_parameters(self.model)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        target = self.target(batch)
        x0 = self.model.normalise(target)
        g = torch.Generator().manual_seed(batch_idx)  # the same noise levels and noise at every validation
        sigma = self.sample_sigmas(x0.shape[0], g)
        noise = torch.randn(x0.shape, generator=g).to(x0)
        loss = self.ema_denoiser.loss(x0, self.ema_denoiser.prepare(batch["cond"]), sigma, noise).mean()
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        if self._validations % max(1, self.hparams.sample_every) == 0:
            self.log("val/log_mel_l1", (self.synthesize_mel(batch["cond"]) - target).abs().mean(), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._validations += 1

    def model_file(self) -> ModelFile:
        return self._model_file(
            self.ema_model.module.state_dict(),
            prediction=self.denoiser.prediction,
            sigma_data=self.denoiser.sigma_data,
            sampling=self.sampling.to_dict(),
        )
