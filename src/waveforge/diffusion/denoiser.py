"""Preconditioning: one wrapper owns the training target and the denoised output.

Notation (EDM, Karras et al. 2022, table 1): the state is ``x = x_0 + sigma * eps`` (see
:mod:`waveforge.diffusion.schedules`), the backbone is ``F(c_in x, c_noise, cond)`` and

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))

Training regresses ``F`` onto ``(x_0 - c_skip x) / c_out`` with plain MSE, which for each
prediction type is the usual target:

============  ==========================  =====================================  ==========
prediction    c_skip                      c_out                                  target
============  ==========================  =====================================  ==========
``eps``       1                           -sigma                                 eps
``x0``        0                           1                                      x_0
``v``         sd^2 / (sigma^2 + sd^2)     -sigma sd / sqrt(sigma^2 + sd^2)       v (sd = 1: alpha eps - sigma_vp x_0)
``edm``       sd^2 / (sigma^2 + sd^2)     +sigma sd / sqrt(sigma^2 + sd^2)       EDM's F target
============  ==========================  =====================================  ==========

with ``c_in = 1 / sqrt(sigma^2 + sd^2)`` (for ``sd = 1`` the VP input ``z_t``) and
``c_noise = ln(sigma) / 4`` for all. Because loss and output come from the same scalings, the
prediction types cannot drift apart between training and sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

PREDICTIONS = ("eps", "x0", "v", "edm")

# ------------------------------------------------------------------------------------------------
# Conversions between predictions at noise level sigma (x = x_0 + sigma eps; v uses sigma_data = 1:
# alpha = 1 / sqrt(1 + sigma^2), sigma_vp = sigma alpha, v = alpha eps - sigma_vp x_0).


def _b(sigma: Tensor | float, x: Tensor) -> Tensor:
    """Broadcast a per-example sigma ``(B,)`` (or a scalar) against ``x: (B, ...)``."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.reshape(sigma.shape + (1,) * (x.dim() - sigma.dim()))


def eps_to_x0(x: Tensor, eps: Tensor, sigma) -> Tensor:
    return x - _b(sigma, x) * eps


def x0_to_eps(x: Tensor, x0: Tensor, sigma) -> Tensor:
    return (x - x0) / _b(sigma, x)


def v_to_x0(x: Tensor, v: Tensor, sigma) -> Tensor:
    s = _b(sigma, x)
    alpha = (1 + s**2).rsqrt()
    return alpha**2 * x - s * alpha * v


def x0_to_v(x: Tensor, x0: Tensor, sigma) -> Tensor:
    s = _b(sigma, x)
    alpha = (1 + s**2).rsqrt()
    return alpha * x0_to_eps(x, x0, sigma) - s * alpha * x0


def eps_to_v(x: Tensor, eps: Tensor, sigma) -> Tensor:
    return x0_to_v(x, eps_to_x0(x, eps, sigma), sigma)


def v_to_eps(x: Tensor, v: Tensor, sigma) -> Tensor:
    return x0_to_eps(x, v_to_x0(x, v, sigma), sigma)


# ------------------------------------------------------------------------------------------------


