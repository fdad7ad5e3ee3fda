"""Continuous-time waveform diffusion: schedules, preconditioning, samplers, guidance.

Everything is expressed in the noise level sigma with ``x = x_0 + sigma * eps`` (VP schedules are
maps ``t -> sigma(t)``; see :mod:`waveforge.diffusion.schedules`).
"""

from waveforge.diffusion.denoiser import (
    PREDICTIONS,
    CFGDenoiser,
    Denoiser,
    GuidedCondition,
    Scalings,
    eps_to_v,
    eps_to_x0,
    scalings,
    v_to_eps,
    v_to_x0,
    x0_to_eps,
    x0_to_v,
)
from waveforge.diffusion.sampling import (
    SAMPLERS,
    get_sampler,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)
from waveforge.diffusion.schedules import (
    DDPM_BETAS,
    DIFFWAVE_BETAS,
    SCHEDULES,
    discrete_vp_sigmas,
    get_sigmas,
    get_sigmas_exponential,
    get_sigmas_karras,
    get_sigmas_vp_cosine,
    get_sigmas_vp_linear,
    rand_log_normal,
    rand_log_uniform,
    rand_vp_cosine,
    rand_vp_linear,
    vp_cosine_sigma,
    vp_cosine_t,
    vp_linear_sigma,
    vp_linear_t,
)

__all__ = [name for name in dir() if not name.startswith("_")]

from waveforge.diffusion.pipeline import DiffusionModel, SamplingConfig, generate  # noqa: E402

__all__ += ["DiffusionModel", "SamplingConfig", "generate"]
