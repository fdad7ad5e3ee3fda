"""Griffin-Lim from a log-mel: the quality floor every learned vocoder must beat."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from waveforge.audio.mel import MelConfig, mel_filterbank


def mel_to_linear(log_mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Least-squares inverse of the mel filterbank, ``(..., n_mels, F)`` -> ``(..., n_fft//2+1, F)``.

    Solved with non-negativity enforced by clamping the pseudo-inverse solution (librosa solves
    NNLS, which is far slower and scores the same on our metrics).
    """
    fb = mel_filterbank(config).to(log_mel)  # (M, K)
    mel = torch.exp(log_mel)
    linear = torch.matmul(torch.linalg.pinv(fb), mel)
    return linear.clamp(min=config.log_floor)


def griffin_lim(log_mel: torch.Tensor, config: MelConfig, n_iter: int = 64, momentum: float = 0.99) -> torch.Tensor:
    """``(..., n_mels, F)`` log-mel -> ``(..., F * hop_length)`` waveform.

    torchaudio's Griffin-Lim frames with centre padding (frame ``f`` centred on sample ``f*hop``),
    while our mels centre frame ``f`` on ``f*hop + hop/2``; the output is shifted by half a hop to
    line up with the original audio.
    """
    linear = mel_to_linear(log_mel, config)
    n_frames = log_mel.shape[-1]
    # centre-padded framing of F * hop samples has F + 1 frames: repeat the last one
    linear = torch.cat([linear, linear[..., -1:]], dim=-1)
    window = torch.hann_window(config.win_length, device=log_mel.device)
    audio = AF.griffinlim(
        linear,
        window,
        config.n_fft,
        config.hop_length,
        config.win_length,
        power=1.0,
        n_iter=n_iter,
        momentum=momentum,
        length=n_frames * config.hop_length,
        rand_init=False,
    )
    shift = config.hop_length // 2
    audio = F.pad(audio, (shift, 0))[..., : n_frames * config.hop_length]
    return audio.clamp(-1.0, 1.0)
