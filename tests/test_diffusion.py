"""Schedules, preconditioning, samplers and guidance, checked against denoisers known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from waveforge.diffusion import (
    PREDICTIONS,
    CFGDenoiser,
    Denoiser,
    discrete_vp_sigmas,
    DIFFWAVE_BETAS,
    eps_to_v,
    eps_to_x0,
    get_sampler,
    get_sigmas,
    get_sigmas_karras,
    rand_log_normal,
    sample_ddim,
    sample_ddpm,
    sample_heun,
    scalings,
    v_to_eps,
    v_to_x0,
    vp_cosine_sigma,
    vp_cosine_t,
    vp_linear_sigma,
    vp_linear_t,
    x0_to_eps,
    x0_to_v,
)
from waveforge.models import DiffWave, DiffWaveConfig

torch.set_default_dtype(torch.float32)


# ------------------------------------------------------------------------------------------------
# Exact denoisers: D(x, sigma) = E[x_0 | x_0 + sigma eps = x]


class GaussianDenoiser:
    """Data N(mu, Sigma): D(x, sigma) = mu + Sigma (Sigma + sigma^2 I)^-1 (x - mu)."""

    def __init__(self, mu: torch.Tensor, cov: torch.Tensor):
        self.mu = mu
        self.lam, self.q = torch.linalg.eigh(cov)  # Sigma = Q diag(lam) Q^T

    def __call__(self, x, sigma, cond=None):
        gain = self.lam / (self.lam + sigma[:, None] ** 2)  # (B, D): eigenvalues of Sigma (Sigma + sigma^2 I)^-1
        return self.mu + (((x - self.mu) @ self.q) * gain) @ self.q.T


class WaveformMixtureDenoiser:
    """Data: one of K fixed waveforms m_k with weight w_k. D(x, sigma) = sum_k softmax_k(log w_k - |x - m_k|^2 / 2 sigma^2) m_k."""

    def __init__(self, modes: torch.Tensor, weights: torch.Tensor):
        self.modes, self.log_w = modes, weights.log()

    def __call__(self, x, sigma, cond=None):
        d2 = ((x.flatten(1)[:, None, :] - self.modes.flatten(1)[None]) ** 2).sum(-1)  # (B, K)
        r = torch.softmax(self.log_w[None] - d2 / (2 * sigma[:, None] ** 2), dim=1)
        return (r @ self.modes.flatten(1)).view_as(x)


def _gaussian(dtype=torch.float64):
    mu = torch.tensor([0.5, -1.0, 0.25], dtype=dtype)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.5, 0.0], [-0.3, 0.2, 0.3]], dtype=dtype)
    return mu, a @ a.T


def _sample_all(sampler_name, denoiser, shape, steps, seed, dtype=torch.float64, **kw):
    sigmas = get_sigmas_karras(steps, sigma_min=0.002, sigma_max=80.0).to(dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype) * sigmas[0]
    return get_sampler(sampler_name)(denoiser, x, sigmas, generator=g, **kw)


SAMPLER_CASES = [("euler", {}), ("heun", {}), ("ddim", {}), ("ddim", {"eta": 0.5}), ("ddpm", {}), ("dpmpp_2m", {})]
# error bound at 64 steps: Monte-Carlo error of 10000 samples is ~0.06; first-order and ancestral
# samplers keep a discretisation bias of ~0.1-0.25 there, the second-order ones do not
BOUND_AT_64 = {"heun": 0.1, "dpmpp_2m": 0.1}


@pytest.mark.parametrize("name,kw", SAMPLER_CASES)
def test_samplers_reach_gaussian_statistics_and_improve_with_steps(name, kw):
    mu, cov = _gaussian()
    den = GaussianDenoiser(mu, cov)

    def error(steps):
        x = _sample_all(name, den, (10000, 3), steps, seed=0, **kw)
        return ((x.mean(0) - mu).norm() + (torch.cov(x.T) - cov).norm()).item()

    few, many = error(4), error(64)
    assert many < few / 4, (few, many)
    assert many < BOUND_AT_64.get(name, 0.3), many


@pytest.mark.parametrize("name,kw", SAMPLER_CASES)
def test_samplers_recover_waveform_mixture_modes_and_weights(name, kw):
    g = torch.Generator().manual_seed(1)
    modes = torch.randn(3, 1, 16, generator=g, dtype=torch.float64) * 0.5  # three fixed "waveforms" (1, 16)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    den = WaveformMixtureDenoiser(modes, weights)
    x = _sample_all(name, den, (2000, 1, 16), 32, seed=2, **kw)
    dist = ((x.flatten(1)[:, None] - modes.flatten(1)[None]) ** 2).sum(-1).sqrt()  # (N, K)
    nearest = dist.argmin(1)
    freq = torch.bincount(nearest, minlength=3).double() / len(x)
    assert (freq - weights).abs().max() < 0.045, freq
    assert dist.min(1).values.max() < 1e-3  # every sample lands on a mode


def test_ddpm_is_ddim_with_eta_one():
    mu, cov = _gaussian()
    den = GaussianDenoiser(mu, cov)
    a = _sample_all("ddpm", den, (64, 3), 10, seed=3)
    b = _sample_all("ddim", den, (64, 3), 10, seed=3, eta=1.0)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_probability_flow_ode_round_trip_data_to_noise_and_back():
    mu, cov = _gaussian()
    den = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(4)
    x0 = mu + torch.randn(256, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    up = get_sigmas_karras(150, sigma_min=0.002, sigma_max=80.0).double()[:-1]  # decreasing, no final 0
    noise = sample_heun(den, x0, up.flip(0))  # data -> noise (sigma increasing)
    assert abs(noise.std().item() / 80.0 - 1) < 0.1  # at sigma = 80 the state is essentially N(0, 80^2)
    back = sample_heun(den, noise, up)  # noise -> data
    assert (back - x0).abs().max() < 1e-3


def test_prediction_conversions_are_mutual_inverses():
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(6, 1, 32, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 1, 32, generator=g, dtype=torch.float64)
    sigma = torch.tensor([1e-3, 0.05, 0.5, 1.0, 7.0, 80.0], dtype=torch.float64)
    x = x0 + sigma[:, None, None] * eps
    v = eps_to_v(x, eps, sigma)
    torch.testing.assert_close(eps_to_x0(x, eps, sigma), x0)
    torch.testing.assert_close(x0_to_eps(x, x0, sigma), eps)
    torch.testing.assert_close(v_to_x0(x, v, sigma), x0)
    torch.testing.assert_close(v_to_eps(x, v, sigma), eps)
    torch.testing.assert_close(x0_to_v(x, x0, sigma), v)
    alpha = (1 + sigma**2).rsqrt()[:, None, None]
    torch.testing.assert_close(v, alpha * eps - sigma[:, None, None] * alpha * x0)  # v = alpha eps - sigma_vp x_0


class ExactBackbone(torch.nn.Module):
    """The backbone F that makes ``Denoiser(F, prediction)`` equal a given exact denoiser."""

    def __init__(self, exact, prediction, sigma_data):
        super().__init__()
        self.exact, self.prediction, self.sigma_data = exact, prediction, sigma_data
        self.offset = 0.0  # perturbation away from the optimum

    def forward(self, x_in, c_noise, cond=None):
        sigma = (4 * c_noise).exp()
        c = scalings(self.prediction, sigma, self.sigma_data)
        b = lambda t: t.view(-1, *([1] * (x_in.dim() - 1)))  # noqa: E731
        x = x_in / b(c.c_in)
        return (self.exact(x, sigma) - b(c.c_skip) * x) / b(c.c_out) + self.offset


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoiser_output_and_loss_target_agree(prediction):
    sigma_data = 0.5 if prediction == "edm" else 1.0
    # one fixed waveform: the exact denoiser returns it, so the loss target is met exactly (loss 0)
    g = torch.Generator().manual_seed(6)
    wave = torch.randn(1, 1, 24, generator=g, dtype=torch.float64)
    point = WaveformMixtureDenoiser(wave, torch.ones(1, dtype=torch.float64))
    den = Denoiser(ExactBackbone(point, prediction, sigma_data), prediction, sigma_data)
    sigma = torch.tensor([0.01, 0.3, 2.0, 40.0], dtype=torch.float64)
    x0 = wave.expand(4, 1, 24)
    noise = torch.randn(4, 1, 24, generator=g, dtype=torch.float64)
    assert den.loss(x0, None, sigma, noise).abs().max() < 1e-16
    torch.testing.assert_close(den(x0 + sigma[:, None, None] * noise, sigma), x0)
    # Gaussian data: the exact denoiser minimises the expected loss; a perturbed backbone does worse
    mu, cov = _gaussian()
    den = Denoiser(ExactBackbone(GaussianDenoiser(mu, cov), prediction, sigma_data), prediction, sigma_data)
    x0 = mu + torch.randn(4000, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    sigma = torch.full((4000,), 0.7, dtype=torch.float64)
    noise = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    best = den.loss(x0, None, sigma, noise).mean()
    for offset in (-0.05, 0.05):
        den.inner_model.offset = offset
        assert den.loss(x0, None, sigma, noise).mean() > best


def _diffwave_denoiser(prediction="v"):
    torch.manual_seed(7)
    model = DiffWave(DiffWaveConfig.tiny(cond_channels=8, hop_length=16)).double()
    torch.nn.init.normal_(model.final_proj.weight, std=0.5)  # zero at init; make the output depend on its input
    torch.nn.init.normal_(model.null_cond, std=1.0)
    return Denoiser(model, prediction).eval()


def test_cfg_scale_one_is_the_conditional_model_and_zero_the_unconditional():
    den = _diffwave_denoiser()
    x = torch.randn(2, 1, 64, dtype=torch.float64)
    cond = torch.randn(2, 8, 4, dtype=torch.float64)
    sigma = torch.tensor([0.3, 3.0], dtype=torch.float64)
    with torch.no_grad():
        d_cond = den(x, sigma, cond)
        d_uncond = den(x, sigma, den.prepare(cond, drop=torch.ones(2, dtype=torch.bool)))
        torch.testing.assert_close(CFGDenoiser(den, 1.0)(x, sigma, cond), d_cond, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(CFGDenoiser(den, 0.0)(x, sigma, cond), d_uncond, rtol=1e-12, atol=1e-12)
        guided = CFGDenoiser(den, 3.0)
        prepared = guided.prepare(cond)  # reused across steps
        torch.testing.assert_close(guided(x, sigma, prepared), d_uncond + 3.0 * (d_cond - d_uncond), rtol=1e-10, atol=1e-10)
    assert (d_cond - d_uncond).abs().max() > 1e-3  # the null condition really differs


def test_cfg_runs_inside_a_sampler_with_prepared_conditioning():
    den = _diffwave_denoiser("eps")
    cond = torch.randn(1, 8, 4, dtype=torch.float64)
    guided = CFGDenoiser(den, 2.0)
    sigmas = get_sigmas("vp_linear", 6, beta_min=DIFFWAVE_BETAS[0], beta_max=DIFFWAVE_BETAS[1]).double()
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigmas[0]
    a = sample_ddim(guided, x, sigmas, guided.prepare(cond))
    b = sample_ddim(guided, x, sigmas, cond)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert a.shape == (1, 1, 64) and torch.isfinite(a).all()


# ------------------------------------------------------------------------------------------------
# Schedules


@pytest.mark.parametrize(
    "name,kw",
    [("karras", {}), ("exponential", {}), ("vp_cosine", {}), ("vp_linear", {}), ("vp_linear", dict(beta_min=DIFFWAVE_BETAS[0], beta_max=DIFFWAVE_BETAS[1]))],
)
@pytest.mark.parametrize("n", [1, 6, 50])
def test_schedules_decrease_to_zero(name, kw, n):
    s = get_sigmas(name, n, **kw)
    assert s.shape == (n + 1,) and s[-1] == 0 and (s[:-1] > 0).all()
    assert (s[1:] < s[:-1]).all()


def test_vp_time_maps_invert_and_match_the_discrete_diffwave_schedule():
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(vp_cosine_t(vp_cosine_sigma(t)), t)
    torch.testing.assert_close(vp_linear_t(vp_linear_sigma(t, *DIFFWAVE_BETAS), *DIFFWAVE_BETAS), t)
    # discrete DiffWave (beta 1e-4..0.05 over 50 steps) ~ its continuous-time limit at t = n / 50; the two
    # differ most at the first few (smallest) noise levels, where beta_n changes fastest relative to its size
    discrete = discrete_vp_sigmas(1e-4, 0.05, 50).double()
    continuous = vp_linear_sigma(torch.arange(1, 51, dtype=torch.float64) / 50, *DIFFWAVE_BETAS)
    rel = (discrete / continuous) - 1
    assert rel[4:].abs().max() < 0.1 and rel[-10:].abs().max() < 0.02


def test_log_normal_training_distribution():
    s = rand_log_normal((20000,), loc=-1.2, scale=1.2, generator=torch.Generator().manual_seed(0))
    assert abs(s.log().mean().item() + 1.2) < 0.03 and abs(s.log().std().item() - 1.2) < 0.03


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="prediction"):
        Denoiser(torch.nn.Identity(), "score")
    with pytest.raises(ValueError, match="sampler"):
        get_sampler("plms")
    with pytest.raises(ValueError, match="at least one"):
        get_sigmas_karras(0)
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(lambda x, s, c: x, torch.zeros(1, 3), get_sigmas_karras(2), eta=2.0)
    assert math.isfinite(sample_ddpm(lambda x, s, c: 0 * x, torch.zeros(1, 3), get_sigmas_karras(2)).sum().item())
