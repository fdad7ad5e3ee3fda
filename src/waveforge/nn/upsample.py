"""The one module that turns frame-rate conditioning into sample-rate conditioning."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn


def init_transposed_conv_(conv: nn.ConvTranspose1d, leaky_slope: float) -> None:
    """Scale-preserving, checkerboard-free initialisation of a stride-r transposed conv with kernel
    ``2r`` (each output sums 2 taps per input channel) or ``r`` (1 tap), in place.

    Output sample ``o`` sums taps ``k`` (and ``k + r``) with ``k = (o + padding) mod r``, so a constant
    input gives an output of period r unless every phase k starts with the same weights; taps
    ``0..r-1`` get one random tap and ``r..2r-1`` another (Odena et al. 2016, "Deconvolution and
    checkerboard artifacts"). The taps are He-scaled for the LeakyReLU beside the conv, so the signal
    keeps its variance through every stage: PyTorch's default, sized for ``out_channels x kernel``
    inputs, shrinks it by ~sqrt(3r) per stage.
    """
    r, kernel = conv.stride[0], conv.kernel_size[0]
    if kernel not in (r, 2 * r):
        raise ValueError(f"expected kernel stride or 2 x stride, got kernel {kernel}, stride {r}")
    taps = kernel // r
    std = nn.init.calculate_gain("leaky_relu", leaky_slope) / math.sqrt(taps * conv.in_channels)
    with torch.no_grad():  # weight: (in, out, kernel)
        conv.weight.copy_((torch.randn_like(conv.weight[:, :, :taps]) * std).repeat_interleave(r, dim=2))


def factor_hop(hop_length: int, factors: Sequence[int], limits: Mapping[int, int] | None = None) -> list[int]:
    """Split ``hop_length`` into upsampling factors whose product is ``hop_length``, largest first.

    Greedy in the order of ``factors``: each is taken as often as it divides what is left (at most
    ``limits[f]`` times where a limit is given); a remainder no factor divides becomes one more
    factor. ``[1]`` for a hop of 1. E.g. ``factor_hop(256, (4, 2, 3, 5, 7)) == [4, 4, 4, 4]`` and
    ``factor_hop(256, (8, 5, 3, 2), {8: 2}) == [8, 8, 2, 2]``.
    """
    if hop_length < 1:
        raise ValueError(f"hop_length must be positive, got {hop_length}")
    limits = limits or {}
    out, rest = [], hop_length
    for f in factors:
        taken = 0
        while rest % f == 0 and rest > 1 and taken < limits.get(f, rest):
            out.append(f)
            rest //= f
            taken += 1
    if rest > 1:
        out.append(rest)
    return sorted(out, reverse=True) or [1]


def default_scales(hop_length: int) -> list[int]:
    """The condition upsampler's steps: small factors, 4 first (256 -> [4, 4, 4, 4], 300 -> [5, 5, 4, 3])."""
    return factor_hop(hop_length, (4, 2, 3, 5, 7))


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
        scales = list(scales) if scales else default_scales(hop_length)
        if math.prod(scales) != hop_length:
            raise ValueError(f"upsampling scales {scales} multiply to {math.prod(scales)}, not hop_length {hop_length}")
        out_channels = out_channels or in_channels
        hidden = hidden_channels or out_channels
        self.hop_length = hop_length
        self.scales = scales
        self.leaky_slope = 0.4
        self.pre = nn.Conv1d(in_channels, hidden, kernel_size=3, padding=1)
        layers: list[nn.Module] = []
        for i, s in enumerate(scales):
            ch_out = out_channels if i == len(scales) - 1 else hidden
            if s % 2 == 0:
                layers.append(nn.ConvTranspose1d(hidden, ch_out, kernel_size=2 * s, stride=s, padding=s // 2))
            else:
                layers.append(nn.ConvTranspose1d(hidden, ch_out, kernel_size=s, stride=s))
            layers.append(nn.LeakyReLU(self.leaky_slope))
            init_transposed_conv_(layers[-2], self.leaky_slope)
        self.up = nn.Sequential(*layers)
        # A uniform offset of every input channel (the log-mel's large mean, -6 to -7 on piano) gives
        # no output, so what reaches the model at the start is the features' variation, at about their
        # own scale. With PyTorch's default initialisation the log-mel arrived at 1/40-1/180 of its
        # scale and the trained WaveNet, DiffWave and WaveGlow ignored it (the same likelihood or
        # denoising error with another piece's mel).
        with torch.no_grad():
            self.pre.weight.sub_(self.pre.weight.mean(dim=(1, 2), keepdim=True))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        n_frames = cond.shape[-1]
        out = self.up(self.pre(cond))  # (B, out_channels, F * hop)
        assert out.shape[-1] == n_frames * self.hop_length
        return out
