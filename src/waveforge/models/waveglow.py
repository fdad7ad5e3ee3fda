"""WaveGlow: a flow-based vocoder (Prenger, Valle & Catanzaro, 2019), conditioned on frame-rate features.

The waveform ``x: (B, 1, T)`` is squeezed into groups of ``n_group`` consecutive samples,
``(B, n_group, T / n_group)``, and pushed through ``K = n_flows`` flow steps. Each step is

1. an invertible 1x1 convolution ``x <- W x`` mixing the channels (``log|det J| = T_g log|det W|``,
   with ``T_g = T / n_group``), either a plain ``W`` or its LU form ``W = P L (U + diag(s))``
   (Kingma & Dhariwal, 2018), whose log-determinant is ``T_g sum(log|s|)``;
2. an affine coupling layer: ``x_a, x_b = split(x)``, ``(log s, t) = WN(x_a, c)``,
   ``x_b <- s * x_b + t`` (``log|det J| = sum(log s)``), where ``WN`` is a non-causal WaveNet-like
   stack (gated, dilated, residual and skip connections) conditioned on ``c``, the features
   upsampled to the sample rate by :class:`waveforge.nn.ConditionUpsampler` and squeezed to
   the group rate exactly like the audio.

Every ``n_early_every`` steps ``n_early_size`` channels leave the flow early (they are already
Gaussian enough), so later steps are cheaper. Under the prior ``z ~ N(0, sigma^2 I)`` the
negative log-likelihood is ``-log p(x) = |z|^2 / (2 sigma^2) + N log(sigma sqrt(2 pi)) - log|det J|``
(:func:`waveforge.losses.flow.flow_nll`). Inference runs the steps backwards from
``z ~ N(0, sigma_infer^2 I)``; the 1x1 convolutions' inverses are computed once and cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from waveforge.losses.flow import FlowNLL, flow_nll
from waveforge.models.config import ModelConfig
from waveforge.nn.upsample import ConditionUpsampler


@dataclass
class WaveGlowConfig(ModelConfig):
    """Architecture of one WaveGlow; JSON-exportable with :func:`dataclasses.asdict`.

    ``cond_channels`` is the feature's channel count (80 mels or 264 piano-roll channels);
    ``upsampled_cond_channels`` is what the shared upsampler turns it into at the sample rate
    before the group squeeze (so each coupling layer sees ``upsampled_cond_channels * n_group``
    conditioning channels, whatever the feature).
    """

    cond_channels: int = 80
    hop_length: int = 256
    upsampled_cond_channels: int = 80
    n_flows: int = 12
    n_group: int = 8
    n_early_every: int = 4
    n_early_size: int = 2
    n_layers: int = 8
    n_channels: int = 512
    kernel_size: int = 3
    lu_decomposed: bool = False
    sigma: float = 1.0  # prior standard deviation used in training (the paper's sigma)
    infer_sigma: float = 0.6  # default sampling temperature (the paper samples with 0.6)

    PRESETS = {
        # the published model: 12 flows of 8 layers x 512 channels, groups of 8, 2 channels out every 4 flows
        "paper": {},
        # a CPU-sized model aimed at real time at 22.05 kHz on two cores (1/170 of the paper's FLOPs)
        "small": dict(upsampled_cond_channels=8, n_flows=8, n_group=16, n_early_every=4, n_early_size=4, n_layers=4, n_channels=96),
        # 4 flows of 2 layers x 8 channels, groups of 4, one early output
        "tiny": dict(cond_channels=8, hop_length=16, upsampled_cond_channels=4, n_flows=4, n_group=4, n_early_every=2,
                     n_early_size=2, n_layers=2, n_channels=8),
    }

    def remaining_channels(self) -> list[int]:
        """Channels entering each flow step (after the early outputs taken before it)."""
        out, n = [], self.n_group
        for k in range(self.n_flows):
            if k > 0 and k % self.n_early_every == 0:
                n -= self.n_early_size
            out.append(n)
        return out

    def validate(self) -> None:
        for name in ("cond_channels", "hop_length", "upsampled_cond_channels", "n_flows", "n_group",
                     "n_early_every", "n_layers", "n_channels", "kernel_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WaveGlowConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_early_size < 0:
            raise ValueError(f"WaveGlowConfig.n_early_size must be >= 0, got {self.n_early_size}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"WaveGlowConfig.kernel_size must be odd (non-causal 'same' padding), got {self.kernel_size}")
        if self.hop_length % self.n_group != 0:
            raise ValueError(f"hop_length ({self.hop_length}) must be a multiple of n_group ({self.n_group}) "
                             "so whole frames squeeze into whole groups")
        for k, n in enumerate(self.remaining_channels()):
            if n < 2 or n % 2:
                raise ValueError(f"flow {k} would see {n} channels after early outputs "
                                 f"(n_group={self.n_group}, n_early_every={self.n_early_every}, "
                                 f"n_early_size={self.n_early_size}); it needs an even number >= 2 to split")
        if self.sigma <= 0 or self.infer_sigma < 0:
            raise ValueError(f"WaveGlowConfig.sigma must be positive and infer_sigma >= 0, got {self.sigma}, {self.infer_sigma}")


@dataclass
class FlowOutput:
    """Result of the training pass.

    ``z``: ``(B, n_group, T / n_group)``, the latent in squeezed layout (early outputs first);
    ``log_det``: ``(B,)``, ``log|det dz/dx|`` summed over all flow steps, per batch item.
    """

    z: torch.Tensor
    log_det: torch.Tensor


def squeeze(x: torch.Tensor, n_group: int) -> torch.Tensor:
    """``(B, C, T)`` -> ``(B, C * n_group, T / n_group)``; channel ``c * n_group + g`` holds sample ``g`` of each group."""
    b, c, t = x.shape
    if t % n_group:
        raise ValueError(f"length {t} is not a multiple of n_group {n_group}")
    return x.view(b, c, t // n_group, n_group).permute(0, 1, 3, 2).reshape(b, c * n_group, t // n_group)


def unsqueeze(x: torch.Tensor, n_group: int) -> torch.Tensor:
    """Inverse of :func:`squeeze`: ``(B, C * n_group, T_g)`` -> ``(B, C, T_g * n_group)``."""
    b, cg, tg = x.shape
    return x.view(b, cg // n_group, n_group, tg).permute(0, 1, 3, 2).reshape(b, cg // n_group, tg * n_group)


class Invertible1x1Conv(nn.Module):
    """``x <- W x`` over channels, ``(B, C, T_g) -> (B, C, T_g)``, ``log|det| = T_g log|det W|``.

    ``W`` starts as a random rotation (``det W = +1``). With ``lu_decomposed``, ``W = P L (U + diag(sign(s) e^{log|s|}))``
    with ``P`` a fixed permutation, ``L`` unit lower-triangular and ``U`` strictly upper-triangular, so
    ``log|det W| = sum(log|s|)`` costs ``O(C)`` instead of a determinant.

    The inverse ``W^{-1}`` used by :meth:`inverse` is computed in float64 and cached; the cache is
    keyed on the parameters' version counters (so any in-place update, e.g. an optimiser step or
    ``load_state_dict``, invalidates it) and cleared on ``train()``.
    """

    def __init__(self, channels: int, lu_decomposed: bool = False):
        super().__init__()
        self.channels = channels
        self.lu_decomposed = lu_decomposed
        w = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        if torch.det(w) < 0:
            w[:, 0] = -w[:, 0]
        if lu_decomposed:
            p, lower, upper = torch.linalg.lu(w)
            s = torch.diagonal(upper)
            self.register_buffer("permutation", p.float())
            self.register_buffer("sign_s", torch.sign(s).float())
            self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
            self.lower = nn.Parameter(lower.float())
            self.upper = nn.Parameter(torch.triu(upper, 1).float())
            self.log_abs_s = nn.Parameter(torch.log(torch.abs(s)).float())
        else:
            self.weight = nn.Parameter(w.float())
        self._inverse_cache: tuple[tuple, torch.Tensor] | None = None

    def matrix(self) -> torch.Tensor:
        """``W``, ``(C, C)``."""
        if not self.lu_decomposed:
            return self.weight
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_abs_s))
        return self.permutation @ lower @ upper

    def log_abs_det(self) -> torch.Tensor:
        """``log|det W|``, a scalar."""
        if self.lu_decomposed:
            return self.log_abs_s.sum()
        # slogdet in float64: a float32 LU of a near-singular W loses the small pivots first
        return torch.linalg.slogdet(self.weight.double())[1].to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, C, T_g)`` -> ``(W x, log|det| (scalar, per batch item))``."""
        w = self.matrix()
        z = F.conv1d(x, w.unsqueeze(-1))
        return z, x.shape[-1] * self.log_abs_det()

    def _version_key(self) -> tuple:
        params = (self.lower, self.upper, self.log_abs_s) if self.lu_decomposed else (self.weight,)
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)

    def inverse_matrix(self) -> torch.Tensor:
        """``W^{-1}``, ``(C, C)``, from the cache when the weights have not changed since it was computed."""
        key = self._version_key()
        if self._inverse_cache is not None and self._inverse_cache[0] == key:
            return self._inverse_cache[1]
        with torch.no_grad():
            w = self.matrix().detach()
            w_inv = torch.linalg.inv(w.double()).to(w.dtype)
        if not torch.is_inference_mode_enabled():
            self._inverse_cache = (key, w_inv)
        else:  # an inference tensor could not be used later outside inference mode; clone out of it
            with torch.inference_mode(False):
                self._inverse_cache = (key, w_inv.clone())
        return self._inverse_cache[1]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``z: (B, C, T_g)`` -> ``W^{-1} z``."""
        return F.conv1d(z, self.inverse_matrix().unsqueeze(-1))

    def clear_cache(self) -> None:
        self._inverse_cache = None

    def train(self, mode: bool = True) -> "Invertible1x1Conv":
        self._inverse_cache = None
        return super().train(mode)


class CouplingWN(nn.Module):
    """The coupling network: a non-causal WaveNet-like stack.

    ``x_a: (B, n_in, T_g)``, ``cond: (B, cond_in, T_g)`` -> ``(log_s, t)``, each ``(B, n_in, T_g)``.
    Layer ``i`` applies a dilated convolution (dilation ``2^i``, 'same' padding) plus the conditioning
    projection, a gated unit ``tanh(a) * sigmoid(b)``, then a 1x1 convolution split into a residual
    and a skip part (the last layer has only the skip part). The output convolution is zero-initialised
    so each coupling starts as the identity (Kingma & Dhariwal, 2018).
    """

    def __init__(self, n_in: int, cond_in: int, n_layers: int, n_channels: int, kernel_size: int):
        super().__init__()
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.start = weight_norm(nn.Conv1d(n_in, n_channels, 1))
        # one projection for all layers' conditioning: one large GEMM instead of n_layers small ones
        self.cond_layer = weight_norm(nn.Conv1d(cond_in, 2 * n_channels * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = 2**i
            self.in_layers.append(weight_norm(nn.Conv1d(
                n_channels, 2 * n_channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2)))
            out = 2 * n_channels if i < n_layers - 1 else n_channels
            self.res_skip_layers.append(weight_norm(nn.Conv1d(n_channels, out, 1)))
        self.end = nn.Conv1d(n_channels, 2 * n_in, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def forward(self, x_a: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.start(x_a)  # (B, n_channels, T_g)
        cond_all = self.cond_layer(cond)  # (B, 2 * n_channels * n_layers, T_g)
        skip = None
        c2 = 2 * self.n_channels
        fast = torch.is_inference_mode_enabled() or not torch.is_grad_enabled()
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            pre = in_layer(h)
            pre = pre.add_(cond_all[:, i * c2:(i + 1) * c2]) if fast else pre + cond_all[:, i * c2:(i + 1) * c2]
            acts = _gated(pre, self.n_channels, inplace=fast)  # (B, n_channels, T_g)
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                h = h.add_(rs[:, :self.n_channels]) if fast else h + rs[:, :self.n_channels]
                s = rs[:, self.n_channels:]
            else:
                s = rs
            skip = s if skip is None else (skip.add_(s) if fast else skip + s)
        log_s, t = self.end(skip).chunk(2, dim=1)
        return log_s, t


def _gated(pre: torch.Tensor, n_channels: int, inplace: bool) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` for ``pre = [a; b]``; in place (no new buffers) when no gradient is needed."""
    a, b = pre[:, :n_channels], pre[:, n_channels:]
    if inplace:
        return torch.tanh_(a).mul_(torch.sigmoid_(b))
    return torch.tanh(a) * torch.sigmoid(b)


