"""The hop-aligned STFT, its inverse, and the Hann window's transform (no learning).

Framing: the signal is padded by ``(n_fft - hop) / 2`` on both sides and framed without centre
padding, so ``F = T // hop`` frames and frame ``f`` is centred on the middle of hop ``f`` (sample
``f * hop + hop / 2``). The log-mel features (:mod:`waveforge.audio.mel`), the STFT losses and the
MelGAN spectral heads' synthesis all use this framing, so audio and frames line up one to one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["hann_lobe", "hann_transform", "hop_aligned_istft", "hop_aligned_pad", "hop_aligned_stft", "stft_magnitude"]


def hop_aligned_pad(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Pad ``(..., T)`` by ``(n_fft - hop)/2`` each side (reflect where the signal is long enough)."""
    total = n_fft - hop_length
    left, right = total // 2, total - total // 2
    shape = audio.shape
    flat = audio.reshape(-1, 1, shape[-1])
    mode = "reflect" if shape[-1] > max(left, right) else "constant"
    flat = F.pad(flat, (left, right), mode=mode)
    return flat.reshape(*shape[:-1], flat.shape[-1])


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int, win_length: int, window: torch.Tensor) -> torch.Tensor:
    """Hop-aligned STFT magnitude: ``(..., T)`` -> ``(..., n_fft//2 + 1, T // hop_length)``.

    Half-precision audio (a network's output under bf16 / fp16 mixed precision) is transformed in
    float32: neither MKL's nor cuFFT's FFT takes bfloat16, and a half-precision spectrum would lose
    the quiet bins that the log-magnitude losses weigh."""
    if audio.dtype in (torch.float16, torch.bfloat16):
        audio = audio.float()
    window = window.to(audio.dtype)
    shape = audio.shape
    padded = hop_aligned_pad(audio, n_fft, hop_length).reshape(-1, shape[-1] + n_fft - hop_length)
    spec = torch.stft(padded, n_fft, hop_length, win_length, window, center=False, return_complex=True)
    mag = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
    return mag.reshape(*shape[:-1], mag.shape[-2], mag.shape[-1])


