"""Noise schedules in continuous time, all expressed as a noise level ``sigma``.

The one formulation (Karras et al. 2022, "EDM", section 2/4): the sampler state is

    x = x_0 + sigma * eps,        eps ~ N(0, I)                      (variance exploding, "VE")

A variance-preserving process ``z_t = sqrt(alpha_bar(t)) x_0 + sqrt(1 - alpha_bar(t)) eps`` is the
same process seen through the scaling ``s(t) = sqrt(alpha_bar(t))``:

    z_t = s(t) * (x_0 + sigma(t) * eps),    sigma(t) = sqrt((1 - alpha_bar(t)) / alpha_bar(t))

so every VP schedule below is just a map ``t -> sigma(t)``; the network sees ``z_t`` through the
preconditioning ``c_in = 1 / sqrt(sigma^2 + sigma_data^2)`` (which is ``s(t)`` when ``sigma_data = 1``).
Samplers therefore only ever need a decreasing sequence of sigmas.

``get_sigmas_<name>(n, ...)`` returns ``n + 1`` sigmas: ``n`` decreasing noise levels followed by a
final 0 (k-diffusion convention; the last step jumps to the denoised estimate).
``rand_<name>(shape, ...)`` draws training noise levels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# ------------------------------------------------------------------------------------------------
# VP cosine (Nichol & Dhariwal 2021): alpha_bar(t) = cos^2(((t + s) / (1 + s)) * pi / 2) / cos^2(s / (1 + s) * pi / 2)


def vp_cosine_sigma(t: Tensor, s: float = 0.008) -> Tensor:
    """``t`` in [0, 1) -> sigma(t) for the cosine schedule (sigma(0) = 0, sigma -> inf as t -> 1)."""
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    alpha_bar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / f0
    return torch.sqrt((1 - alpha_bar).clamp_min(0) / alpha_bar)


def vp_cosine_t(sigma: Tensor, s: float = 0.008) -> Tensor:
    """Inverse of :func:`vp_cosine_sigma`."""
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    alpha_bar = 1 / (1 + sigma**2)
    return torch.acos(torch.sqrt(alpha_bar * f0)) * 2 / math.pi * (1 + s) - s


def get_sigmas_vp_cosine(n: int, t_min: float = 1e-3, t_max: float = 0.995, s: float = 0.008, device="cpu") -> Tensor:
    """``n`` steps uniform in t from ``t_max`` down to ``t_min`` (sigma ~ 49 .. 2e-3 by default), then 0."""
    _check_steps(n)
    t = torch.linspace(t_max, t_min, n, dtype=torch.float64)
    return _append_zero(vp_cosine_sigma(t, s)).float().to(device)


def rand_vp_cosine(shape, t_min: float = 1e-3, t_max: float = 0.995, s: float = 0.008, generator=None, device="cpu") -> Tensor:
    """Training noise levels: t ~ U(t_min, t_max) mapped through the cosine schedule."""
    t = torch.rand(shape, generator=generator, device=device, dtype=torch.float64) * (t_max - t_min) + t_min
    return vp_cosine_sigma(t, s).float()


# ------------------------------------------------------------------------------------------------
# VP linear beta (DDPM, DiffWave). A discrete schedule beta_1..beta_N = linspace(beta_start, beta_end, N)
# is the Euler discretisation of the VP-SDE with beta(t) = N * beta(t*N), t in [0, 1] (Song et al. 2021):
#   alpha_bar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2)),  beta_min = N beta_start, beta_max = N beta_end.
# DDPM: 1e-4..0.02 over 1000 -> (0.1, 20). DiffWave base: 1e-4..0.05 over 50 -> (0.005, 2.5).

DDPM_BETAS = (0.1, 20.0)
DIFFWAVE_BETAS = (50 * 1e-4, 50 * 0.05)


def vp_linear_sigma(t: Tensor, beta_min: float = DDPM_BETAS[0], beta_max: float = DDPM_BETAS[1]) -> Tensor:
    log_alpha_bar = -(beta_min * t + 0.5 * (beta_max - beta_min) * t**2)
    return torch.sqrt(torch.expm1(-log_alpha_bar))  # sqrt(1/alpha_bar - 1)


def vp_linear_t(sigma: Tensor, beta_min: float = DDPM_BETAS[0], beta_max: float = DDPM_BETAS[1]) -> Tensor:
    """Inverse of :func:`vp_linear_sigma` (positive root of the quadratic in t)."""
    c = torch.log1p(sigma**2)  # = -log alpha_bar
    a = 0.5 * (beta_max - beta_min)
    if a == 0:
        return c / beta_min
    return (-beta_min + torch.sqrt(beta_min**2 + 4 * a * c)) / (2 * a)


def get_sigmas_vp_linear(
    n: int, beta_min: float = DDPM_BETAS[0], beta_max: float = DDPM_BETAS[1], t_min: float = 1e-3, device="cpu"
) -> Tensor:
    """``n`` steps uniform in t from 1 down to ``t_min``, then 0."""
    _check_steps(n)
    t = torch.linspace(1.0, t_min, n, dtype=torch.float64)
    return _append_zero(vp_linear_sigma(t, beta_min, beta_max)).float().to(device)


def rand_vp_linear(
    shape, beta_min: float = DDPM_BETAS[0], beta_max: float = DDPM_BETAS[1], t_min: float = 1e-3, generator=None, device="cpu"
) -> Tensor:
    t = torch.rand(shape, generator=generator, device=device, dtype=torch.float64) * (1 - t_min) + t_min
    return vp_linear_sigma(t, beta_min, beta_max).float()


def discrete_vp_sigmas(beta_start: float, beta_end: float, n_train: int) -> Tensor:
    """The noise levels a discrete DDPM/DiffWave model was trained on: sigma_n = sqrt((1 - alpha_bar_n) / alpha_bar_n),
    alpha_bar_n = prod_{i<=n} (1 - beta_i), increasing in n (n = 1..N)."""
    betas = torch.linspace(beta_start, beta_end, n_train, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    return torch.sqrt((1 - alpha_bar) / alpha_bar).float()


# ------------------------------------------------------------------------------------------------
# VE / EDM (Karras et al. 2022, eq. 5): sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho


def get_sigmas_karras(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, device="cpu") -> Tensor:
    _check_steps(n)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho).float().to(device)


def get_sigmas_exponential(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, device="cpu") -> Tensor:
    """Log-uniform spacing (the rho -> inf limit of Karras)."""
    _check_steps(n)
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp()).float().to(device)


def rand_log_normal(shape, loc: float = -1.2, scale: float = 1.2, generator=None, device="cpu") -> Tensor:
    """EDM training distribution: ln(sigma) ~ N(P_mean, P_std^2)."""
    return (torch.randn(shape, generator=generator, device=device) * scale + loc).exp()


def rand_log_uniform(shape, sigma_min: float = 0.002, sigma_max: float = 80.0, generator=None, device="cpu") -> Tensor:
    u = torch.rand(shape, generator=generator, device=device)
    return (u * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)).exp()


SCHEDULES = {
    "karras": get_sigmas_karras,
    "exponential": get_sigmas_exponential,
    "vp_cosine": get_sigmas_vp_cosine,
    "vp_linear": get_sigmas_vp_linear,
}


def get_sigmas(name: str, n: int, **kwargs) -> Tensor:
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r} (known: {', '.join(SCHEDULES)})")
    return SCHEDULES[name](n, **kwargs)


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _check_steps(n: int) -> None:
    if n < 1:
        raise ValueError(f"need at least one sampling step, got {n}")