class WaveGlow(nn.Module):
    """WaveGlow vocoder / renderer.

    ``forward(audio (B, 1, T), cond (B, C, F)) -> FlowOutput(z (B, n_group, T / n_group), log_det (B,))``
    with ``T = F * hop_length``; ``infer(cond (B, C, F), sigma) -> (B, 1, F * hop_length)``.
    """

    def __init__(self, config: WaveGlowConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.upsampler = ConditionUpsampler(config.cond_channels, config.hop_length, out_channels=config.upsampled_cond_channels)
        cond_in = config.upsampled_cond_channels * config.n_group
        self.convinv = nn.ModuleList()
        self.couplings = nn.ModuleList()
        for n_remaining in config.remaining_channels():
            self.convinv.append(Invertible1x1Conv(n_remaining, config.lu_decomposed))
            self.couplings.append(CouplingWN(n_remaining // 2, cond_in, config.n_layers, config.n_channels, config.kernel_size))

    # ------------------------------------------------------------------------------------------
    def _squeezed_cond(self, cond: torch.Tensor, n_samples: int) -> torch.Tensor:
        """``(B, C, F)`` -> ``(B, upsampled_cond_channels * n_group, T / n_group)``, computed once per call."""
        c = self.config
        if cond.dim() != 3 or cond.shape[1] != c.cond_channels:
            raise ValueError(f"cond must be (B, {c.cond_channels}, F), got {tuple(cond.shape)}")
        if cond.shape[-1] * c.hop_length != n_samples:
            raise ValueError(f"cond has {cond.shape[-1]} frames x hop {c.hop_length} != {n_samples} samples")
        return squeeze(self.upsampler(cond), c.n_group)

    def _is_early_exit(self, k: int) -> bool:
        return k > 0 and k % self.config.n_early_every == 0 and self.config.n_early_size > 0

    def forward(self, audio: torch.Tensor, cond: torch.Tensor) -> FlowOutput:
        """Training pass ``x -> z``: ``audio (B, 1, T)``, ``cond (B, C, F)`` with ``T = F * hop_length``."""
        c = self.config
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be (B, 1, T), got {tuple(audio.shape)}")
        cond_g = self._squeezed_cond(cond, audio.shape[-1])  # (B, cond_in, T_g)
        x = squeeze(audio, c.n_group)  # (B, n_group, T_g)
        log_det = audio.new_zeros(audio.shape[0])
        early: list[torch.Tensor] = []
        for k, (conv, coupling) in enumerate(zip(self.convinv, self.couplings)):
            if self._is_early_exit(k):
                early.append(x[:, :c.n_early_size])
                x = x[:, c.n_early_size:]
            x, ld = conv(x)  # step 1: x <- W x
            log_det = log_det + ld
            x_a, x_b = x.chunk(2, dim=1)  # step 2: affine coupling
            log_s, t = coupling(x_a, cond_g)
            x_b = torch.exp(log_s) * x_b + t
            log_det = log_det + log_s.sum(dim=(1, 2))
            x = torch.cat([x_a, x_b], dim=1)
        z = torch.cat(early + [x], dim=1)  # (B, n_group, T_g)
        return FlowOutput(z=z, log_det=log_det)

    def nll(self, audio: torch.Tensor, cond: torch.Tensor) -> FlowNLL:
        """The training objective: the exact negative log-likelihood per audio sample, with its terms
        (:func:`waveforge.losses.flow.flow_nll` under this model's prior ``N(0, sigma^2)``)."""
        out = self(audio, cond)
        return flow_nll(out.z, out.log_det, sigma=self.config.sigma)

    def log_prob(self, audio: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``log p(audio | cond)`` in nats, a density, summed per item: ``audio (B, 1, T)`` -> ``(B,)`` float64."""
        return self.nll(audio, cond).log_prob

    def reverse(self, z: torch.Tensor, cond: torch.Tensor, backend: str = "reference") -> torch.Tensor:
        """Exact inverse of :meth:`forward`: ``z (B, n_group, T_g)``, ``cond (B, C, F)`` -> ``(B, 1, T_g * n_group)``.

        ``backend``: ``"reference"`` (through the modules; differentiable) or ``"fast"`` (the same
        function as time-major GEMMs, :func:`waveforge.kernels.waveglow.reverse`; no autograd).
        """
        if backend == "fast":
            from waveforge.kernels import waveglow as kernel

            return kernel.reverse(self, z, cond)
        if backend != "reference":
            raise ValueError(f"backend must be 'reference' or 'fast', got {backend!r}")
        c = self.config
        cond_g = self._squeezed_cond(cond, z.shape[-1] * c.n_group)
        # peel the early outputs off the front of z in the order forward() put them there
        n_early = sum(self._is_early_exit(k) for k in range(c.n_flows))
        early = list(z[:, :n_early * c.n_early_size].split(c.n_early_size, dim=1)) if n_early else []
        x = z[:, n_early * c.n_early_size:]
        for k in reversed(range(c.n_flows)):
            x_a, x_b = x.chunk(2, dim=1)
            log_s, t = self.couplings[k](x_a, cond_g)
            x_b = (x_b - t) * torch.exp(-log_s)
            x = self.convinv[k].inverse(torch.cat([x_a, x_b], dim=1))
            if self._is_early_exit(k):
                x = torch.cat([early.pop(), x], dim=1)
        return unsqueeze(x, c.n_group)

    @property
    def receptive_field_frames(self) -> int:
        """Frames of context either side beyond which an output sample cannot depend on ``z`` or ``cond``.

        Each coupling reaches ``(kernel_size - 1) / 2 * (2^n_layers - 1)`` group steps either side and the
        flows compose; the 1x1 convolutions and early outputs are pointwise in time; the upsampler adds a frame.
        """
        c = self.config
        per_coupling = (c.kernel_size - 1) // 2 * (2**c.n_layers - 1)
        samples = c.n_flows * per_coupling * c.n_group
        return math.ceil(samples / c.hop_length) + 2

    def infer(self, cond: torch.Tensor, sigma: float | None = None, generator: torch.Generator | None = None,
              chunk_frames: int | None = None, backend: str = "fast") -> torch.Tensor:
        """Sample audio: ``cond (B, C, F)`` -> ``(B, 1, F * hop_length)``, from ``z ~ N(0, sigma^2 I)``
        (``sigma`` defaults to ``config.infer_sigma``).

        ``chunk_frames`` bounds memory on long inputs: ``z`` is drawn for the whole input first, then
        inverted in chunks with :attr:`receptive_field_frames` of context either side, so the result
        equals the whole-input pass up to float rounding. ``backend`` is :meth:`reverse`'s (sampling
        needs no gradient, so the default is the fast one).
        """
        c = self.config
        sigma = c.infer_sigma if sigma is None else sigma
        n_frames = cond.shape[-1]
        n_samples = n_frames * c.hop_length
        z = torch.randn(cond.shape[0], c.n_group, n_samples // c.n_group, generator=generator,
                        device=cond.device, dtype=cond.dtype) * sigma
        if chunk_frames is None or n_frames <= chunk_frames:
            return self.reverse(z, cond, backend)
        context = self.receptive_field_frames
        steps_per_frame = c.hop_length // c.n_group
        pieces = []
        for start in range(0, n_frames, chunk_frames):
            stop = min(start + chunk_frames, n_frames)
            lo, hi = max(0, start - context), min(n_frames, stop + context)
            audio = self.reverse(z[..., lo * steps_per_frame:hi * steps_per_frame], cond[..., lo:hi], backend)
            pieces.append(audio[..., (start - lo) * c.hop_length:(stop - lo) * c.hop_length])
        return torch.cat(pieces, dim=-1)

    def remove_weight_norm(self) -> "WaveGlow":
        """Fold every weight-normalised convolution back into one plain weight (for inference)."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self

    def flops_per_second(self, sample_rate: int = 22050) -> float:
        """Analytic multiply-add FLOPs (2 per MAC) of one inference pass per second of audio."""
        return waveglow_flops_per_sample(self.config) * sample_rate


def waveglow_flops_per_sample(config: WaveGlowConfig) -> float:
    """FLOPs per output sample of :meth:`WaveGlow.reverse` (+ conditioning upsampling): convolutions only."""
    c = config
    per_group_step = 0.0
    cond_in = c.upsampled_cond_channels * c.n_group
    for n in c.remaining_channels():
        half = n // 2
        per_group_step += 2 * n * n  # 1x1 invertible conv
        per_group_step += 2 * half * c.n_channels  # start
        per_group_step += 2 * cond_in * 2 * c.n_channels * c.n_layers  # conditioning projection
        for i in range(c.n_layers):
            per_group_step += 2 * c.kernel_size * c.n_channels * 2 * c.n_channels  # dilated conv
            per_group_step += 2 * c.n_channels * (2 * c.n_channels if i < c.n_layers - 1 else c.n_channels)
        per_group_step += 2 * c.n_channels * 2 * half  # end
    up = _upsampler_flops_per_sample(c)
    return per_group_step / c.n_group + up


def _upsampler_flops_per_sample(c: WaveGlowConfig) -> float:
    from waveforge.nn.upsample import default_scales

    hidden = out = c.upsampled_cond_channels
    scales = default_scales(c.hop_length)
    per_frame = 2 * 3 * c.cond_channels * hidden  # pre conv at frame rate
    rate = 1  # outputs per frame after each stage
    for i, s in enumerate(scales):
        ch_out = out if i == len(scales) - 1 else hidden
        k = 2 * s if s % 2 == 0 else s
        rate *= s
        per_frame += 2 * hidden * ch_out * (k / s) * rate  # each output sample sees k/s input taps
    return per_frame / c.hop_length
