"""MelGAN's phase-integrating output heads: per-frame log magnitudes and phase increments -> audio.

The generator's output conv predicts, per STFT frame and per bin, a raw log magnitude and a raw
phase deviation (``(B, 2K, L)``, ``K = n_fft / 2 + 1``). A :class:`SpectralHead` bounds them
(:meth:`SpectralHead.frames`), integrates the phase (:meth:`SpectralHead.integrate_phase`: a running
sum, which is not hop-periodic the way a waveform head's output is), and synthesises the audio
with the hop-aligned inverse STFT (:func:`waveforge.audio.stft.hop_aligned_istft`):

* ``"stft"`` (experimental): the predictions are the STFT's own bins (a phase vocoder); each
  increment is the bin's centre-frequency advance plus up to two bins' worth either way, and bin
  ``k`` starts at phase ``pi * k``.
* ``"sines"``: one oscillator per bin, within one bin of its centre; its spectrum (the Hann window's
  transform, :func:`waveforge.audio.stft.hann_lobe`) is written into the STFT
  (:meth:`SpectralHead.sines_spectrum`), so a partial's bins are coherent by construction.

The head holds no parameters (its buffers are not saved), so model files do not depend on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from waveforge.audio.stft import hann_lobe, hop_aligned_istft

__all__ = ["LOG_MAGNITUDE_RANGE", "SINE_TAPS", "SPECTRAL_HEADS", "SpectralHead", "project_to_mel"]

SPECTRAL_HEADS = ("stft", "sines")
#: the sines head's taps: each oscillator writes its window's main lobe into this many bins either side
SINE_TAPS = 3
#: the log-magnitude range: 1e-5 (below 16-bit quantisation) to 100 (above full scale)
LOG_MAGNITUDE_RANGE = (math.log(1e-5), math.log(100.0))


class SpectralHead(nn.Module):
    """``kind`` is ``"stft"`` or ``"sines"``; ``n_fft`` the STFT size, ``hop`` its hop in samples."""

    def __init__(self, kind: str, n_fft: int, hop: int):
        super().__init__()
        if kind not in SPECTRAL_HEADS:
            raise ValueError(f"kind must be one of {SPECTRAL_HEADS}, got {kind!r}")
        self.kind, self.n_fft, self.hop = kind, n_fft, hop
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
        # each bin's centre-frequency phase advance per hop, and its starting phase
        self.register_buffer("bin_advance", (2 * math.pi * bins * hop / n_fft).remainder(2 * math.pi).float(), persistent=False)
        start = math.pi * bins if kind == "stft" else torch.zeros_like(bins)
        self.register_buffer("bin_start", start.remainder(2 * math.pi).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # the largest phase deviation per hop: two bins' worth (stft), one bin's (sines)
        self.max_deviation = math.pi if kind == "stft" else 2 * math.pi * hop / n_fft

    def frames(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output conv's ``(B, 2K, L)`` -> log magnitudes and phase increments, each ``(B, K, L)``.

        For the stft head these are per STFT bin; for the sines head, per oscillator (its peak-bin
        magnitude, and its phase advance per hop, which says its frequency).

        Log magnitudes lie in ``LOG_MAGNITUDE_RANGE`` through a sigmoid (a full-scale sine's peak
        bin is ~n_fft/4): a bound with a gradient everywhere, where a hard clamp left bins stuck at
        the cap with none. Each increment is within ``max_deviation`` of ``bin_advance``.
        """
        raw_magnitude, deviation = raw.chunk(2, dim=1)
        low, high = LOG_MAGNITUDE_RANGE
        log_magnitude = low + (high - low) * torch.sigmoid(raw_magnitude)
        increments = self.bin_advance[:, None] + self.max_deviation * torch.tanh(deviation)
        return log_magnitude, increments

    def integrate_phase(self, increments: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """Running phase ``start + cumsum(increments)`` in [0, 2 pi), ``(B, K, L)`` -> ``(B, K, L)``.

        ``start`` (``(B, K)``, float64) is the phase before the first frame; default ``bin_start``.
        Summed in float64, so an hour of frames keeps the phase to ~1e-9 rad.
        """
        total = increments.double().cumsum(dim=-1)
        total = total + (self.bin_start.double()[:, None] if start is None else start[..., None])
        return total.remainder(2 * math.pi).to(increments.dtype)

    def synthesize(self, log_magnitude: torch.Tensor, increments: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The head's synthesis: ``(B, K, L)`` each -> ``(B, 1, L * hop)``."""
        return self.istft(self.spectrum(log_magnitude, increments, phase))

    def spectrum(self, log_magnitude: torch.Tensor, increments: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The STFT the head writes: ``(B, K, L)`` each -> complex ``(B, K, L)``."""
        if self.kind == "stft":
            return torch.polar(torch.exp(log_magnitude), phase)
        return self.sines_spectrum(log_magnitude, increments, phase)

    def istft(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Complex ``(B, K, L)`` -> audio ``(B, 1, L * hop)``."""
        return hop_aligned_istft(spectrum, self.hop, self.window)

    def sines_spectrum(self, log_magnitude: torch.Tensor, increments: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """One stationary sinusoid per oscillator and frame, written into the STFT: ``(B, K, L)`` each -> complex ``(B, K, L)``.

        Oscillator ``k`` sits at fractional bin ``k + u`` (``u`` in (-1, 1), read back from its
        increment), with peak-bin magnitude ``exp(log_magnitude)`` and phase ``phase`` at the
        frame's first sample. Its spectrum is the Hann window's transform centred there, kept
        over ``SINE_TAPS`` bins either side (the main lobe is two bins wide; the first sidelobe
        is 31 dB down), with its negative-frequency image folded back in near 0 Hz and Nyquist, so
        the frame is exactly a windowed real sinusoid at any frequency. A partial is one
        oscillator's lobe, so its bins are coherent by construction, which a per-bin phase sum
        (the stft head) cannot guarantee.
        """
        n_fft, hop = self.n_fft, self.hop
        per_bin = 2 * math.pi * hop / n_fft
        offset = torch.remainder(increments - self.bin_advance[:, None] + math.pi, 2 * math.pi) - math.pi
        offset = offset / per_bin  # (B, K, L): u, the oscillator's distance from its bin centre, in bins
        n_bins, taps = log_magnitude.shape[1], SINE_TAPS
        factor, weights = hann_lobe(offset, n_fft, taps)  # the lobe's bins: factor * weights[m + taps], (B, K, L) each
        amplitude = torch.polar(torch.exp(log_magnitude), phase) * factor  # (B, K, L) complex
        # bins -taps .. n_bins - 1 + taps: each lobe lands whole, also past 0 Hz and Nyquist
        extended = amplitude.new_zeros(amplitude.shape[0], n_bins + 2 * taps, amplitude.shape[2])
        for i in range(2 * taps + 1):  # tap m = i - taps lands on bins k + m, rows k + i of `extended`
            extended[:, i : i + n_bins] += amplitude * weights[i]
        # A real sinusoid also has a negative-frequency image, the conjugate lobe mirrored about
        # 0 Hz (and, the DFT being periodic, about Nyquist). Bin -j's value is bin j's image; at
        # 0 Hz and Nyquist the lobe meets its own image, so those bins become real. Oscillators
        # within ``taps`` bins of either end would otherwise lose it.
        below = extended[:, : taps + 1].flip(1).conj()  # bins 0 .. -taps, into 0 .. taps
        above = extended[:, n_bins - 1 + taps :].flip(1).conj()  # bins Nyquist + taps .. Nyquist, into Nyquist - taps .. Nyquist
        return (
            extended[:, taps : taps + n_bins]
            + F.pad(below, (0, 0, 0, n_bins - taps - 1))
            + F.pad(above, (0, 0, n_bins - taps - 1, 0))
        )


def project_to_mel(spectrum: torch.Tensor, log_mel: torch.Tensor, filterbank: torch.Tensor, iterations: int, floor: float) -> torch.Tensor:
    """Rescale ``spectrum`` band by band until its mel is ``log_mel``: complex ``(B, K, L)``, ``(B, M, L)`` -> ``(B, K, L)``.

    Each iteration takes the spectrum's mel (``filterbank (M, K)`` times its magnitudes, as the
    conditioning's mel is taken), the ratio of the wanted band amplitudes to it, and scales every
    bin by the filterbank-weighted mean of its bands' ratios (bins no band covers keep their
    value). Phases, and the spread of energy within a band, are the generator's; the level of each
    band, frame by frame, is the mel's, which the generator only approximates: where it lets a held
    note's partial dip at another note's attack and swell back, a transcriber hears a new note.
    ``floor`` is the mel's log floor: a band at the floor is silence, and is silenced.
    """
    cover = filterbank.sum(dim=0)  # (K,)
    covered = cover > 0
    target = torch.exp(log_mel)  # (B, M, L)
    for _ in range(iterations):
        ratio = target / (filterbank @ spectrum.abs()).clamp_min(floor)  # (B, M, L)
        gain = (filterbank.T @ ratio) / torch.where(covered, cover, 1.0)[:, None]  # (B, K, L)
        spectrum = spectrum * torch.where(covered[:, None], gain, 1.0)
    return spectrum
