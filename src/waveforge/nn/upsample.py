"""The one module that turns frame-rate conditioning into sample-rate conditioning."""

from __future__ import annotations

import math

import torch
from torch import nn


def _default_scales(hop_length: int) -> list[int]:
    """Factor ``hop_length`` into small upsampling steps (e.g. 256 -> [4, 4, 4, 4])."""
    scales, rest = [], hop_length
    for f in (4, 2, 3, 5, 7):
        while rest % f == 0 and rest > 1:
            scales.append(f)
            rest //= f
    if rest > 1:
        scales.append(rest)
    return sorted(scales, reverse=True) or [1]


class ConditionUpsampler(nn.Module):
    """``cond: (B, C, F)`` -> ``(B, out_channels, F * hop_length)``.

    A width-3 convolution mixes neighbouring frames, then transposed convolutions upsample by
    ``scales`` (their product must equal ``hop_length``), each followed by a leaky ReLU. Each
    transposed convolution has kernel ``2s`` and padding ``s/2`` (even ``s``) or kernel ``s``
    (odd ``s``), so lengths come out exactly ``F * s``.
    """

    def __init__(
        self,
        in_channels: int,
        hop_length: int,
        out_channels: int | None = None,
        hidden_channels: int | None = None,
        scales: list[int] | None = None,
    ):
        super().__init__()
        scales = list(scales) if scales else _default_scales(hop_length)
        if math.prod(scales) != hop_length:
            raise ValueError(f"upsampling scales {scales} multiply to {math.prod(scales)}, not hop_length {hop_length}")
        out_channels = out_channels or in_channels
        hidden = hidden_channels or out_channels
        self.hop_length = hop_length
        self.scales = scales
        self.pre = nn.Conv1d(in_channels, hidden, kernel_size=3, padding=1)
        layers: list[nn.Module] = []
        for i, s in enumerate(scales):
            ch_out = out_channels if i == len(scales) - 1 else hidden
            if s % 2 == 0:
                layers.append(nn.ConvTranspose1d(hidden, ch_out, kernel_size=2 * s, stride=s, padding=s // 2))
            else:
                layers.append(nn.ConvTranspose1d(hidden, ch_out, kernel_size=s, stride=s))
            layers.append(nn.LeakyReLU(0.4))
        self.up = nn.Sequential(*layers)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        n_frames = cond.shape[-1]
        out = self.up(self.pre(cond))  # (B, out_channels, F * hop)
        assert out.shape[-1] == n_frames * self.hop_length
        return out
