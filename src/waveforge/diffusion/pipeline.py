"""From a trained denoiser to audio: the sampling settings a model ships with, and one ``generate`` call."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from waveforge.diffusion.denoiser import CFGDenoiser, Denoiser
from waveforge.diffusion.sampling import get_sampler
from waveforge.diffusion.schedules import SCHEDULES, get_sigmas


@dataclass
class SamplingConfig:
    """How to sample by default; every field can be overridden per call.

    ``schedule_kwargs`` go to ``get_sigmas_<schedule>`` (e.g. ``sigma_min``/``sigma_max`` for karras);
    ``eta`` is DDIM's stochasticity (other samplers ignore it); ``guidance`` is the CFG scale.
    """

    sampler: str = "dpmpp_2m"
    steps: int = 12
    schedule: str = "vp_cosine"
    schedule_kwargs: dict = field(default_factory=dict)
    guidance: float = 1.0
    eta: float = 0.0

    def __post_init__(self):
        get_sampler(self.sampler)  # raises on an unknown name
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r} (known: {', '.join(SCHEDULES)})")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def generate(
    denoiser: Denoiser,
    cond: Tensor | None,
    n_samples: int,
    config: SamplingConfig,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """``cond: (B, C, F)`` (batch taken from it) or None (``batch_size`` rows) -> ``(B, 1, n_samples)`` in [-1, 1].

    The conditioning is prepared once (upsampled and projected for every layer) and reused by every
    step; with ``config.guidance != 1`` the conditional and null-conditioned passes run as one batch.
    """
    denoiser = denoiser.for_sampling()  # the backbone's sampling pass (DiffWave: in place, no autograd)
    param = next(denoiser.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    sigmas = get_sigmas(config.schedule, config.steps, **config.schedule_kwargs).to(device=device, dtype=dtype)
    if cond is not None:
        cond = cond.to(device=device, dtype=dtype)
        batch_size = cond.shape[0]
    model: nn.Module = denoiser
    if cond is not None and config.guidance != 1.0:
        model = CFGDenoiser(denoiser, config.guidance)
        prepared = model.prepare(cond)
    else:
        prepared = denoiser.prepare(cond)
    x = torch.randn((batch_size, 1, n_samples), generator=generator, device=device, dtype=dtype) * sigmas[0]
    kwargs = {"eta": config.eta} if config.sampler == "ddim" else {}
    x = get_sampler(config.sampler)(model, x, sigmas, prepared, generator=generator, progress=progress, **kwargs)
    return x.clamp(-1, 1)


class DiffusionModel(nn.Module):
    """An exported diffusion model: the preconditioned denoiser plus its default sampling settings."""

    def __init__(self, denoiser: Denoiser, sampling: SamplingConfig):
        super().__init__()
        self.denoiser = denoiser
        self.sampling = sampling

    def generate(self, cond: Tensor | None, n_samples: int, batch_size: int = 1, generator=None, progress: bool = False, **overrides) -> Tensor:
        """See :func:`generate`; ``overrides`` replace fields of :class:`SamplingConfig` (``steps=6``...)."""
        config = SamplingConfig(**{**self.sampling.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
        return generate(self.denoiser, cond, n_samples, config, batch_size, generator, progress)
