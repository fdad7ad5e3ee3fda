"""The shared frame-rate -> sample-rate condition upsampler (WaveNet, DiffWave, WaveGlow, SampleRNN)."""

from __future__ import annotations

import pytest
import torch

import math

from waveforge.nn.upsample import ConditionUpsampler, default_scales, factor_hop, init_transposed_conv_
from waveforge.tasks.gan import default_upsample_factors


def _log_mel_like(frames: int = 40) -> torch.Tensor:
    """``(2, 80, frames)`` with the statistics of this toolkit's log-mels of piano (mean ~-7, std ~2.8)."""
    return torch.randn(2, 80, frames, generator=torch.Generator().manual_seed(0)) * 2.8 - 7.0


@pytest.mark.parametrize("hop", [256, 160, 75])
def test_fresh_upsampler_passes_the_condition_at_its_own_scale(hop):
    """At PyTorch's default initialisation the log-mel reached the model at ~1/180 of its scale and
    trained models ignored it; the condition's variation must arrive at about unit scale."""
    torch.manual_seed(0)
    upsampler = ConditionUpsampler(80, hop, out_channels=64)
    with torch.no_grad():
        out = upsampler(_log_mel_like())
    assert out.shape == (2, 64, 40 * hop)
    assert 0.3 <= out.std().item() / 2.8 <= 3.0


def test_fresh_upsampler_ignores_a_uniform_offset_away_from_the_edges():
    """The log-mel's mean (a uniform offset of all bands) gives no output: only the first and last
    frames, where the input conv sees zero padding, may differ."""
    torch.manual_seed(0)
    upsampler = ConditionUpsampler(80, 256, out_channels=64)
    mel = _log_mel_like()
    with torch.no_grad():
        difference = (upsampler(mel) - upsampler(mel + 5.0)).abs().amax(dim=(0, 1)).view(40, 256).amax(dim=1)
    assert difference[2:-2].max().item() <= 1e-4
    assert difference[0].item() > 1e-2  # the check itself can fail: the edges do move


@pytest.mark.parametrize("stride, kernel", [(4, 8), (5, 5), (3, 6)])
def test_transposed_conv_init_is_free_of_checkerboard(stride, kernel):
    """A constant input gives a constant output away from the edges: every output phase starts with the same taps."""
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(16, 8, kernel, stride=stride, padding=(kernel - stride) // 2, bias=False)
    init_transposed_conv_(conv, 0.4)
    with torch.no_grad():
        out = conv(torch.ones(1, 16, 12))[..., 2 * stride : -2 * stride]
    assert (out - out[..., :1]).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="kernel"):
        init_transposed_conv_(torch.nn.ConvTranspose1d(4, 4, 3, stride=1), 0.4)


@pytest.mark.parametrize("hop, expected", [(256, [8, 8, 2, 2]), (300, [5, 5, 3, 2, 2]), (200, [8, 5, 5]), (1, [1]), (7, [7]), (512, [8, 8, 2, 2, 2])])
def test_melgan_default_factors_keep_the_papers_split(hop, expected):
    """The GAN task's default: at most two 8s, then 5s, 3s and 2s, as its docstring promises."""
    assert default_upsample_factors(hop) == expected


@pytest.mark.parametrize("hop, expected", [(256, [4, 4, 4, 4]), (300, [5, 5, 4, 3]), (160, [5, 4, 4, 2]), (1, [1]), (11 * 4, [11, 4])])
def test_condition_upsampler_default_scales(hop, expected):
    assert default_scales(hop) == expected
    assert ConditionUpsampler(4, hop).scales == expected


@pytest.mark.parametrize("hop", range(1, 400, 7))
def test_factor_hop_multiplies_to_the_hop(hop):
    for factors, limits in (((4, 2, 3, 5, 7), None), ((8, 5, 3, 2), {8: 2})):
        got = factor_hop(hop, factors, limits)
        assert math.prod(got) == hop and got == sorted(got, reverse=True)
    with pytest.raises(ValueError, match="positive"):
        factor_hop(0, (2,))
