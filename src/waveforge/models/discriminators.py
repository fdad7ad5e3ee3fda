"""GAN discriminators for waveform vocoders.

Every discriminator returns a :class:`DiscriminatorOutput` (one logit map and one list of feature
maps per sub-discriminator), so a training task can use the multi-scale discriminator of MelGAN
(Kumar et al., 2019), the multi-period discriminator of HiFi-GAN (Kong et al., 2020), or both
(:class:`CombinedDiscriminator`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "CombinedDiscriminator",
    "DiscriminatorOutput",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
    "build_discriminator",
]


@dataclass
class DiscriminatorOutput:
    """What every discriminator returns, one entry per sub-discriminator (scale or period).

    ``logits[i]``: the i-th sub-discriminator's patch logits (any shape ``(B, ...)``);
    ``features[i]``: its intermediate activations (the feature-matching targets), ordered input to output.
    """

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]]
    names: list[str]

    def __add__(self, other: "DiscriminatorOutput") -> "DiscriminatorOutput":
        return DiscriminatorOutput(self.logits + other.logits, self.features + other.features, self.names + other.names)


class ScaleDiscriminator(nn.Module):
    """One MelGAN discriminator block: ``(B, 1, T)`` -> logits ``(B, 1, T / 4**n_downsample)`` plus features.

    A width-15 conv, then ``n_downsample`` grouped strided convs (stride 4, kernel 41, groups =
    in_channels / 4, channels x4 up to ``max_channels``), a width-5 conv and a width-3 conv to one logit
    channel; LeakyReLU 0.2 after each but the last.
    """

    def __init__(self, channels: int = 16, max_channels: int = 1024, n_downsample: int = 4, stride: int = 4, slope: float = 0.2):
        super().__init__()
        self.slope = slope
        layers = [nn.Sequential(nn.ReflectionPad1d(7), weight_norm(nn.Conv1d(1, channels, 15)))]
        ch = channels
        for _ in range(n_downsample):
            ch_out = min(ch * stride, max_channels)
            layers.append(
                weight_norm(
                    nn.Conv1d(ch, ch_out, kernel_size=stride * 10 + 1, stride=stride, padding=stride * 5, groups=ch // 4)
                )
            )
            ch = ch_out
        ch_out = min(ch * 2, max_channels)
        layers.append(weight_norm(nn.Conv1d(ch, ch_out, 5, padding=2)))
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv1d(ch_out, 1, 3, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        h = audio
        for layer in self.layers:
            h = F.leaky_relu(layer(h), self.slope)
            features.append(h)
        logits = self.output(h)
        features.append(logits)
        return logits, features


class MultiScaleDiscriminator(nn.Module):
    """MelGAN's discriminator: ``n_scales`` :class:`ScaleDiscriminator` s on audio average-pooled by 1, 2, 4, ...

    ``audio: (B, 1, T)`` -> :class:`DiscriminatorOutput` with ``n_scales`` entries.
    """

    def __init__(self, n_scales: int = 3, channels: int = 16, max_channels: int = 1024, n_downsample: int = 4):
        super().__init__()
        if n_scales < 1:
            raise ValueError(f"n_scales must be >= 1, got {n_scales}")
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(channels, max_channels, n_downsample) for _ in range(n_scales)
        )
        # kernel 4, stride 2: each scale sees the previous one low-passed and halved.
        self.pool = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        logits, features, names = [], [], []
        x = audio
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                x = self.pool(x)  # (B, 1, T / 2**i)
            out, feats = disc(x)
            logits.append(out)
            features.append(feats)
            names.append(f"scale{2**i}")
        return DiscriminatorOutput(logits, features, names)

    @classmethod
    def tiny(cls) -> "MultiScaleDiscriminator":
        return cls(n_scales=3, channels=4, max_channels=32, n_downsample=2)


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's period discriminator: audio ``(B, 1, T)`` folded to ``(B, 1, ceil(T/p), p)``, then
    2-D convs with kernel ``(5, 1)`` and stride ``(3, 1)`` so each column (one phase of the period)
    is judged separately. LeakyReLU 0.1.
    """

    def __init__(self, period: int, channels: list[int] | None = None, slope: float = 0.1):
        super().__init__()
        self.period = period
        self.slope = slope
        channels = channels or [32, 128, 512, 1024, 1024]
        layers, ch = [], 1
        for i, ch_out in enumerate(channels):
            stride = 3 if i < len(channels) - 1 else 1
            layers.append(weight_norm(nn.Conv2d(ch, ch_out, (5, 1), stride=(stride, 1), padding=(2, 0))))
            ch = ch_out
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv2d(ch, 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = audio.shape
        rest = (-t) % self.period
        if rest:
            audio = F.pad(audio, (0, rest), mode="reflect" if t > rest else "constant")
        h = audio.view(b, c, (t + rest) // self.period, self.period)  # (B, 1, T/p, p)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), self.slope)
            features.append(h)
        logits = self.output(h)
        features.append(logits)
        return logits.flatten(1, -1), features


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's multi-period discriminator (periods 2, 3, 5, 7, 11): ``(B, 1, T)`` -> :class:`DiscriminatorOutput`."""

    def __init__(self, periods: list[int] | None = None, channels: list[int] | None = None):
        super().__init__()
        self.periods = list(periods) if periods is not None else [2, 3, 5, 7, 11]
        if not self.periods or any(p < 1 for p in self.periods):
            raise ValueError(f"periods must be positive integers, got {self.periods}")
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in self.periods)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        logits, features, names = [], [], []
        for p, disc in zip(self.periods, self.discriminators):
            out, feats = disc(audio)
            logits.append(out)
            features.append(feats)
            names.append(f"period{p}")
        return DiscriminatorOutput(logits, features, names)

    @classmethod
    def tiny(cls) -> "MultiPeriodDiscriminator":
        return cls(periods=[2, 3, 5], channels=[4, 8, 16])


class CombinedDiscriminator(nn.Module):
    """Several discriminators judged together; their outputs are concatenated in order."""

    def __init__(self, discriminators: list[nn.Module]):
        super().__init__()
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        outputs = [d(audio) for d in self.discriminators]
        result = outputs[0]
        for out in outputs[1:]:
            result = result + out
        return result


def build_discriminator(kind: str = "msd", size: str = "paper") -> nn.Module:
    """``kind``: ``"msd"`` (MelGAN), ``"mpd"`` (HiFi-GAN) or ``"msd+mpd"``; ``size``: ``"paper"`` or ``"tiny"``."""
    if size not in ("paper", "tiny"):
        raise ValueError(f"unknown discriminator size {size!r} (expected 'paper' or 'tiny')")
    makers = {
        "msd": (MultiScaleDiscriminator, MultiScaleDiscriminator.tiny),
        "mpd": (MultiPeriodDiscriminator, MultiPeriodDiscriminator.tiny),
    }
    parts = kind.split("+")
    if not parts or any(p not in makers for p in parts):
        raise ValueError(f"unknown discriminator kind {kind!r} (expected 'msd', 'mpd' or 'msd+mpd')")
    modules = [makers[p][0 if size == "paper" else 1]() for p in parts]
    return modules[0] if len(modules) == 1 else CombinedDiscriminator(modules)
