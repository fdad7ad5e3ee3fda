"""Spectral losses: multi-resolution STFT (Yamamoto et al., Parallel WaveGAN 2020) and mel L1.

For one resolution, with ``|S|`` the STFT magnitude of the target ``x`` and ``|Ŝ|`` that of the
prediction ``x̂`` (both from :func:`waveforge.audio.stft_magnitude`, hop-aligned framing)::

    L_sc  = || |S| - |Ŝ| ||_F / || |S| ||_F          (spectral convergence)
    L_mag = mean | log|S| - log|Ŝ| |                 (log-magnitude L1)

The multi-resolution loss averages ``L_sc + L_mag`` over the resolutions. As a training loss
(:func:`multi_resolution_stft_loss`) the Frobenius norms of ``L_sc`` run over the whole batch, as in
Parallel WaveGAN: normalised per item, a near-silent crop (a rest, the end of a piece) has
``|| |S| ||_F`` close to zero, and its ``L_sc`` (and gradient) can be a hundred times everyone
else's, which pushes the generator to make everything quiet. :func:`mr_stft_loss_per_item` is the
per-item quantity, for use as a metric on whole pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from waveforge.audio.mel import MelSpectrogram
from waveforge.audio.stft import stft_magnitude

#: (n_fft, hop_length, win_length) for the three default resolutions.
DEFAULT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))

#: Floor under magnitudes before the log, so silence does not give -inf.
LOG_FLOOR = 1e-7

__all__ = [
    "DEFAULT_RESOLUTIONS",
    "MultiResolutionSTFTLoss",
    "STFTLossResult",
    "log_spectral_distance_loss",
    "mel_l1_loss",
    "mr_stft_loss_per_item",
    "multi_resolution_stft_loss",
    "stft_loss_terms",
]


@dataclass
class STFTLossResult:
    """Per-item terms, each ``(B,)`` and averaged over resolutions; ``total = spectral_convergence + log_magnitude``."""

    spectral_convergence: torch.Tensor
    log_magnitude: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.spectral_convergence + self.log_magnitude


def _flatten_items(audio: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T)`` or ``(B, T)`` or ``(T,)`` -> ``(B, T)``."""
    if audio.dim() == 1:
        return audio.unsqueeze(0)
    if audio.dim() == 3:
        if audio.shape[1] != 1:
            raise ValueError(f"expected mono audio (B, 1, T), got {tuple(audio.shape)}")
        return audio[:, 0]
    if audio.dim() == 2:
        return audio
    raise ValueError(f"expected audio of shape (B, 1, T), (B, T) or (T,), got {tuple(audio.shape)}")


def stft_loss_terms(
    pred: torch.Tensor,
    target: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: torch.Tensor,
    per_item: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral convergence and log-magnitude L1 at one resolution.

    ``pred``, ``target``: ``(B, 1, T)`` (or ``(B, T)``) with the same shape. ``per_item``: terms
    ``(B,)``, each item normalised by its own norm; otherwise scalars, with the norms taken over the
    whole batch (the stable form for training; see the module docstring).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    pred_mag = stft_magnitude(_flatten_items(pred), n_fft, hop_length, win_length, window)  # (B, n_fft/2+1, F)
    target_mag = stft_magnitude(_flatten_items(target), n_fft, hop_length, win_length, window)
    dims = (-2, -1) if per_item else (0, -2, -1)
    diff_norm = torch.linalg.vector_norm(target_mag - pred_mag, dim=dims)
    target_norm = torch.linalg.vector_norm(target_mag, dim=dims).clamp_min(LOG_FLOOR)
    spectral_convergence = diff_norm / target_norm
    log_magnitude = (torch.log(target_mag.clamp_min(LOG_FLOOR)) - torch.log(pred_mag.clamp_min(LOG_FLOOR))).abs().mean(dim=dims)
    return spectral_convergence, log_magnitude


def _resolve_windows(
    resolutions: Sequence[tuple[int, int, int]], windows: Sequence[torch.Tensor] | None, like: torch.Tensor
) -> list[torch.Tensor]:
    if windows is None:
        return [torch.hann_window(win, device=like.device, dtype=like.dtype) for _, _, win in resolutions]
    windows = list(windows)
    if len(windows) != len(resolutions):
        raise ValueError(f"got {len(windows)} windows for {len(resolutions)} resolutions")
    return windows


def _full_precision(audio: torch.Tensor) -> torch.Tensor:
    """Half-precision audio (a generator's output under mixed precision) as float32; FFTs take no bfloat16."""
    return audio.float() if audio.dtype in (torch.float16, torch.bfloat16) else audio


def _multi_resolution_terms(pred, target, resolutions, windows, per_item: bool) -> STFTLossResult:
    resolutions = list(resolutions)
    if not resolutions:
        raise ValueError("need at least one STFT resolution")
    pred, target = _full_precision(pred), _full_precision(target)  # not a bf16 window either
    windows = _resolve_windows(resolutions, windows, pred)
    sc_total, mag_total = 0.0, 0.0
    for (n_fft, hop, win), window in zip(resolutions, windows):
        sc, mag = stft_loss_terms(pred, target, n_fft, hop, win, window, per_item)
        sc_total = sc_total + sc
        mag_total = mag_total + mag
    return STFTLossResult(sc_total / len(resolutions), mag_total / len(resolutions))


def multi_resolution_stft_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS,
    windows: Sequence[torch.Tensor] | None = None,
) -> STFTLossResult:
    """Multi-resolution STFT loss terms between ``pred`` and ``target`` ``(B, 1, T)``, as scalars over the batch.

    ``resolutions``: ``(n_fft, hop_length, win_length)`` triples; ``windows``: one per resolution
    (Hann windows are made on the fly when omitted). Returns scalar terms; ``.total`` is the loss.
    Spectral convergence is normalised by the whole batch's target norm (see the module docstring).
    """
    return _multi_resolution_terms(pred, target, resolutions, windows, per_item=False)


