"""GAN vocoder training (MelGAN generator; MelGAN multi-scale and/or HiFi-GAN multi-period critics).

Manual optimisation with two optimisers: each batch takes one discriminator step, then one
generator step. Lightning counts every optimiser step in ``trainer.global_step``, so once the
discriminator trains ``max_steps`` advances by two per batch; ``train/generator_steps`` logs
batches. The loss is the weighted sum of named terms (``loss_weights``), each logged by name.

The optional ``dc`` term is the mean absolute difference of the per-crop means (the 0 Hz
component). Neither spectral term constrains it: the mel filterbank gives 0 Hz no weight, and it
is one STFT bin among hundreds; so without a discriminator (warm-up) the output drifts to a DC
offset as large as the music, which costs several dB of log-spectral distance at the lowest bins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from waveforge.audio.mel import MelConfig, MelSpectrogram, analysis_mel_config
from waveforge.inference.modelfile import ModelFile
from waveforge.losses.gan import discriminator_loss, feature_matching_loss, generator_loss
from waveforge.losses.stft import MultiResolutionSTFTLoss, log_spectral_distance_loss, mel_l1_loss
from waveforge.models.config import build_config
from waveforge.models.discriminators import build_discriminator
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig
from waveforge.nn.upsample import factor_hop
from waveforge.tasks.base import WaveformTask

DEFAULT_LOSS_WEIGHTS = {"adversarial": 1.0, "feature_matching": 10.0, "mel": 45.0, "mr_stft": 0.0, "dc": 0.0, "lsd": 0.0}


def default_upsample_factors(hop_length: int) -> list[int]:
    """Split the hop into MelGAN-like stages, largest first: at most two 8s, then 5s, 3s and 2s, as
    the paper's ``[8, 8, 2, 2]`` for 256 (and 300 -> [5, 5, 3, 2, 2])."""
    return factor_hop(hop_length, (8, 5, 3, 2), limits={8: 2})


