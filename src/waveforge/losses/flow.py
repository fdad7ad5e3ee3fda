"""Negative log-likelihood of a normalising flow under a Gaussian prior (WaveGlow, Glow)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class FlowNLL:
    """The flow's NLL, per audio sample, with its two terms.

    ``loss``: scalar to minimise (``nats_per_sample``, with the constants, so it is a true density);
    ``bits_per_sample``: the same in bits; ``prior``: ``-log N(z; 0, sigma^2 I)`` per sample;
    ``log_det``: ``log|det dz/dx|`` per sample (subtracted from ``prior`` to give ``loss``);
    ``log_prob``: ``(B,)`` float64, each item's ``log p(x)`` in nats summed over its samples
    (what ``waveforge eval`` reports; ``loss = -sum(log_prob) / N`` up to float32 rounding).
    """

    loss: torch.Tensor
    nats_per_sample: torch.Tensor
    bits_per_sample: torch.Tensor
    prior: torch.Tensor
    log_det: torch.Tensor
    log_prob: torch.Tensor


def flow_nll(z: torch.Tensor, log_det: torch.Tensor, sigma: float = 1.0) -> FlowNLL:
    """``-log p(x) = |z|^2 / (2 sigma^2) + N log(sigma sqrt(2 pi)) - log|det J|``, averaged over the ``N`` samples.

    ``z``: the latent, any shape ``(B, ...)`` holding as many elements as the audio;
    ``log_det``: ``(B,)`` (or a scalar summed over the batch), ``log|det dz/dx|``.
    Continuous densities of audio in [-1, 1] are usually negative NLLs (the audio is far narrower than ``N(0, 1)``).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    n = z.numel()
    prior = (z.float().pow(2).sum() / (2 * sigma**2) + n * (math.log(sigma) + 0.5 * math.log(2 * math.pi))) / n
    log_det_per_sample = log_det.float().sum() / n
    nats = prior - log_det_per_sample
    per_item = z.reshape(z.shape[0], -1).double()  # (B, N / B)
    prior_item = per_item.pow(2).sum(-1) / (2 * sigma**2) + per_item.shape[1] * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    log_prob = log_det.double() - (prior_item if log_det.dim() else prior_item.sum())
    return FlowNLL(loss=nats, nats_per_sample=nats, bits_per_sample=nats / math.log(2),
                   prior=prior, log_det=log_det_per_sample, log_prob=log_prob.reshape(-1))
