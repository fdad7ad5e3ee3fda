"""Hierarchical VQ-VAE training, one stage at a time (Jukebox's schedule).

A run trains one part of a :class:`~waveforge.models.vqvae.VQVAEHierarchy`, chosen by ``stage``
and ``level``:

* ``stage="autoencoder"``, any level: that level's encoder, EMA codebook and decoder. The levels
  are independent autoencoders on the waveform, so they may train in any order (or in parallel),
  unless ``condition_on_above`` gives each decoder the codes of the level above: then level ``l``
  needs the trained autoencoder of level ``l + 1``, and they train top-down.
* ``stage="prior"``, top level: the Transformer prior over the top codes.
* ``stage="prior"``, level ``l`` below the top: the upsampler of level ``l``, conditioned on the
  codes of level ``l + 1``. Needs the autoencoders of levels ``l`` and ``l + 1``.

Every task holds the *whole* hierarchy. ``init_from`` (the previous stage's ``last.ckpt`` or an
exported ``.safetensors``) loads every part trained so far; only the stage's own part gets an
optimiser, and everything else stays frozen in eval mode (so no other codebook moves). The last
stage's checkpoint therefore holds all parts, and ``waveforge export`` of it writes the complete
model; ``trained`` in the model file's ``extra`` records the steps each part had.

Stages that do not depend on each other may run in parallel (for example the level-0 upsampler,
which needs autoencoders 0 and 1, beside autoencoder 2 and the top prior). ``init_from`` then lists
several files, and each part comes from the last listed file that trained it.

Loss weights are data (``loss_weights``): the autoencoder loss is
``l1 |x - x^| + l2 (x - x^)^2 + mr_stft L_MRSTFT + commitment beta ||z - sg(e)||^2`` for a
feed-forward decoder and ``nll + commitment`` for a WaveNet decoder; every term is logged by name,
with the codebook's usage and perplexity. Priors log their NLL in nats and bits per code.
"""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import replace
from typing import Any, Literal

import torch
import torch.nn.functional as F

from waveforge.audio.mulaw import mu_law_encode
from waveforge.inference.modelfile import ModelFile, read_model_file
from waveforge.losses.stft import MultiResolutionSTFTLoss
from waveforge.models.config import ConfigError, build_config
from waveforge.models.prior import PriorConfig
from waveforge.models.vqvae import VQVAEConfig, VQVAEHierarchy, codebook_perplexity
from waveforge.models.vqvae_stages import StageSource, merge_stages
from waveforge.tasks.base import WaveformTask

DEFAULT_LOSS_WEIGHTS = {"l1": 1.0, "l2": 0.0, "mr_stft": 1.0, "commitment": 1.0, "nll": 1.0}
STAGES = ("autoencoder", "prior")


def build_vqvae_config(architecture: dict | None, top_prior: dict | None = None, upsampler: dict | None = None) -> VQVAEConfig:
    """The hierarchy of a :class:`VQVAETask`'s ``architecture``, ``top_prior`` and ``upsampler`` mappings
    (:func:`~waveforge.models.config.build_config`): a prior mapping without ``preset`` changes the
    hierarchy preset's own prior."""
    for key in ("top_prior", "upsampler"):
        if key in (architecture or {}):
            raise ConfigError(f"architecture: {key} is a task argument of its own ({key}: {{preset: small, ...}}), not an architecture field")
    config = build_config(VQVAEConfig, architecture, "paper")
    priors = {key: build_config(PriorConfig, mapping, "paper", name=key, base=getattr(config, key))
              for key, mapping in (("top_prior", top_prior), ("upsampler", upsampler))}
    return replace(config, **priors)