class GANVocoderTask(WaveformTask):
    """Trains a :class:`MelGANGenerator` on ``cond: (B, C, F)`` -> ``audio: (B, 1, F * hop)``.

    Args:
        architecture: the generator, ``{preset: paper, <MelGANGeneratorConfig field>: value, ...}``
            (:func:`~waveforge.models.config.build_config`; default preset ``paper``). ``cond_channels``
            and ``hop_length`` come from the data's feature; ``upsample_factors``, unless given, are
            derived from the hop (:func:`default_upsample_factors`).
        discriminator: ``"msd"`` (MelGAN), ``"mpd"`` (HiFi-GAN) or ``"msd+mpd"``.
        discriminator_size: ``"paper"`` or ``"tiny"`` (tests).
        gan_loss: ``"hinge"`` (MelGAN) or ``"lsgan"`` (HiFi-GAN).
        loss_weights: weights of ``adversarial``, ``feature_matching``, ``mel``, ``mr_stft``, ``dc``
            and ``lsd`` (log-spectral distance in dB, :func:`~waveforge.losses.stft.log_spectral_distance_loss`).
        init_from: a checkpoint (``.ckpt``) or model file of a GAN vocoder whose generator weights
            to start from (fine-tuning). Its generator must have the same weights' shapes; settings
            without weights of their own (``mel_projection``) may differ. Read when training
            starts; a resumed run then continues from its own checkpoint instead.
        warmup_steps: generator-only steps with the spectral terms alone before the GAN starts.
        lr_generator, lr_discriminator, betas: Adam settings (MelGAN: 1e-4, (0.5, 0.9)).
        lr_decay: multiplicative learning-rate decay applied every 1000 generator steps.
    """

    family = "melgan"

    def __init__(
        self,
        sample_rate: int = 22050,
        feature: dict | None = None,
        architecture: dict[str, Any] | None = None,
        discriminator: Literal["msd", "mpd", "msd+mpd"] = "msd",
        discriminator_size: Literal["paper", "tiny"] = "paper",
        gan_loss: Literal["hinge", "lsgan"] = "hinge",
        loss_weights: dict[str, float] | None = None,
        warmup_steps: int = 0,
        lr_generator: float = 1e-4,
        lr_discriminator: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        lr_decay: float = 1.0,
        init_from: str | None = None,
    ):
        super().__init__(sample_rate, feature)
        self.save_hyperparameters()
        self.automatic_optimization = False
        if self.feature is None:
            raise ValueError("GANVocoderTask needs conditioning (mel or piano_roll); got an unconditional data setup")
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss term(s) {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        hop = self.feature.hop_length
        fields = dict(architecture or {})
        fields.setdefault("upsample_factors", default_upsample_factors(hop))
        decided = {"cond_channels": self.cond_channels, "hop_length": hop}
        if fields.get("mel_projection"):  # the generator rescales its frames to the conditioning mel's
            if not isinstance(self.feature, MelConfig):
                raise ValueError("mel_projection needs mel conditioning (the generator rescales its output to the mel it is given)")
            decided["mel"] = {k: v for k, v in self.feature.to_dict().items() if k != "kind"}
        self.generator = MelGANGenerator(build_config(MelGANGeneratorConfig, fields, "paper", decided))
        self.discriminator = build_discriminator(discriminator, discriminator_size)
        self.mr_stft = MultiResolutionSTFTLoss()
        # the mel term always uses a mel of the audio (also for piano-roll conditioning)
        mel_cfg = self.feature if isinstance(self.feature, MelConfig) else analysis_mel_config(sample_rate)
        self.mel = MelSpectrogram(mel_cfg)
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))

    # -- fine-tuning ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # runs before Lightning restores a resumed checkpoint, which then overrides these weights
        if stage == "fit" and self.hparams.init_from:
            self.load_generator(self.hparams.init_from)

    def load_generator(self, path: str | Path) -> None:
        """The generator's weights from a GAN vocoder's checkpoint or model file (see ``init_from``)."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from waveforge.inference.modelfile import read_model_file

            source = read_model_file(path)
            if source.family != self.family:
                raise ValueError(f"{path}: a {source.family} model, not a {self.family} generator")
            state = source.state_dict
        else:
            from waveforge.tasks.export import load_task

            previous = load_task(path)
            if not isinstance(previous, GANVocoderTask):
                raise ValueError(f"{path}: written by {type(previous).__name__}, not GANVocoderTask")
            state = previous.generator.state_dict()
        try:
            self.generator.load_state_dict(state)
        except RuntimeError as err:  # missing, unexpected or reshaped weights
            detail = " ".join(str(err).splitlines()[1:2]).strip()
            raise ValueError(f"{path}: its generator has another architecture ({detail})") from None

    # -- training ------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        audio, cond = batch["audio"], batch["cond"]  # (B, 1, T), (B, C, T // hop)
        w = self.loss_weights
        gan_on = int(self.generator_steps) >= self.hparams.warmup_steps
        fake = self.generator(cond)  # (B, 1, T)

        if gan_on:
            self.toggle_optimizer(opt_d)
            real_out, fake_out = self.discriminator(audio), self.discriminator(fake.detach())
            loss_d = discriminator_loss(real_out.logits, fake_out.logits, self.hparams.gan_loss)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            self.log("train/discriminator", loss_d, prog_bar=True)

        self.toggle_optimizer(opt_g)
        terms: dict[str, torch.Tensor] = {}
        if w["mel"]:
            terms["mel"] = mel_l1_loss(fake, audio, self.mel)
        if w["mr_stft"] or not gan_on:
            terms["mr_stft"] = self.mr_stft(fake, audio).total
        if w["dc"]:
            terms["dc"] = (fake.mean(dim=-1) - audio.mean(dim=-1)).abs().mean()
        if w["lsd"]:
            terms["lsd"] = log_spectral_distance_loss(fake, audio).mean()
        if gan_on:
            fake_out = self.discriminator(fake)
            with torch.no_grad():
                real_out = self.discriminator(audio)
            terms["adversarial"] = generator_loss(fake_out.logits, self.hparams.gan_loss)
            terms["feature_matching"] = feature_matching_loss(real_out.features, fake_out.features)
        # during warm-up the spectral loss carries the generator even if its weight is 0
        weights = {k: (w[k] if w[k] or gan_on else 1.0) for k in terms}
        loss_g = sum(weights[k] * v for k, v in terms.items())
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.generator_steps += 1
        if self.hparams.lr_decay != 1.0 and int(self.generator_steps) % 1000 == 0:
            for sched in self.lr_schedulers():
                sched.step()
        self.log("train/generator", loss_g, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in terms.items()})
        self.log("train/generator_steps", self.generator_steps.float())

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        audio, cond = batch["audio"], batch["cond"]
        fake = self.generator(cond)
        self.log("val/mel_l1", mel_l1_loss(fake, audio, self.mel), prog_bar=True, sync_dist=True)
        self.log("val/mr_stft", self.mr_stft(fake, audio).total, sync_dist=True)
        self.log("val/lsd", log_spectral_distance_loss(fake, audio, eps=0.0).mean(), sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_generator, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_discriminator, betas=tuple(hp.betas))
        if hp.lr_decay == 1.0:
            return [opt_g, opt_d]
        scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=hp.lr_decay) for o in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    # -- use -----------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        return self.generator(cond)[..., :n_samples]

    def model_file(self) -> ModelFile:
        return self.model_file_for(self.generator, generator_steps=int(self.generator_steps), receptive_field_frames=self.generator.receptive_field_frames)

