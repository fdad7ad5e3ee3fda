"""Objective quality metrics between a reference and a generated waveform (both ``(..., T)``)."""

from __future__ import annotations

import torch

from waveforge.audio.mel import MelConfig, MelSpectrogram
from waveforge.losses import stft as stft_losses

def _aligned(reference: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(reference.shape[-1], generated.shape[-1])
    return reference[..., :n].float(), generated[..., :n].float()


def mr_stft_distance(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """The multi-resolution STFT loss (spectral convergence + log magnitude, three resolutions) as a
    distance between two signals (lower is better)."""
    reference, generated = _aligned(reference, generated)
    return float(stft_losses.mr_stft_loss_per_item(generated.reshape(1, 1, -1), reference.reshape(1, 1, -1))[0])


def log_spectral_distance(reference: torch.Tensor, generated: torch.Tensor, n_fft: int = 2048, hop: int = 512, floor_db: float = -80.0) -> float:
    """RMS over frequency of the dB power difference, averaged over frames (dB, lower is better).

    Power is in dB relative to a full-scale sine (0 dBFS) and floored at ``floor_db`` (80 dB of
    dynamic range, as in ``librosa.power_to_db(top_db=80)``), so digital silence in one signal and
    inaudible noise in the other do not dominate the figure.
    """
    reference, generated = _aligned(reference, generated)
    with torch.no_grad():
        distance = stft_losses.log_spectral_distance_loss(
            generated.reshape(1, -1), reference.reshape(1, -1), n_fft, hop, floor_db, eps=0.0
        )
    return float(distance[0])


def mel_l1(reference: torch.Tensor, generated: torch.Tensor, config: MelConfig) -> float:
    """Mean absolute difference of natural-log mels."""
    reference, generated = _aligned(reference, generated)
    mel = MelSpectrogram(config)
    return float((mel(reference.reshape(1, 1, -1)) - mel(generated.reshape(1, 1, -1))).abs().mean())


def snr_db(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """Waveform signal-to-noise ratio in dB (phase-sensitive: GAN vocoders score low by design)."""
    reference, generated = _aligned(reference, generated)
    noise = (reference - generated).square().sum().clamp(min=1e-12)
    return float(10 * torch.log10(reference.square().sum().clamp(min=1e-12) / noise))


def all_metrics(reference: torch.Tensor, generated: torch.Tensor, mel_config: MelConfig) -> dict[str, float]:
    return {
        "mr_stft": mr_stft_distance(reference, generated),
        "lsd_db": log_spectral_distance(reference, generated),
        "mel_l1": mel_l1(reference, generated, mel_config),
        "snr_db": snr_db(reference, generated),
    }
