"""Samplers as pure functions (k-diffusion style).

Every sampler is ``sample_<name>(denoiser, x, sigmas, cond=None, ..., generator=None, progress=False)``:

* ``denoiser(x, sigma: (B,), cond) -> x0_hat`` (a :class:`~waveforge.diffusion.Denoiser`,
  :class:`~waveforge.diffusion.CFGDenoiser`, or any exact denoiser in tests);
* ``x`` is the starting noise already scaled to ``sigmas[0]`` (``x = sigmas[0] * randn``), any shape ``(B, ...)``;
* ``sigmas`` is any decreasing sequence ending (usually) in 0, e.g. from ``get_sigmas_*``; the step
  count is chosen here, at sampling time, independently of training.

Nothing survives a call. All updates are written in the VE state ``x = x_0 + sigma eps`` (see
:mod:`waveforge.diffusion.schedules`); the probability-flow ODE is ``dx/dsigma = (x - D(x, sigma)) / sigma``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from waveforge.utils.progress import progress as _progress

DenoiserFn = Callable[[Tensor, Tensor, Any], Tensor]


def _steps(sigmas: Tensor, progress: bool, name: str):
    return _progress(range(len(sigmas) - 1), desc=f"diffusion ({name})", unit="step", enabled=progress)


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _ode_derivative(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """d = dx/dsigma = (x - D(x; sigma)) / sigma  (EDM eq. 4 with s(t) = 1, sigma(t) = t)."""
    return (x - denoised) / sigma


@torch.no_grad()
def sample_euler(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, cond: Any = None, generator=None, progress: bool = False) -> Tensor:
    """Euler's method on the probability-flow ODE (deterministic; DDIM with eta = 0 in VE form)."""
    s_in = x.new_ones(x.shape[0])
    for i in _steps(sigmas, progress, "euler"):
        denoised = denoiser(x, sigmas[i] * s_in, cond)
        d = _ode_derivative(x, sigmas[i], denoised)
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_heun(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, cond: Any = None, generator=None, progress: bool = False) -> Tensor:
    """EDM's deterministic 2nd-order sampler (Karras et al. 2022, algorithm 1, S_churn = 0).

    Works for increasing sigmas too (integrating data -> noise), as long as no sigma is 0 except the last.
    """
    s_in = x.new_ones(x.shape[0])
    for i in _steps(sigmas, progress, "heun"):
        sigma_i, sigma_next = sigmas[i], sigmas[i + 1]
        d_i = _ode_derivative(x, sigma_i, denoiser(x, sigma_i * s_in, cond))  # line 5: d_i
        x_next = x + (sigma_next - sigma_i) * d_i  # line 6: Euler step
        if sigma_next > 0:  # line 7-8: 2nd-order correction (skipped on the final step to sigma = 0)
            d_prime = _ode_derivative(x_next, sigma_next, denoiser(x_next, sigma_next * s_in, cond))
            x_next = x + (sigma_next - sigma_i) * 0.5 * (d_i + d_prime)
        x = x_next
    return x


@torch.no_grad()
def sample_ddim(
    denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, cond: Any = None, eta: float = 0.0, generator=None, progress: bool = False
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) written in the VE state.

    With alpha_bar = 1 / (1 + sigma^2), DDIM's stochasticity sigma_t(eta) becomes, after dividing by
    sqrt(alpha_bar_prev), ``sigma_up = eta * sigma' * sqrt(sigma^2 - sigma'^2) / sigma`` and the update is

        x' = x0_hat + sqrt(sigma'^2 - sigma_up^2) * eps_hat + sigma_up * z,    eps_hat = (x - x0_hat) / sigma

    eta = 0 is deterministic DDIM; eta = 1 is DDPM's ancestral sampler.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"DDIM eta must lie in [0, 1], got {eta}")
    s_in = x.new_ones(x.shape[0])
    for i in _steps(sigmas, progress, "ddim"):
        sigma, sigma_prev = sigmas[i], sigmas[i + 1]
        x0_hat = denoiser(x, sigma * s_in, cond)
        eps_hat = (x - x0_hat) / sigma
        sigma_up = eta * sigma_prev * (sigma**2 - sigma_prev**2).clamp_min(0).sqrt() / sigma
        x = x0_hat + (sigma_prev**2 - sigma_up**2).clamp_min(0).sqrt() * eps_hat
        if eta > 0 and sigma_prev > 0:
            x = x + sigma_up * _noise(x, generator)
    return x


@torch.no_grad()
def sample_ddpm(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, cond: Any = None, generator=None, progress: bool = False) -> Tensor:
    """Ancestral DDPM (Ho et al. 2020): draw ``x_{s}`` from the posterior ``q(x_s | x_t, x0_hat)``.

    In the VE state, for noise levels sigma_t > sigma_s, that posterior is Gaussian with

        mean = x0_hat + (sigma_s^2 / sigma_t^2) (x_t - x0_hat),    var = sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2

    (DDPM's beta_tilde_t after dividing by alpha_bar_s); the last step returns x0_hat.
    """
    s_in = x.new_ones(x.shape[0])
    for i in _steps(sigmas, progress, "ddpm"):
        sigma_t, sigma_s = sigmas[i], sigmas[i + 1]
        x0_hat = denoiser(x, sigma_t * s_in, cond)
        ratio = sigma_s**2 / sigma_t**2
        x = x0_hat + ratio * (x - x0_hat)
        if sigma_s > 0:
            x = x + (sigma_s**2 * (1 - ratio)).sqrt() * _noise(x, generator)
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, cond: Any = None, generator=None, progress: bool = False) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, algorithm 2), in lambda = -log(sigma).

    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - (e^{-h_i} - 1) D_i,   D_i = (1 + 1/(2 r_i)) x0_i - 1/(2 r_i) x0_{i-1},
    with h_i = lambda_{i+1} - lambda_i and r_i = h_{i-1} / h_i (first step: D_i = x0_i; last step to 0: x = D_i).
    """
    s_in = x.new_ones(x.shape[0])
    old_denoised, h_last = None, None
    for i in _steps(sigmas, progress, "dpmpp_2m"):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, cond)
        if sigma_next == 0:
            x = denoised  # lambda_{i+1} = inf: the exponential integrator lands on D_i (first-order)
            break
        h = sigma.log() - sigma_next.log()
        d = denoised
        if old_denoised is not None:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigma_next / sigma) * x - torch.expm1(-h) * d
        old_denoised, h_last = denoised, h
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp_2m": sample_dpmpp_2m,
}


def get_sampler(name: str) -> Callable[..., Tensor]:
    """A sampler by name (``"dpmpp-2m"`` and ``"dpmpp_2m"`` both work)."""
    name = name.replace("-", "_")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    return SAMPLERS[name]
