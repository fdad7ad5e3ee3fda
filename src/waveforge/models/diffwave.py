"""DiffWave (Kong et al. 2021): a non-causal dilated residual denoiser for waveforms.

The backbone ``F(x, c_noise, cond) -> (B, 1, T)`` is what :class:`waveforge.diffusion.Denoiser`
preconditions; it predicts eps, x0, v or EDM's F depending on how it is trained.

Per residual layer l (dilation d_l = 2^(l mod cycle), kernel K):

    a_l = sum_k W_l[k] h[t + (k - (K-1)/2) d_l]  +  P_l e(c_noise)  +  C_l u(cond)[t]   (B, T, 2R)
    z_l = tanh(a_l[:R]) * (1 + tanh(a_l[R:])) / 2                                      (B, T, R)
    [r_l, s_l] = O_l z_l;   h <- (h + r_l) / sqrt(2);   skip += s_l

where e is the noise-level embedding (sinusoids of c_noise + a 2-layer MLP), entering as a per-layer
bias of the gate pre-activation, and u the shared :class:`~waveforge.nn.ConditionUpsampler`.
The gate ``(1 + tanh(g)) / 2`` is DiffWave's ``sigmoid(2 g)``: the same family, written so that one
tanh covers both halves of ``a_l`` at inference.
Activations are kept time-major ``(B, T, channels)`` so that each dilated convolution is K
matrix products on shifted views of one padded buffer (no im2col copy), and ``C_l u`` for all
layers can be computed once per sampling call (:meth:`DiffWave.prepare`) instead of once per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveforge.models.config import ModelConfig
from waveforge.nn import ConditionUpsampler


@dataclass
class DiffWaveConfig(ModelConfig):
    """DiffWave's hyper-parameters. ``cond_channels = 0`` makes the model unconditional."""

    residual_channels: int = 64
    n_layers: int = 30
    dilation_cycle: int = 10
    kernel_size: int = 3
    cond_channels: int = 80
    hop_length: int = 256
    upsample_channels: int | None = None  # channels of the upsampled condition; default cond_channels
    embedding_dim: int = 128  # sinusoidal features of c_noise
    embedding_hidden: int = 512
    embedding_max_frequency: float = 1000.0

    PRESETS = {
        # the paper's vocoder ("base"): 64 residual channels, 30 layers, dilation cycle 10
        "paper": {},
        # the paper's unconditional model: 128 residual channels, 36 layers, dilation cycle 12
        "large": dict(residual_channels=128, n_layers=36, dilation_cycle=12, cond_channels=0),
        # the cpu recipe's size: 32 residual channels, 12 layers, dilation cycle 6
        "small": dict(residual_channels=32, n_layers=12, dilation_cycle=6),
        # for tests: 8 channels, 4 layers
        "tiny": dict(residual_channels=8, n_layers=4, dilation_cycle=2, cond_channels=8, hop_length=16, embedding_dim=16, embedding_hidden=32),
    }


@dataclass
class DiffWaveCondition:
    """Conditioning prepared once per sampling call (:meth:`DiffWave.prepare`).

    Exactly one of ``layers`` (``(L, B, T, 2R)``: ``C_l u`` for every layer, biases included) and
    ``upsampled`` (``(B, T, U)``: the upsampler output, projected per layer at every call) is set.
    """

    layers: Tensor | None = None
    upsampled: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.layers.shape[1] if self.layers is not None else self.upsampled.shape[0]


