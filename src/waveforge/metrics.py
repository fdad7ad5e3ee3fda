"""Objective quality metrics between a reference and a generated waveform (both ``(..., T)``)."""

from __future__ import annotations

import torch

from waveforge.audio.mel import MelConfig, MelSpectrogram, stft_magnitude

#: (n_fft, hop, win) of the multi-resolution STFT distance, as in Parallel WaveGAN's loss
MR_STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def _aligned(reference: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(reference.shape[-1], generated.shape[-1])
    return reference[..., :n].float(), generated[..., :n].float()


def mr_stft_distance(reference: torch.Tensor, generated: torch.Tensor, resolutions=MR_STFT_RESOLUTIONS) -> float:
    """Mean over resolutions of spectral convergence + mean |log magnitude difference| (lower is better)."""
    reference, generated = _aligned(reference, generated)
    total = 0.0
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win)
        ref = stft_magnitude(reference, n_fft, hop, win, window)
        gen = stft_magnitude(generated, n_fft, hop, win, window)
        sc = torch.linalg.norm(ref - gen) / torch.linalg.norm(ref).clamp(min=1e-7)
        mag = (torch.log(ref.clamp(min=1e-7)) - torch.log(gen.clamp(min=1e-7))).abs().mean()
        total += float(sc + mag)
    return total / len(resolutions)


def log_spectral_distance(reference: torch.Tensor, generated: torch.Tensor, n_fft: int = 2048, hop: int = 512) -> float:
    """RMS over frequency of the dB power difference, averaged over frames (dB, lower is better)."""
    reference, generated = _aligned(reference, generated)
    window = torch.hann_window(n_fft)
    ref = stft_magnitude(reference, n_fft, hop, n_fft, window).square().clamp(min=1e-10)
    gen = stft_magnitude(generated, n_fft, hop, n_fft, window).square().clamp(min=1e-10)
    diff_db = 10 * (torch.log10(ref) - torch.log10(gen))
    return float(diff_db.square().mean(dim=-2).sqrt().mean())


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
