"""Discretised mixture of logistics (PixelCNN++, Salimans et al. 2017; used by Parallel WaveNet).

Parameters are ``(B, 3K, T)``: mixture logits ``pi`` (``[:K]``), means ``mu`` (``[K:2K]``) and log
scales ``log s`` (``[2K:]``). A sample ``x`` in [-1, 1] quantised to ``n_classes`` levels (65536 for
16 bit) has probability ``sum_k pi_k [sigma((x + 1/(n-1) - mu_k)/s_k) - sigma((x - 1/(n-1) - mu_k)/s_k)]``,
with the lowest and highest bins extended to -inf and +inf.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from waveforge.nn.sampling import nucleus_filter

LOG_SCALE_MIN = -7.0


def split_mixture_params(params: torch.Tensor, n_mixtures: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3K, T)`` -> ``logit_probs, means, log_scales``, each ``(B, K, T)`` (log scales clamped below)."""
    if params.shape[1] != 3 * n_mixtures:
        raise ValueError(f"expected {3 * n_mixtures} parameter channels for {n_mixtures} mixtures, got {params.shape[1]}")
    logit_probs, means, log_scales = params.split(n_mixtures, dim=1)
    return logit_probs, means, log_scales.clamp(min=LOG_SCALE_MIN)


def discretized_mix_logistic_log_prob(params: torch.Tensor, x: torch.Tensor, n_mixtures: int, n_classes: int = 65536) -> torch.Tensor:
    """``params (B, 3K, T)``, ``x (B, 1, T)`` in [-1, 1] -> log-probabilities ``(B, T)``, in float32.

    Computed in float32 whatever the network's output dtype: under bf16 mixed precision a half bin
    of 16-bit audio (1.5e-5) is below bfloat16's resolution near 1, and ``cdf_plus - cdf_min``
    would be zero for every bin."""
    params, x = params.float(), x.float()
    logit_probs, means, log_scales = split_mixture_params(params, n_mixtures)
    centered = x - means  # (B, K, T)
    inv_s = torch.exp(-log_scales)
    half_bin = 1.0 / (n_classes - 1)
    plus_in = inv_s * (centered + half_bin)
    min_in = inv_s * (centered - half_bin)
    cdf_plus = torch.sigmoid(plus_in)
    cdf_min = torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigma(plus_in), for the lowest bin
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigma(min_in)), for the highest bin
    cdf_delta = cdf_plus - cdf_min
    # where the bin mass underflows, use the density at the bin centre times the bin width
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    log_delta = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid - math.log((n_classes - 1) / 2))  # density x bin width 2/(n-1)
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
    return torch.logsumexp(log_probs + F.log_softmax(logit_probs, dim=1), dim=1)


def discretized_mix_logistic_loss(params: torch.Tensor, x: torch.Tensor, n_mixtures: int, n_classes: int = 65536) -> torch.Tensor:
    """Mean negative log-likelihood per sample (nats); ``params (B, 3K, T)``, ``x (B, 1, T)``."""
    return -discretized_mix_logistic_log_prob(params, x, n_mixtures, n_classes).mean()


def sample_mix_logistic(
    params: torch.Tensor, n_mixtures: int, temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``params (B, 3K)`` -> samples ``(B,)`` in [-1, 1].

    Temperature and nucleus filtering act on the choice of component (``pi / T``, top-p over
    components); temperature also scales each logistic's scale, so ``T -> 0`` returns the mean
    of the most likely component.
    """
    logit_probs, means, log_scales = split_mixture_params(params.unsqueeze(-1), n_mixtures)
    logit_probs, means, log_scales = logit_probs[..., 0], means[..., 0], log_scales[..., 0]
    if temperature <= 0.0:
        k = logit_probs.argmax(dim=-1)
        return means.gather(1, k[:, None])[:, 0].clamp(-1.0, 1.0)
    logits = nucleus_filter(logit_probs / temperature, top_p)
    k = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)  # (B, 1)
    mu = means.gather(1, k)[:, 0]
    s = log_scales.gather(1, k)[:, 0].exp() * temperature
    u = torch.rand(mu.shape, generator=generator, device=mu.device).clamp(1e-5, 1.0 - 1e-5)
    return (mu + s * (torch.log(u) - torch.log1p(-u))).clamp(-1.0, 1.0)