def hop_aligned_stft(audio: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Complex hop-aligned STFT: ``(..., T)`` -> ``(..., n_fft//2 + 1, T // hop_length)``; ``window`` has length ``n_fft``."""
    shape = audio.shape
    padded = hop_aligned_pad(audio, n_fft, hop_length).reshape(-1, shape[-1] + n_fft - hop_length)
    spec = torch.stft(padded, n_fft, hop_length, n_fft, window, center=False, return_complex=True)
    return spec.reshape(*shape[:-1], spec.shape[-2], spec.shape[-1])


def hop_aligned_istft(spectrum: torch.Tensor, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hop_aligned_stft`: complex ``(B, n_fft//2 + 1, L)`` -> ``(B, 1, L * hop_length)``.

    Weighted overlap-add with ``window`` (length ``n_fft``), normalised by the summed squared window,
    then cropped to the hop-aligned framing, so ``hop_aligned_istft(hop_aligned_stft(x)) == x`` to
    float error wherever the windows overlap (tested).
    """
    n_fft = window.shape[-1]
    batch, _, n_frames = spectrum.shape
    frames = torch.fft.irfft(spectrum, n=n_fft, dim=1) * window[:, None]  # (B, n_fft, L)
    length = n_fft + (n_frames - 1) * hop_length
    audio = F.fold(frames, (1, length), (1, n_fft), stride=(1, hop_length)).reshape(batch, 1, length)
    envelope = F.fold(
        window.square()[None, :, None].expand(1, n_fft, n_frames), (1, length), (1, n_fft), stride=(1, hop_length)
    ).reshape(1, 1, length)
    offset = (n_fft - hop_length) // 2
    return (audio / envelope.clamp(min=1e-6))[..., offset : offset + n_frames * hop_length]


def hann_transform(x: torch.Tensor, n: int) -> torch.Tensor:
    """The DFT of a periodic Hann window of length ``n`` at (fractional) bin ``x``, scaled to 1 at 0 (complex).

    ``sum_t w(t) exp(-2 pi i x t / n)`` with the phase referenced to the window's first sample,
    so a sinusoid of phase ``theta`` at the frame start and frequency ``k + u`` bins puts
    ``exp(i theta) * hann_transform(j - k - u)`` (times its peak magnitude) into bin ``j``.
    """
    def dirichlet(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum_t exp(-2 pi i y t / n) = exp(-i pi y (n - 1) / n) sin(pi y) / sin(pi y / n)``, as (real, imaginary)."""
        small = y.abs() < 1e-4  # the limit n, without a 0/0 in either branch's gradient
        num = torch.where(small, torch.full_like(y, float(n)), torch.sin(math.pi * y))
        den = torch.where(small, torch.ones_like(y), torch.sin(math.pi * y / n))
        ratio, angle = num / den, -math.pi * y * (n - 1) / n
        return ratio * torch.cos(angle), ratio * torch.sin(angle)

    (r0, i0), (r1, i1), (r2, i2) = dirichlet(x), dirichlet(x - 1), dirichlet(x + 1)
    scale = 0.5 * n  # the centre value, so a unit-magnitude oscillator has a unit peak bin
    return torch.complex((0.5 * r0 - 0.25 * (r1 + r2)) / scale, (0.5 * i0 - 0.25 * (i1 + i2)) / scale)


def hann_lobe(u: torch.Tensor, n: int, taps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`hann_transform` at the ``2 taps + 1`` bins ``m - u`` (``m = -taps .. taps``), for fractional
    offsets ``u`` in (-1, 1), as one complex factor times real weights:
    ``factor * weights[m + taps] == hann_transform(m - u, n)``; ``u (...)`` -> ``(...)``, ``(2 taps + 1, ...)``.

    At ``y = j - u`` for whole ``j`` every Dirichlet kernel shares ``sin(pi y) = -(-1)^j sin(pi u)`` and
    ``exp(-i pi y) = (-1)^j exp(i pi u)``, so ``D(y) = -sin(pi u) exp(i pi u) (cot(pi y / n) + i)``; in
    the Hann combination ``0.5 D(y) - 0.25 (D(y - 1) + D(y + 1))`` the ``i`` terms cancel. That leaves
    three real functions per whole ``j`` (``2 taps + 3`` of them) and one complex factor, where the
    kernels one by one take four per kernel, three kernels per bin.
    """
    j = torch.arange(-taps - 1, taps + 2, dtype=u.dtype, device=u.device).view(-1, *([1] * u.dim()))  # (2 taps + 3, 1...)
    y = j - u  # every kernel's argument
    small = y.abs() < 1e-4  # there sin(pi u) cot(pi y / n) -> -(-1)^j n; both branches finite for the gradient
    limit = -n * (1.0 - 2.0 * torch.remainder(j, 2.0))  # -(-1)^j n
    safe = torch.where(small, torch.ones_like(y), torch.sin(math.pi * y / n))
    # sin(pi u) as -(-1)^j sin(pi y): for j = -1, 0, 1 from their own y, exact where y is small (which
    # float32's sin(pi u) near u = +-1 is not); further out y never is small, and sin(pi y) is +-sin(pi (y - j))
    near = torch.sin(math.pi * y[taps : taps + 3])  # j = -1, 0, 1
    centre = near[1]  # sin(pi y) at j = 0, i.e. sin(-pi u)
    sines = torch.cat([centre.expand(taps, *centre.shape), near, centre.expand(taps, *centre.shape)]) * torch.where(
        (j.abs() >= 2) & (torch.remainder(j, 2.0) == 1), -1.0, 1.0)  # sin(pi (j + y0)) = (-1)^j sin(pi y0)
    s = torch.where(small, limit.expand_as(y), limit / n * sines * torch.cos(math.pi * y / n) / safe)
    weights = 0.5 * s[1:-1] - 0.25 * (s[:-2] + s[2:])  # (2 taps + 1, ...)
    factor = torch.polar(torch.full_like(u, -2.0 / n), math.pi * u)  # -exp(i pi u) / (n / 2)
    return factor, weights