class VQVAETask(WaveformTask):
    """One stage of hierarchical VQ-VAE training on unconditional audio (``data.conditioning: none``).

    Args:
        stage, level: what this run trains (see the module docstring).
        init_from: checkpoint or model file of the previous stage, or a list of them (each part comes from
            the last file that trained it). Architectures must equal this one's; a level's training-only
            quantiser settings (beta, EMA, restart threshold) must equal this one's where that file
            trained the level, except for the level this stage retrains.
        architecture: the hierarchy, ``{preset: paper, levels: [...], condition_on_above: ...}``
            (:func:`~waveforge.models.config.build_config` on :class:`VQVAEConfig`; default preset
            ``paper``, Jukebox's sizes). ``levels`` lists every level's :class:`VQVAELevelConfig`
            fields, finest first (``hop_length``, ``codebook_size``, ``code_dim``, ``width``, ``depth``,
            the quantiser's ``beta``, ``ema_decay``, ``restart_threshold``, and ``decoder: wavenet`` with
            ``wavenet: {preset: tiny, ...}`` for a hierarchical WaveNet); it replaces the preset's levels.
            ``restart_threshold`` counts vectors per batch, so a level with fewer vectors per code per
            batch (a coarser hop) needs a lower one to avoid restarting live codes.
        top_prior, upsampler: the priors, ``{preset: small, <PriorConfig field>: value, ...}``; without
            ``preset`` the fields change the architecture preset's own top prior / upsampler. Their
            codebooks and conditioning come from the levels.
        loss_weights: ``l1``, ``l2``, ``mr_stft``, ``commitment``, ``nll`` (WaveNet decoder).
        lr, betas, weight_decay, warmup_steps: AdamW with linear warm-up.
    """

    family = "vqvae"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        stage: Literal["autoencoder", "prior"] = "autoencoder",
        level: int = 0,
        init_from: str | list[str] | None = None,
        architecture: dict[str, Any] | None = None,
        top_prior: dict[str, Any] | None = None,
        upsampler: dict[str, Any] | None = None,
        loss_weights: dict[str, float] | None = None,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
    ):
        super().__init__(sample_rate, feature)
        self.save_hyperparameters()
        if self.feature is not None:
            raise ValueError("VQVAETask models unconditional audio; set data.conditioning: none")
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss term(s) {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        config = build_vqvae_config(architecture, top_prior, upsampler)
        levels = config.levels
        if not 0 <= level < len(levels):
            raise ValueError(f"level must be in [0, {len(levels) - 1}], got {level}")
        self.stage, self.level = stage, level
        self.model = VQVAEHierarchy(config)
        self.mr_stft = MultiResolutionSTFTLoss()
        self._val_histogram: torch.Tensor | None = None
        self._example_audio: torch.Tensor | None = None
        self._initialised = False

    # -- which part trains ---------------------------------------------------------------------
    @property
    def trained_module(self) -> torch.nn.Module:
        return self.model.levels[self.level] if self.stage == "autoencoder" else self.model.prior(self.level)

    @property
    def hop(self) -> int:
        return self.model.config.levels[self.level].hop_length

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:  # frozen parts stay in eval mode: their codebooks must not move
            self.model.eval()
            self.trained_module.train()
        return self

    def setup(self, stage: str) -> None:
        # runs before Lightning restores a resumed checkpoint, which then overrides these weights
        if stage == "fit" and not self._initialised:
            if self.hparams.init_from:
                self.load_previous_stage(self.hparams.init_from)
            self._check_prerequisites()
            self._initialised = True
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in self.trained_module.parameters():
            p.requires_grad_(True)

    def load_previous_stage(self, paths: str | Path | list[str | Path]) -> None:
        """Load the hierarchy trained so far from one checkpoint or model file, or from several
        (:func:`waveforge.models.vqvae_stages.merge_stages`: each part from the last file that trained it)."""
        paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
        if not paths:
            raise ValueError("init_from lists no files")
        sources = [StageSource(str(path), *self._read_stage(path)) for path in paths]
        merge_stages(self.model, sources, retrained_level=self.level if self.stage == "autoencoder" else None)

    def _read_stage(self, path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
        if path.suffix == ".safetensors":
            mf = read_model_file(path)
            if mf.family != self.family:
                raise ValueError(f"{path}: a {mf.family} model, not a vqvae hierarchy")
            return mf.model_config, mf.state_dict
        from waveforge.tasks.export import load_task

        previous = load_task(path)
        if not isinstance(previous, VQVAETask):
            raise ValueError(f"{path}: written by {type(previous).__name__}, not VQVAETask")
        return previous.model.config.to_dict(), previous.model.state_dict()

    def _check_prerequisites(self) -> None:
        if self.stage == "autoencoder":
            if self.model.levels[self.level].conditioned and int(self.model.trained[self.level + 1, 0]) == 0:
                raise ValueError(
                    f"the decoder of level {self.level} is conditioned on level {self.level + 1}, whose autoencoder has no "
                    f"training steps: train the levels top-down (set init_from to level {self.level + 1}'s autoencoder stage)"
                )
            return
        needed = [self.level] + ([self.level + 1] if self.level < self.model.top_level else [])
        missing = [lv for lv in needed if int(self.model.trained[lv, 0]) == 0]
        if missing:
            raise ValueError(
                f"the prior of level {self.level} needs trained autoencoders of level(s) {needed}; "
                f"level(s) {missing} have no training steps (set init_from to the last autoencoder stage)"
            )

    # -- steps ---------------------------------------------------------------------------------
    def _check_audio(self, audio: torch.Tensor) -> None:
        uses_above = self.stage == "prior" or self.model.levels[self.level].conditioned
        multiple = self.model.config.levels[min(self.level + 1, self.model.top_level)].hop_length if uses_above else self.hop
        if audio.shape[-1] % multiple:
            raise ValueError(f"segment length {audio.shape[-1]} must be a multiple of {multiple} for this stage")

    def _prior_tokens(self, audio: torch.Tensor, random_crop: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Codes of the trained level (and the level above, for an upsampler), cropped to the prior's context."""
        prior = self.model.prior(self.level)
        ratio, context = prior.config.cond_ratio, prior.config.context
        with torch.no_grad():
            tokens = self.model.levels[self.level].encode(audio)  # (B, T / hop)
            cond = self.model.levels[self.level + 1].encode(audio) if prior.conditional else None  # (B, T / hop_up)
        n = tokens.shape[-1]
        if n > context:
            n_starts = (n - context) // ratio + 1
            start = int(torch.randint(0, n_starts, ())) * ratio if random_crop else 0
            tokens = tokens[:, start : start + context]
            if cond is not None:
                cond = cond[:, start // ratio : (start + context) // ratio]
        return tokens, cond

    def _above(self, audio: torch.Tensor) -> torch.Tensor | None:
        """The level above's code vectors for a conditioned decoder, from its frozen encoder."""
        if not self.model.levels[self.level].conditioned:
            return None
        with torch.no_grad():
            return self.model.above_vectors(self.level, self.model.levels[self.level + 1].encode(audio))

    def _autoencoder_terms(self, audio: torch.Tensor):
        out = self.model.levels[self.level](audio, self._above(audio))
        terms = {"commitment": out.quantizer.commitment_loss}
        if out.reconstruction is not None:
            terms["l1"] = F.l1_loss(out.reconstruction, audio)
            terms["l2"] = F.mse_loss(out.reconstruction, audio)
            terms["mr_stft"] = self.mr_stft(out.reconstruction, audio).total
        else:
            wavenet = self.model.levels[self.level].decoder
            terms["nll"] = wavenet.loss(out.logits, mu_law_encode(audio[:, 0], wavenet.config.mu_law_bits))
        return out, terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        audio = batch["audio"]  # (B, 1, T)
        self._check_audio(audio)
        if self.stage == "autoencoder":
            out, terms = self._autoencoder_terms(audio)
            loss = sum(self.loss_weights[k] * v for k, v in terms.items())
            q = out.quantizer
            self.log_dict({f"train/{k}": v for k, v in terms.items()})
            self.log_dict({"train/codebook_usage": q.usage, "train/batch_usage": q.batch_usage, "train/perplexity": q.perplexity,
                           "train/restarted_codes": float(q.restarted)})
            self.model.trained[self.level, 0] += 1
        else:
            tokens, cond = self._prior_tokens(audio, random_crop=True)
            loss = self.model.prior(self.level).loss(self.model.prior(self.level)(tokens, cond), tokens)
            self.log("train/bits_per_code", loss / math.log(2.0))
            self.model.trained[self.level, 1] += 1
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        k = self.model.config.levels[self.level].codebook_size
        self._val_histogram = torch.zeros(k, dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        audio = batch["audio"]
        self._check_audio(audio)
        if batch_idx == 0:
            self._example_audio = audio.detach()
        if self.stage == "autoencoder":
            out, terms = self._autoencoder_terms(audio)
            self._val_histogram += torch.bincount(out.quantizer.codes.flatten(), minlength=self._val_histogram.numel())
            if out.reconstruction is not None:
                # the training loss's form (spectral convergence over the batch): per crop, a near-silent
                # validation crop's term can dwarf the rest and make the curve unreadable
                self.log("val/mr_stft", self.mr_stft(out.reconstruction, audio).total, prog_bar=True, sync_dist=True)
            else:
                self.log("val/nll", terms["nll"], prog_bar=True, sync_dist=True)
        else:
            tokens, cond = self._prior_tokens(audio, random_crop=False)
            nll = self.model.prior(self.level).loss(self.model.prior(self.level)(tokens, cond), tokens)
            self.log("val/nll", nll, prog_bar=True, sync_dist=True)
            self.log("val/bits_per_code", nll / math.log(2.0), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.stage != "autoencoder" or self._val_histogram is None or self._val_histogram.sum() == 0:
            return
        hist = self.all_gather(self._val_histogram)
        hist = hist.sum(0) if hist.dim() > 1 else hist
        self.log("val/codebook_usage", (hist > 0).float().mean(), rank_zero_only=True)
        self.log("val/perplexity", codebook_perplexity(hist), rank_zero_only=True)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.trained_module.parameters()]
        opt = torch.optim.AdamW(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        warmup = max(1, hp.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- use -----------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        """For the audio logger: the autoencoder's reconstruction of the first validation clips, or
        codes drawn by the prior being trained (given the clips' upper codes for an upsampler),
        decoded by that level's decoder."""
        if self._example_audio is None:
            return torch.zeros(1, 1, n_samples, device=self.device)
        multiple = self.model.hop_multiple
        n = max(multiple, n_samples // multiple * multiple)
        audio = self._example_audio[..., :n]
        level = self.model.levels[self.level]
        if self.stage == "autoencoder":
            out = level.decode(level.encode(audio), self._above(audio))
        else:
            prior = self.model.prior(self.level)
            if prior.conditional:
                cond_codes = self.model.levels[self.level + 1].encode(audio)
                codes = prior.generate(cond_codes.shape[-1] * prior.config.cond_ratio, cond=cond_codes)
            else:
                codes = prior.generate(n // self.hop, batch_size=audio.shape[0])
            out = level.decode(codes, self._above(audio))
        return F.pad(out, (0, max(0, n_samples - out.shape[-1])))[..., :n_samples]

    def model_file(self) -> ModelFile:
        return ModelFile(
            family=self.family,
            model_config=self.model.config.to_dict(),
            feature=None,
            sample_rate=self.sample_rate,
            state_dict=self.model.state_dict(),
            extra={"trained": self.model.trained.tolist(), "last_stage": self.stage, "last_level": self.level},
        )