@dataclass
class Scalings:
    """Per-example preconditioning coefficients, each shaped like ``sigma`` broadcast to ``x``."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor  # (B,), the backbone's noise input


def scalings(prediction: str, sigma: Tensor, sigma_data: float) -> Scalings:
    """Coefficients for ``prediction`` at ``sigma: (B,)`` (see the module table)."""
    sd2 = sigma_data**2
    c_in = (sigma**2 + sd2).rsqrt()
    c_noise = sigma.log() / 4
    if prediction == "eps":
        c_skip, c_out = torch.ones_like(sigma), -sigma
    elif prediction == "x0":
        c_skip, c_out = torch.zeros_like(sigma), torch.ones_like(sigma)
    elif prediction in ("v", "edm"):
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * sigma_data * c_in * (-1 if prediction == "v" else 1)
    else:
        raise ValueError(f"unknown prediction {prediction!r} (known: {', '.join(PREDICTIONS)})")
    return Scalings(c_skip, c_out, c_in, c_noise)


class Denoiser(nn.Module):
    """``D(x, sigma, cond) -> x0_hat`` around a backbone ``F(x_in: (B, ...), c_noise: (B,), cond) -> (B, ...)``.

    Args:
        model: the backbone (e.g. :class:`waveforge.models.DiffWave`).
        prediction: what ``F`` predicts: ``"eps"``, ``"x0"``, ``"v"`` or ``"edm"``.
        sigma_data: standard deviation of the data (enters c_in, and c_skip/c_out for v and edm).
    """

    def __init__(self, model: nn.Module, prediction: str = "eps", sigma_data: float = 1.0):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r} (known: {', '.join(PREDICTIONS)})")
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be positive, got {sigma_data}")
        self.inner_model = model
        self.prediction = prediction
        self.sigma_data = float(sigma_data)

    def scalings(self, sigma: Tensor) -> Scalings:
        return scalings(self.prediction, sigma, self.sigma_data)

    def for_sampling(self) -> "Denoiser":
        """The same denoiser around the backbone's sampling form (its ``for_sampling()``, e.g.
        :meth:`waveforge.models.DiffWave.sampling_pass`), or ``self`` when it has none. Weights are shared."""
        for_sampling = getattr(self.inner_model, "for_sampling", None)
        if for_sampling is None:
            return self
        return Denoiser(for_sampling(), self.prediction, self.sigma_data)

    def prepare(self, cond: Any, drop: Tensor | None = None) -> Any:
        """Per-call conditioning the backbone can reuse at every step (its ``prepare``), if it has one.

        ``drop: (B,) bool`` replaces the condition of those examples by the backbone's null condition.
        """
        prepare = getattr(self.inner_model, "prepare", None)
        if prepare is None:
            if drop is not None:
                raise ValueError(f"{type(self.inner_model).__name__} has no null condition to drop to")
            return cond
        return prepare(cond, drop)

    def forward(self, x: Tensor, sigma: Tensor, cond: Any = None) -> Tensor:
        """``x: (B, ...)``, ``sigma: (B,)`` -> ``x0_hat: (B, ...)``."""
        sigma = _per_example(sigma, x)
        c = self.scalings(sigma)
        out = self.inner_model(x * _b(c.c_in, x), c.c_noise, cond)
        return _b(c.c_skip, x) * x + _b(c.c_out, x) * out

    def loss(self, x0: Tensor, cond: Any, sigma: Tensor, noise: Tensor | None = None) -> Tensor:
        """Per-example MSE ``(B,)`` between ``F`` and its target ``(x0 - c_skip x) / c_out`` at ``x = x0 + sigma noise``."""
        sigma = _per_example(sigma, x0)
        noise = torch.randn_like(x0) if noise is None else noise
        x = x0 + _b(sigma, x0) * noise
        c = self.scalings(sigma)
        out = self.inner_model(x * _b(c.c_in, x), c.c_noise, cond)
        target = (x0 - _b(c.c_skip, x) * x) / _b(c.c_out, x)
        return (out - target).pow(2).flatten(1).mean(1)


@dataclass
class GuidedCondition:
    """Conditioning for ``2B`` rows: rows ``[:B]`` carry the condition, rows ``[B:]`` the null condition."""

    both: Any


class CFGDenoiser(nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022): ``D_uncond + scale * (D_cond - D_uncond)``.

    Conditional and unconditional passes run as one batch of ``2B``. ``cond`` is either the raw
    condition ``(B, ...)`` or a :class:`GuidedCondition` from :meth:`prepare` (reuse it across steps).
    ``scale = 1`` is the conditional model; ``scale = 0`` the unconditional one.
    """

    def __init__(self, denoiser: Denoiser, scale: float):
        super().__init__()
        self.denoiser = denoiser
        self.scale = float(scale)

    def prepare(self, cond: Tensor) -> GuidedCondition:
        both = torch.cat([cond, cond])
        drop = torch.arange(both.shape[0], device=cond.device) >= cond.shape[0]
        return GuidedCondition(self.denoiser.prepare(both, drop))

    def forward(self, x: Tensor, sigma: Tensor, cond: Any) -> Tensor:
        if not isinstance(cond, GuidedCondition):
            cond = self.prepare(cond)
        sigma = _per_example(sigma, x)
        d_cond, d_uncond = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), cond.both).chunk(2)
        return d_uncond + self.scale * (d_cond - d_uncond)


def _per_example(sigma, x: Tensor) -> Tensor:
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or shaped (B,) = ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma
