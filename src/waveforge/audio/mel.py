"""Log-mel spectrograms aligned to the hop: ``F = T // hop_length`` frames, exactly.

The signal is reflect-padded by ``(n_fft - hop) / 2`` on both sides and framed without centre
padding, so frame ``f`` covers samples ``[f*hop - (n_fft-hop)/2, f*hop + (n_fft+hop)/2)`` and is
centred on the middle of hop ``f``. A waveform model that maps ``F`` frames to ``F * hop`` samples
therefore lines up with its input frame by frame.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF
from torch import nn

from waveforge.audio.stft import hop_aligned_pad, stft_magnitude


@dataclass(frozen=True)
class MelConfig:
    """Everything needed to recompute a model's mel input; travels inside exported models."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must be <= n_fft ({self.n_fft})")
        if self.f_max is not None and self.f_max > self.sample_rate / 2:
            raise ValueError(f"f_max ({self.f_max}) is above Nyquist ({self.sample_rate / 2})")

    @property
    def channels(self) -> int:
        return self.n_mels

    def to_dict(self) -> dict:
        return {"kind": "mel", **asdict(self)}


def analysis_mel_config(sample_rate: int) -> MelConfig:
    """The mel that metrics, losses and pictures compare audio with, whatever a model's own feature is:
    the default bands up to 8 kHz, or up to Nyquist below 16 kHz."""
    return MelConfig(sample_rate=sample_rate, f_max=min(8000.0, sample_rate / 2))


def log_mel_ceiling(config: MelConfig) -> float:
    """A bound on the natural-log mel of audio within [-1, 1]: ``log(win_length x bins)``, a loose one
    (a full-scale sine's peak STFT bin is ``win_length / 4``, and a filter sums fewer bins than all)."""
    return math.log(config.win_length * (config.n_fft // 2 + 1))


def mel_band_hz(n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """``(n_mels,)`` centre frequencies in Hz of :func:`mel_filterbank`'s Slaney bands (``librosa.mel_frequencies``)."""
    import librosa

    return torch.as_tensor(librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max)[1:-1], dtype=torch.float32)


def mel_filterbank(config: MelConfig) -> torch.Tensor:
    """Slaney-style mel filterbank, ``(n_mels, n_fft // 2 + 1)``; equals ``librosa.filters.mel``."""
    fb = AF.melscale_fbanks(
        n_freqs=config.n_fft // 2 + 1,
        f_min=config.f_min,
        f_max=config.f_max if config.f_max is not None else config.sample_rate / 2,
        n_mels=config.n_mels,
        sample_rate=config.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )  # (n_freqs, n_mels)
    return fb.T.contiguous()


def log_mel_spectrogram(
    audio: torch.Tensor,
    filterbank: torch.Tensor,
    window: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    log_floor: float,
) -> torch.Tensor:
    """Natural-log mel magnitude: ``(..., T)`` -> ``(..., n_mels, T // hop_length)``."""
    mag = stft_magnitude(audio, n_fft, hop_length, win_length, window)
    mel = torch.matmul(filterbank, mag)
    return torch.log(torch.clamp(mel, min=log_floor))


class MelSpectrogram(nn.Module):
    """Module form of :func:`log_mel_spectrogram`; the filterbank and window are buffers.

    ``(B, 1, T)`` -> ``(B, n_mels, T // hop_length)``; ``(1, T)`` -> ``(n_mels, T // hop)``.
    """

    def __init__(self, config: MelConfig):
        super().__init__()
        self.config = config
        self.register_buffer("filterbank", mel_filterbank(config), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        mel = log_mel_spectrogram(audio.float(), self.filterbank, self.window, c.n_fft, c.hop_length, c.win_length, c.log_floor)
        if audio.dim() >= 2 and audio.shape[-2] == 1:
            mel = mel.squeeze(-3)  # drop the channel axis: (B, 1, M, F) -> (B, M, F)
        return mel