class DiffWave(nn.Module):
    """``forward(x: (B, 1, T), c_noise: (B,), cond: (B, C, F) | DiffWaveCondition | None) -> (B, 1, T)``, T = F * hop.

    Args:
        config: :class:`DiffWaveConfig`.
    """

    def __init__(self, config: DiffWaveConfig):
        super().__init__()
        c = config
        if c.residual_channels < 1 or c.n_layers < 1 or c.dilation_cycle < 1:
            raise ValueError(f"residual_channels, n_layers and dilation_cycle must be positive: {c}")
        if c.kernel_size < 1 or c.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred, non-causal convolution), got {c.kernel_size}")
        if c.cond_channels < 0:
            raise ValueError(f"cond_channels must be >= 0 (0 = unconditional), got {c.cond_channels}")
        if c.cond_channels > 0 and c.hop_length < 1:
            raise ValueError(f"hop_length must be positive for a conditional model, got {c.hop_length}")
        if c.embedding_dim % 2:
            raise ValueError(f"embedding_dim must be even (sin and cos halves), got {c.embedding_dim}")
        self.config = c
        R, L, K = c.residual_channels, c.n_layers, c.kernel_size
        self.dilations = [2 ** (i % c.dilation_cycle) for i in range(L)]

        self.input_proj = nn.Linear(1, R)
        half = c.embedding_dim // 2
        self.register_buffer(
            "embedding_frequencies", torch.exp(torch.linspace(0, math.log(c.embedding_max_frequency), half)), persistent=False
        )
        self.embedding_mlp = nn.Sequential(
            nn.Linear(c.embedding_dim, c.embedding_hidden), nn.SiLU(), nn.Linear(c.embedding_hidden, c.embedding_hidden), nn.SiLU()
        )
        self.noise_proj = nn.Linear(c.embedding_hidden, L * 2 * R)  # P_l for all layers, stacked

        # W_l[k]: (R, 2R) per tap, as matrices acting on time-major activations
        self.dilated_weight = nn.Parameter(torch.randn(L, K, R, 2 * R) * math.sqrt(1.0 / (K * R)))
        self.dilated_bias = nn.Parameter(torch.zeros(L, 2 * R))
        self.output_weight = nn.Parameter(torch.randn(L, R, 2 * R) * math.sqrt(1.0 / R))  # O_l = [O_l^res, O_l^skip]
        # only the skip half has a bias: a constant shift of the residual stream h would only move the
        # next layers' biases, and leaving it out lets inference write r_l straight into h (see _infer_one)
        self.skip_bias = nn.Parameter(torch.zeros(L, R))

        if c.cond_channels > 0:
            U = c.upsample_channels or c.cond_channels
            self.upsampler = ConditionUpsampler(c.cond_channels, c.hop_length, out_channels=U)
            self.cond_weight = nn.Parameter(torch.randn(U, L * 2 * R) * math.sqrt(1.0 / U))  # C_l for all layers
            self.cond_bias = nn.Parameter(torch.zeros(L * 2 * R))
            # classifier-free guidance: the learned "no condition", one frame broadcast over all frames
            self.null_cond = nn.Parameter(torch.zeros(c.cond_channels, 1))
        else:
            self.upsampler = None

        self.skip_proj = nn.Linear(R, R)
        #: inference only: process each layer in time blocks of this many samples (None: whole signal).
        #: Blocks keep a layer's activations in cache; with several threads, larger blocks split better.
        self.inference_block_rows: int | None = None
        self.final_proj = nn.Linear(R, 1)
        nn.init.zeros_(self.final_proj.weight)  # DiffWave: the network starts by predicting 0
        nn.init.zeros_(self.final_proj.bias)

    # --------------------------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return self.config.cond_channels > 0

    def noise_embedding(self, c_noise: Tensor) -> Tensor:
        """``c_noise: (B,)`` -> ``(B, embedding_hidden)``."""
        phase = c_noise.float()[:, None] * self.embedding_frequencies  # (B, E/2)
        return self.embedding_mlp(torch.cat([phase.sin(), phase.cos()], dim=1))

    def prepare(
        self, cond: Tensor | None, drop: Tensor | None = None, precompute_layers: bool | None = None, sampling: bool = False
    ) -> DiffWaveCondition | None:
        """``cond: (B, C, F)`` -> conditioning reusable across sampling steps.

        ``drop: (B,) bool`` replaces the condition of those rows by the learned null condition
        (classifier-free guidance). ``precompute_layers`` stores ``C_l u`` for all layers
        (``L * 2R`` floats per sample: fastest, but 15 kB per sample for the base model); by default
        it is used when that takes at most 1 GiB. ``sampling`` computes it without autograd, each
        layer's product written in place (for :meth:`sampling_pass`; the values are the same).
        """
        if not self.conditional:
            if cond is not None:
                raise ValueError("this DiffWave is unconditional (cond_channels = 0) but got a condition")
            return None
        if isinstance(cond, DiffWaveCondition):
            return cond
        if cond is None:
            raise ValueError(f"this DiffWave is conditioned on {self.config.cond_channels} channels; cond is required")
        if cond.dim() != 3 or cond.shape[1] != self.config.cond_channels:
            raise ValueError(f"cond must be (B, {self.config.cond_channels}, F), got {tuple(cond.shape)}")
        if drop is not None:
            cond = torch.where(drop.view(-1, 1, 1), self.null_cond.to(cond.dtype).expand_as(cond), cond)
        up = self.upsampler(cond).transpose(1, 2)  # (B, T, U)
        B, T, _ = up.shape
        L, R2 = self.config.n_layers, 2 * self.config.residual_channels
        if precompute_layers is None:
            precompute_layers = B * T * L * R2 * up.element_size() <= 1 << 30
        if not precompute_layers:
            return DiffWaveCondition(upsampled=up)
        if not sampling:
            layers = torch.addmm(self.cond_bias, up.reshape(B * T, -1), self.cond_weight)  # (B*T, L*2R)
            return DiffWaveCondition(layers=layers.view(B, T, L, R2).permute(2, 0, 1, 3).contiguous())  # (L, B, T, 2R)
        # sampling: each layer's product written straight into its slice, with no (B*T, L*2R)
        # intermediate and no permuting copy (a permuted copy of one large product cost as much as
        # a denoiser step). out= has no autograd, hence the training path above.
        with torch.no_grad():
            layers = up.new_empty(L, B * T, R2)
            flat = up.reshape(B * T, -1)
            for l in range(L):
                torch.addmm(self.cond_bias[l * R2 : (l + 1) * R2], flat, self.cond_weight[:, l * R2 : (l + 1) * R2], out=layers[l])
        return DiffWaveCondition(layers=layers.view(L, B, T, R2))  # (L, B, T, 2R)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor | DiffWaveCondition | None = None) -> Tensor:
        """The training pass: ``x: (B, 1, T)``, ``c_noise: (B,)``, ``cond: (B, C, T // hop)`` or prepared
        -> ``(B, 1, T)``. :meth:`sampling_pass` is the same function without autograd, faster."""
        prepared, noise_bias = self._inputs(x, c_noise, cond)
        B, _, T = x.shape
        R, L, K = self.config.residual_channels, self.config.n_layers, self.config.kernel_size
        h = F.relu(self.input_proj(x.transpose(1, 2)))  # (B, T, R)
        skip = 0
        for l, d in enumerate(self.dilations):
            pad = d * (K - 1) // 2
            hp = F.pad(h, (0, 0, pad, pad))  # (B, T + 2 pad, R)
            a = noise_bias[:, l, None, :]  # (B, 1, 2R)
            if prepared is not None:
                a = a + self._layer_cond(prepared, l)  # (B, T, 2R)
            for k in range(K):
                a = a + hp[:, k * d : k * d + T] @ self.dilated_weight[l, k]  # k-th tap of the dilated conv
            z = torch.tanh(a[..., :R]) * (1 + torch.tanh(a[..., R:])) * 0.5  # (B, T, R), gated unit
            out = z @ self.output_weight[l]  # (B, T, 2R)
            h = (h + out[..., :R]) * math.sqrt(0.5)
            skip = skip + out[..., R:] + self.skip_bias[l]
        y = F.relu(self.skip_proj(skip * math.sqrt(1.0 / L)))  # (B, T, R)
        return self.final_proj(y).transpose(1, 2)  # (B, 1, T)

    @torch.no_grad()
    def sampling_pass(self, x: Tensor, c_noise: Tensor, cond: Tensor | DiffWaveCondition | None = None) -> Tensor:
        """:meth:`forward` for sampling (no autograd): per example, a pass that updates buffers in place
        (:meth:`_infer_one`); tested equal to :meth:`forward`. Prepare ``cond`` with ``sampling=True``."""
        prepared, noise_bias = self._inputs(x, c_noise, cond, sampling=True)
        return torch.stack([self._infer_one(x[i, 0], noise_bias[i], prepared, i) for i in range(x.shape[0])])

    def for_sampling(self) -> "DiffWaveSampling":
        """This model as a sampling backbone: ``forward`` is :meth:`sampling_pass`, ``prepare`` prepares for it."""
        return DiffWaveSampling(self)

    def _inputs(self, x: Tensor, c_noise: Tensor, cond, sampling: bool = False) -> tuple[DiffWaveCondition | None, Tensor]:
        """Checked, prepared conditioning and the per-layer noise bias ``(B, L, 2R)``."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"x must be (B, 1, T), got {tuple(x.shape)}")
        B, _, T = x.shape
        cfg = self.config
        prepared = self.prepare(cond, sampling=sampling)
        if prepared is not None:
            if prepared.batch_size != B:
                raise ValueError(f"cond has batch {prepared.batch_size}, x has {B}")
            t_cond = prepared.layers.shape[2] if prepared.layers is not None else prepared.upsampled.shape[1]
            if t_cond != T:
                raise ValueError(f"x has {T} samples but cond covers {t_cond} (= frames * hop {cfg.hop_length})")
        noise_bias = self.noise_proj(self.noise_embedding(c_noise)).view(B, cfg.n_layers, 2 * cfg.residual_channels) + self.dilated_bias
        return prepared, noise_bias  # noise_bias: (B, L, 2R)

    def _layer_cond(self, prepared: DiffWaveCondition, l: int) -> Tensor:
        """``C_l u + bias`` for layer l: ``(B, T, 2R)``."""
        if prepared.layers is not None:
            return prepared.layers[l]
        R2 = 2 * self.config.residual_channels
        return torch.addmm(self.cond_bias[l * R2 : (l + 1) * R2], prepared.upsampled.flatten(0, 1), self.cond_weight[:, l * R2 : (l + 1) * R2]).view(
            *prepared.upsampled.shape[:2], R2
        )

    @torch.no_grad()
    def _infer_one(self, x: Tensor, noise_bias: Tensor, prepared: DiffWaveCondition | None, index: int) -> Tensor:
        """The same function as the training pass for one example, ``x: (T,)`` -> ``(1, T)``, rearranged
        so that almost all work is matrix products written in place:

        * h lives inside one zero-padded buffer ``(T + 2 max_pad, R + 1)`` whose last column is 1, so
          every tap of every dilated conv is a strided view (no padding copies) and the per-step bias
          ``P_l e + b_l`` is one more row of the first tap's weight (exact at the edges too);
        * the residual stream is kept unnormalised: with ``c_l = 2^(-l/2)``, ``h_l = c_l h~_l`` and
          ``h~_(l+1) = h~_l + r_l / c_l``, so the ``/ sqrt(2)`` pass disappears into the weights and
          ``r_l`` is accumulated straight into ``h~`` (GEMM with beta = 1), as is the skip sum;
        * the gate ``tanh(a) (1 + tanh(g)) / 2`` is one tanh over all 2R channels and one fused
          multiply-add; the 1/2 is folded into the output weights;
        * optionally (``inference_block_rows``) each layer runs in time blocks so that its
          activations stay in cache, with two alternating buffers for h~.
        """
        cfg = self.config
        R, L, K = cfg.residual_channels, cfg.n_layers, cfg.kernel_size
        T = x.shape[0]
        rows = min(T, self.inference_block_rows or T)
        max_pad = max(self.dilations) * (K - 1) // 2
        # one buffer when each layer is one block (update h~ in place after the layer's taps are read);
        # two, alternating, when layers are cut into time blocks (later blocks still read the old h~)
        bufs = [x.new_zeros(T + 2 * max_pad, R + 1) for _ in range(1 if rows == T else 2)]
        for buf in bufs:
            buf[:, R] = 1.0
        bufs[0][max_pad : max_pad + T, :R] = F.relu(torch.addmm(self.input_proj.bias, x[:, None], self.input_proj.weight.T))
        skip = x.new_zeros(T, R)
        for l, d in enumerate(self.dilations):
            src, dst = bufs[l % len(bufs)], bufs[(l + 1) % len(bufs)]
            c_l = 2.0 ** (-l / 2)
            lo = max_pad - d * (K - 1) // 2
            w = self.dilated_weight[l] * c_l  # (K, R, 2R), acting on h~ = h / c_l
            first = torch.cat([w[0], noise_bias[l][None]])  # (R + 1, 2R): tap 0 plus the bias row for the ones column
            out_w = self.output_weight[l] * 0.5  # (R, 2R) acting on 2z
            w_res, w_skip = out_w[:, :R] * (1.0 / c_l), out_w[:, R:]
            cond_l = None if prepared is None else self._layer_cond_one(prepared, l, index)  # (T, 2R)
            for s in range(0, T, rows):
                e = min(T, s + rows)
                tap0 = src[lo + s : lo + e]  # (rows, R + 1), ones column included
                a = tap0 @ first if cond_l is None else torch.addmm(cond_l[s:e], tap0, first)  # (rows, 2R)
                for k in range(1, K):
                    a.addmm_(src[lo + s + k * d : lo + e + k * d, :R], w[k])  # += tap_k W_l[k]
                a.tanh_()
                z2 = a[:, :R].addcmul_(a[:, :R], a[:, R:])  # 2 z = tanh(a) (1 + tanh(g))
                if l < L - 1:  # the last residual update is never read
                    h_next = dst[max_pad + s : max_pad + e, :R]
                    if dst is not src:
                        h_next.copy_(src[max_pad + s : max_pad + e, :R])
                    h_next.addmm_(z2, w_res)  # h~ += r_l / c_l
                skip[s:e].addmm_(z2, w_skip)
        skip += self.skip_bias.sum(0)
        y = F.relu(self.skip_proj(skip * math.sqrt(1.0 / L)))  # (T, R)
        return self.final_proj(y).T  # (1, T)

    def _layer_cond_one(self, prepared: DiffWaveCondition, l: int, index: int) -> Tensor:
        """``C_l u + bias`` for layer l and one example: ``(T, 2R)``."""
        if prepared.layers is not None:
            return prepared.layers[l, index]
        R2 = 2 * self.config.residual_channels
        return torch.addmm(self.cond_bias[l * R2 : (l + 1) * R2], prepared.upsampled[index], self.cond_weight[:, l * R2 : (l + 1) * R2])

    # --------------------------------------------------------------------------------------------
    def flops_per_sample(self, precomputed_cond: bool = True) -> float:
        """Multiply-adds x 2 per output sample of one forward pass (matrix products only)."""
        c = self.config
        R, L, K = c.residual_channels, c.n_layers, c.kernel_size
        per_layer = 2 * K * R * 2 * R + 2 * R * 2 * R
        if self.conditional and not precomputed_cond:
            per_layer += 2 * (c.upsample_channels or c.cond_channels) * 2 * R
        return L * per_layer + 2 * R + 2 * R * R + 2 * R

    def receptive_field(self) -> int:
        """Samples on each side one forward pass can see."""
        return sum(d * (self.config.kernel_size - 1) // 2 for d in self.dilations)


class DiffWaveSampling(nn.Module):
    """A :class:`DiffWave` as the sampling backbone of a :class:`~waveforge.diffusion.Denoiser`
    (``Denoiser.for_sampling``): the same weights, :meth:`DiffWave.sampling_pass` as ``forward``."""

    def __init__(self, model: DiffWave):
        super().__init__()
        self.model = model

    def prepare(self, cond: Tensor | None, drop: Tensor | None = None) -> DiffWaveCondition | None:
        return self.model.prepare(cond, drop, sampling=True)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor | DiffWaveCondition | None = None) -> Tensor:
        return self.model.sampling_pass(x, c_noise, cond)