@torch.no_grad()
def mr_stft_loss_per_item(
    pred: torch.Tensor,
    target: torch.Tensor,
    resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS,
) -> torch.Tensor:
    """The multi-resolution STFT loss per item, ``(B,)`` (0 for identical signals). Arguments in the
    losses' order, ``(pred, target)``; :func:`waveforge.metrics.mr_stft_distance` is the metric on
    two whole signals, in the metrics' order ``(reference, generated)``."""
    return _multi_resolution_terms(pred.float(), target.float(), resolutions, None, per_item=True).total


class MultiResolutionSTFTLoss(nn.Module):
    """Module form of :func:`multi_resolution_stft_loss`; holds the Hann windows as buffers.

    ``forward(pred, target)`` with ``(B, 1, T)`` tensors -> :class:`STFTLossResult` of scalars.
    """

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS):
        super().__init__()
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        for n_fft, hop, win in self.resolutions:
            if not (0 < hop <= n_fft and 0 < win <= n_fft):
                raise ValueError(f"bad STFT resolution (n_fft={n_fft}, hop={hop}, win={win}): need hop, win <= n_fft")
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> STFTLossResult:
        windows = [getattr(self, f"window{i}") for i in range(len(self.resolutions))]
        return multi_resolution_stft_loss(pred, target, self.resolutions, windows)


def log_spectral_distance_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int = 512,
    floor_db: float = -80.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Log-spectral distance in dB, per item: ``(B, 1, T)`` (or ``(B, T)``) each -> ``(B,)``.

    Per frame, the RMS over frequency of the dB power difference; then the mean over frames. Power
    is relative to a full-scale sine (0 dBFS) and floored at ``floor_db``. With ``eps = 0`` it is
    :func:`waveforge.metrics.log_spectral_distance`; as a loss ``eps`` (dB²) keeps the square root's
    gradient finite on frames where both signals sit at the floor (it adds < 0.01 dB there).

    Why train on it as well as on the MR-STFT terms: their log-magnitude term is an L1 floored at
    1e-7 (about -200 dB), so bins far below audibility weigh as much as the loud ones and a
    10-20 dB error in a few bins costs what a 1 dB error in ten bins does; this term squares the
    error per frame and ignores what is 80 dB down.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    pred, target = _full_precision(pred), _full_precision(target)
    window = torch.hann_window(n_fft, device=pred.device, dtype=pred.dtype)
    full_scale = window.sum() / 2  # the STFT magnitude of a full-scale sine at a bin centre
    floor = 10 ** (floor_db / 10)

    def power_db(audio: torch.Tensor) -> torch.Tensor:  # (B, n_fft/2+1, F)
        power = (stft_magnitude(_flatten_items(audio), n_fft, hop_length, n_fft, window) / full_scale).square()
        return 10 * torch.log10(power.clamp(min=floor))

    per_frame = ((power_db(pred) - power_db(target)).square().mean(dim=-2) + eps).sqrt()  # (B, F)
    return per_frame.mean(dim=-1)


def mel_l1_loss(pred: torch.Tensor, target: torch.Tensor, mel: MelSpectrogram) -> torch.Tensor:
    """Mean absolute difference of log-mels (HiFi-GAN's reconstruction term): audio ``(B, 1, T)`` -> scalar."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return F.l1_loss(mel(pred), mel(target))
