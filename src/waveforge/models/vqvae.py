"""Hierarchical VQ-VAE for raw audio (Dieleman et al. 2018; Jukebox, Dhariwal et al. 2020).

Each level ``l`` is an independent autoencoder on the waveform with ``hop_length[l]`` samples per
code (8, 32 and 128 in Jukebox): a strided-convolution encoder with residual dilated stacks, a
vector quantiser with an EMA codebook, and a decoder that is either feed-forward (trained with
multi-resolution STFT + L1/L2 losses) or a conditional WaveNet whose local conditioning is the
level's quantised code vectors at the code rate (the hierarchical WaveNet of Dieleman et al.).

Generation is top-down (:class:`VQVAEHierarchy.sample`): a causal Transformer prior draws the
top-level codes, a conditional Transformer *upsampler* per lower level draws level-``l`` codes
given level-``l+1`` codes, and the level-0 decoder turns the bottom codes into audio.

A level's decoder sees the level above in one of two ways (``VQVAEConfig.condition_on_above``):

* ``False`` (Jukebox): only through the upsampler prior. The autoencoders stay independent, so
  they train separately in any order, and the priors train afterwards on the frozen encoders' codes.
* ``True`` (the hierarchical WaveNet): the decoder of level ``l < top`` also takes the code vectors
  of level ``l + 1``, repeated to level ``l``'s code rate and stacked on its own. The encoders are
  unchanged, but level ``l`` trains after level ``l + 1`` (whose frozen encoder supplies those
  codes), so the autoencoders train top-down, and decoding level ``l`` needs the codes above it.

Quantiser notation (van den Oord et al. 2017, appendix A.1): for code ``i``, ``n_i`` vectors of the
batch are assigned to it with sum ``s_i``; the EMA statistics are ``N_i`` (cluster size) and
``m_i`` (vector sum), decay ``gamma``; the code is ``e_i = m_i / N~_i`` with the Laplace-smoothed
``N~_i = (N_i + eps) / (n + K eps) * n``, ``n = sum_i N_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from waveforge.audio.mulaw import mu_law_encode
from waveforge.models.config import ModelConfig
from waveforge.models.prior import PriorConfig, TransformerPrior
from waveforge.models.wavenet import WaveNet, WaveNetConfig

DECODERS = ("feedforward", "wavenet")


# ================================================================ quantiser


def codebook_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp(H)`` of a code histogram ``counts: (K,)`` (any non-negative numbers): the number of
    equally used codes with the same entropy; 0 for an empty histogram."""
    p = counts.float() / counts.float().sum().clamp_min(1e-30)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum()) * (counts.sum() > 0)

@dataclass
class QuantizerResult:
    """What :class:`VectorQuantizer` returns.

    quantized: ``(B, D, N)`` code vectors, with straight-through gradients to the encoder output;
    codes: ``(B, N)`` int64; commitment_loss: scalar ``beta * ||z - sg(e)||^2`` (mean);
    perplexity: scalar ``exp(H)`` of the batch's code histogram; usage: scalar fraction of codes
    whose EMA cluster size ``N_i`` is at least the restart threshold (in training: after this
    batch's EMA update, before the restarts re-seed the others); batch_usage: fraction of codes
    chosen at least once in this batch; restarted: number of codes re-seeded in this call.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    batch_usage: torch.Tensor
    restarted: int = 0


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantiser with an EMA codebook and dead-code restarts.

    ``forward(z)``: ``z (B, D, N)`` -> :class:`QuantizerResult`. In training mode it also updates
    the codebook (no gradient reaches the codebook: it is a buffer moved by EMA) and re-seeds every
    code whose ``N_i`` fell below ``restart_threshold`` from randomly chosen encoder vectors of the
    current batch (Jukebox's random restarts). Under DDP the statistics are summed over ranks and the
    restart vectors come from rank 0, so every rank keeps the same codebook.

    Args:
        codebook_size: K. code_dim: D. beta: commitment weight. decay: gamma of the EMA.
        epsilon: Laplace smoothing of the cluster sizes. restart_threshold: EMA usage below which
            a code is dead (0 disables restarts). init_from_data: seed the whole codebook from the
            first training batch instead of the random initialisation.
    """

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        beta: float = 0.02,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_threshold: float = 1.0,
        init_from_data: bool = True,
    ):
        super().__init__()
        if codebook_size < 2 or code_dim < 1:
            raise ValueError(f"need codebook_size >= 2 and code_dim >= 1, got {codebook_size}, {code_dim}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if epsilon < 0 or restart_threshold < 0 or beta < 0:
            raise ValueError("epsilon, restart_threshold and beta must be >= 0")
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.beta, self.decay, self.epsilon = beta, decay, epsilon
        self.restart_threshold = restart_threshold
        codebook = torch.randn(codebook_size, code_dim) / math.sqrt(code_dim)
        self.register_buffer("codebook", codebook)  # e_i, (K, D)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # N_i, (K,)
        self.register_buffer("embed_sum", codebook.clone())  # m_i, (K, D)
        self.register_buffer("initialised", torch.tensor(not init_from_data))

    # -------------------------------------------------------------------- lookups
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """``(M, D)`` vectors -> ``(M,)`` index of the nearest code (squared Euclidean distance)."""
        e = self.codebook
        distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]  # (M, K)
        return distances.argmin(dim=1)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, D, N)`` -> codes ``(B, N)`` int64."""
        b, d, n = z.shape
        return self.nearest(z.transpose(1, 2).reshape(b * n, d)).view(b, n)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``(B, N)`` -> code vectors ``(B, D, N)``."""
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
        return F.embedding(codes, self.codebook).transpose(1, 2)

    # -------------------------------------------------------------------- training pass
    def forward(self, z: torch.Tensor) -> QuantizerResult:
        if z.dim() != 3 or z.shape[1] != self.code_dim:
            raise ValueError(f"expected z of shape (B, {self.code_dim}, N), got {tuple(z.shape)}")
        b, d, n = z.shape
        flat = z.detach().transpose(1, 2).reshape(b * n, d).float()  # (M, D)
        restarted = 0
        threshold = max(self.restart_threshold, 1e-12)
        if self.training and not bool(self.initialised):
            self._seed_all(flat)
        codes = self.nearest(flat)  # (M,)
        one_hot = F.one_hot(codes, self.codebook_size).to(flat.dtype)  # (M, K)
        counts = one_hot.sum(0)  # n_i
        if self.training:
            restarted = self._ema_update(flat, one_hot, counts)
            usage = torch.tensor(1.0 - restarted / self.codebook_size, device=flat.device)  # alive before the restarts
        else:
            usage = (self.cluster_size >= threshold).float().mean()
        quantized = F.embedding(codes.view(b, n), self.codebook).transpose(1, 2).to(z.dtype)  # (B, D, N)
        commitment = self.beta * F.mse_loss(z, quantized.detach())
        quantized_st = z + (quantized - z).detach()  # straight-through: forward e, backward identity
        perplexity = codebook_perplexity(counts)
        return QuantizerResult(quantized_st, codes.view(b, n), commitment, perplexity, usage, (counts > 0).float().mean(), restarted)

    @torch.no_grad()
    def _seed_all(self, flat: torch.Tensor) -> None:
        chosen = _broadcast(flat[torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)])
        self.codebook.copy_(chosen)
        # seeded codes count as just alive, so a code the moving encoder leaves behind restarts on the
        # next step. Counting them as more (1 with a threshold of 0.1) let the encoder collapse onto a
        # few codes for the ~230 steps the unused ones took to decay below the threshold.
        self.cluster_size.fill_(self.restart_threshold if self.restart_threshold > 0 else 1.0)
        self.embed_sum.copy_(chosen * self.cluster_size[:, None])
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, one_hot: torch.Tensor, counts: torch.Tensor) -> int:
        gamma, eps, k = self.decay, self.epsilon, self.codebook_size
        sums = one_hot.t() @ flat  # s_i, (K, D)
        counts, sums = _all_reduce(counts.clone()), _all_reduce(sums)
        # 1. N_i <- gamma N_i + (1 - gamma) n_i ;  m_i <- gamma m_i + (1 - gamma) s_i
        self.cluster_size.mul_(gamma).add_(counts, alpha=1 - gamma)
        self.embed_sum.mul_(gamma).add_(sums, alpha=1 - gamma)
        # 2. Laplace smoothing: N~_i = (N_i + eps) / (n + K eps) * n, so no code divides by zero
        n_total = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (n_total + k * eps) * n_total
        # 3. e_i = m_i / N~_i
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        # 4. random restarts: codes with N_i below the threshold take a random vector of this batch
        if self.restart_threshold <= 0:
            return 0
        dead = self.cluster_size < self.restart_threshold  # (K,)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        candidates = _broadcast(flat[torch.randint(0, flat.shape[0], (k,), device=flat.device)])  # (K, D)
        self.codebook[dead] = candidates[dead]
        self.cluster_size[dead] = self.restart_threshold
        self.embed_sum[dead] = candidates[dead] * self.restart_threshold
        return n_dead


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


def _broadcast(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        x = x.contiguous()
        dist.broadcast(x, src=0)
    return x


# ================================================================ encoder / decoder
class ResidualDilatedBlock(nn.Module):
    """``x + Conv1x1(ReLU(Conv_k3,dilation d(ReLU(x))))``, length-preserving. ``(B, W, N) -> (B, W, N)``."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.dilated = nn.Conv1d(width, width, 3, dilation=dilation, padding=dilation)
        self.pointwise = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(F.relu(self.dilated(F.relu(x))))


def residual_stack(width: int, depth: int, dilation_growth: int, reverse: bool = False) -> nn.Sequential:
    dilations = [dilation_growth**i for i in range(depth)]
    return nn.Sequential(*(ResidualDilatedBlock(width, d) for d in (reversed(dilations) if reverse else dilations)))


class LevelEncoder(nn.Module):
    """Waveform ``(B, 1, T)`` -> ``(B, code_dim, T / stride**n_down)``: a width-3 input conv, then
    ``n_down`` times [strided conv (kernel 2*stride, stride), residual dilated stack], then a width-3 conv."""

    def __init__(self, code_dim: int, width: int, n_down: int, stride: int, depth: int, dilation_growth: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(1, width, 3, padding=1)]
        for _ in range(n_down):
            layers += [nn.Conv1d(width, width, 2 * stride, stride=stride, padding=stride // 2), residual_stack(width, depth, dilation_growth)]
        layers.append(nn.Conv1d(width, code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(audio)


class FeedForwardDecoder(nn.Module):
    """Code vectors ``(B, code_dim, N)`` -> waveform ``(B, 1, N * stride**n_up)``; the encoder mirrored
    (residual stacks with dilations in reverse order, then transposed strided convolutions)."""

    def __init__(self, code_dim: int, width: int, n_up: int, stride: int, depth: int, dilation_growth: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, 3, padding=1)]
        for _ in range(n_up):
            layers += [
                residual_stack(width, depth, dilation_growth, reverse=True),
                nn.ConvTranspose1d(width, width, 2 * stride, stride=stride, padding=stride // 2),
            ]
        layers.append(nn.Conv1d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.net(vectors)


# ================================================================ one level
@dataclass
class VQVAELevelConfig:
    """One level's autoencoder. ``hop_length = stride ** k`` samples per code."""

    hop_length: int = 8
    stride: int = 2
    codebook_size: int = 2048
    code_dim: int = 64
    width: int = 32
    depth: int = 4  # residual blocks per stack
    dilation_growth: int = 3
    beta: float = 0.02  # commitment weight
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5
    restart_threshold: float = 1.0
    decoder: str = "feedforward"  # or "wavenet"
    wavenet: dict | None = None  # decoder="wavenet": {preset: tiny, <WaveNetConfig field>: value} (cond/hop are set here)

    def __post_init__(self):
        if self.stride < 2 or self.stride % 2:
            raise ValueError(f"stride must be an even number >= 2, got {self.stride}")
        if self.hop_length < self.stride or self.stride ** round(math.log(self.hop_length, self.stride)) != self.hop_length:
            raise ValueError(f"hop_length {self.hop_length} must be a power of stride {self.stride}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")

    @property
    def n_down(self) -> int:
        return round(math.log(self.hop_length, self.stride))

    def wavenet_config(self, extra_cond_channels: int = 0) -> WaveNetConfig:
        fields = dict(self.wavenet or {})
        for key in ("cond_channels", "hop_length"):
            fields.pop(key, None)
        preset = fields.pop("preset", None) or "tiny"
        return WaveNetConfig.preset(preset, **{"output": "mulaw", **fields,
                                               "cond_channels": self.code_dim + extra_cond_channels, "hop_length": self.hop_length})


@dataclass
class LevelOutput:
    """``VQVAELevel.forward``: ``reconstruction (B, 1, T)`` for a feed-forward decoder, or
    ``logits (B, 256, T)`` of the next mu-law sample for a WaveNet decoder (targets: ``mu_law_encode(audio)``)."""

    quantizer: QuantizerResult
    reconstruction: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class VQVAELevel(nn.Module):
    """Encoder, quantiser and decoder of one level.

    ``encode(audio (B, 1, T)) -> codes (B, T // hop)``; ``decode(codes, above) -> (B, 1, N * hop)``;
    ``forward(audio, above) -> LevelOutput`` (the training pass; ``T`` must be a multiple of ``hop``).
    With ``above_dim > 0`` the decoder also takes ``above (B, above_dim, N / above_ratio)``, the code
    vectors of the level above, repeated ``above_ratio`` times along time and stacked on this
    level's vectors; otherwise ``above`` must be None.
    """

    def __init__(self, config: VQVAELevelConfig, above_dim: int = 0, above_ratio: int = 1):
        super().__init__()
        self.config = c = config
        self.above_dim, self.above_ratio = above_dim, above_ratio
        self.encoder = LevelEncoder(c.code_dim, c.width, c.n_down, c.stride, c.depth, c.dilation_growth)
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, c.beta, c.ema_decay, c.ema_epsilon, c.restart_threshold)
        if c.decoder == "feedforward":
            self.decoder: nn.Module = FeedForwardDecoder(c.code_dim + above_dim, c.width, c.n_down, c.stride, c.depth, c.dilation_growth)
        else:
            self.decoder = WaveNet(c.wavenet_config(above_dim))

    @property
    def conditioned(self) -> bool:
        return self.above_dim > 0

    def _decoder_input(self, vectors: torch.Tensor, above: torch.Tensor | None) -> torch.Tensor:
        """``vectors (B, D, N)`` (+ ``above (B, D', N / ratio)``) -> ``(B, D [+ D'], N)``."""
        if not self.conditioned:
            if above is not None:
                raise ValueError("this level's decoder is not conditioned on the level above")
            return vectors
        n = vectors.shape[-1]
        if above is None or above.dim() != 3 or above.shape[1] != self.above_dim or above.shape[-1] * self.above_ratio != n:
            got = None if above is None else tuple(above.shape)
            raise ValueError(f"this level's decoder needs the level above's vectors (B, {self.above_dim}, {n // self.above_ratio}), got {got}")
        return torch.cat([vectors, above.to(vectors.dtype).repeat_interleave(self.above_ratio, dim=-1)], dim=1)

    def _check_audio(self, audio: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[1] != 1 or audio.shape[-1] % self.config.hop_length:
            raise ValueError(f"expected audio (B, 1, T) with T a multiple of {self.config.hop_length}, got {tuple(audio.shape)}")

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        self._check_audio(audio)
        return self.quantizer.encode(self.encoder(audio))

    def forward(self, audio: torch.Tensor, above: torch.Tensor | None = None) -> LevelOutput:
        self._check_audio(audio)
        q = self.quantizer(self.encoder(audio))  # (B, D, T / hop)
        cond = self._decoder_input(q.quantized, above)
        if isinstance(self.decoder, WaveNet):
            inputs = self.decoder.shift_right(mu_law_encode(audio[:, 0], self.decoder.config.mu_law_bits))
            return LevelOutput(q, logits=self.decoder(inputs, cond=cond))
        return LevelOutput(q, reconstruction=self.decoder(cond))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, above: torch.Tensor | None = None, temperature: float = 1.0, top_p: float = 1.0,
               progress: bool = False) -> torch.Tensor:
        vectors = self._decoder_input(self.quantizer.decode(codes), above)  # (B, D [+ D'], N)
        if isinstance(self.decoder, WaveNet):
            return self.decoder.generate(cond=vectors, temperature=temperature, top_p=top_p, progress=progress)
        return self.decoder(vectors)


# ================================================================ the hierarchy
@dataclass
class VQVAEConfig(ModelConfig):
    """The whole hierarchy: levels (finest first), the top prior and the upsampler template.

    The priors' codebook sizes and the upsamplers' conditioning (codebook of the level above and
    ``ratio = hop[l+1] / hop[l]``) are filled in from the levels by :meth:`prior_config`.
    """

    levels: list[VQVAELevelConfig] = field(default_factory=lambda: [VQVAELevelConfig(hop_length=h) for h in (8, 32, 128)])
    top_prior: PriorConfig = field(default_factory=PriorConfig)
    upsampler: PriorConfig = field(default_factory=PriorConfig)
    condition_on_above: bool = False  # decoders below the top also take the level above's code vectors

    PRESETS = {
        # Jukebox sizes: hops 8 / 32 / 128 (stride 2), 2048 codes of dim 64, width 32, depth 4, dilation
        # growth 3, beta 0.02, EMA decay 0.99, restart threshold 1; priors at Jukebox's upsampler scale
        "paper": dict(levels=[dict(hop_length=h) for h in (8, 32, 128)], top_prior=PriorConfig.PRESETS["paper"],
                      upsampler=PriorConfig.PRESETS["paper"]),
        # the cpu recipe's hierarchy: 512 codes of dim 32, width 32, depth 3, level 2 restarting at 0.1
        "small": dict(levels=[dict(hop_length=h, codebook_size=512, code_dim=32, depth=3, restart_threshold=t)
                              for h, t in ((8, 1.0), (32, 1.0), (128, 0.1))],
                      top_prior={**PriorConfig.PRESETS["small"], "context": 256}, upsampler=PriorConfig.PRESETS["small"]),
        # for tests: hops 8 / 32 / 128, 32 codes of dim 8, width 8, depth 2; two-layer width-32 priors
        "tiny": dict(levels=[dict(hop_length=h, codebook_size=32, code_dim=8, width=8, depth=2) for h in (8, 32, 128)],
                     top_prior=PriorConfig.PRESETS["tiny"], upsampler=PriorConfig.PRESETS["tiny"]),
    }

    def __post_init__(self):
        self.levels = [lv if isinstance(lv, VQVAELevelConfig) else VQVAELevelConfig(**lv) for lv in self.levels]
        if isinstance(self.top_prior, dict):
            self.top_prior = PriorConfig(**self.top_prior)
        if isinstance(self.upsampler, dict):
            self.upsampler = PriorConfig(**self.upsampler)
        if not self.levels:
            raise ValueError("need at least one level")
        hops = self.hops
        for lo, hi in zip(hops, hops[1:]):
            if hi <= lo or hi % lo:
                raise ValueError(f"hop lengths must increase, each a multiple of the one below; got {hops}")

    @property
    def hops(self) -> list[int]:
        return [lv.hop_length for lv in self.levels]

    def prior_config(self, level: int) -> PriorConfig:
        """The top prior (``level == len(levels) - 1``) or the upsampler of ``level``."""
        top = len(self.levels) - 1
        if not 0 <= level <= top:
            raise ValueError(f"level must be in [0, {top}], got {level}")
        if level == top:
            return replace(self.top_prior, codebook_size=self.levels[top].codebook_size, cond_codebook_size=0, cond_ratio=1)
        ratio = self.levels[level + 1].hop_length // self.levels[level].hop_length
        return replace(self.upsampler, codebook_size=self.levels[level].codebook_size, cond_codebook_size=self.levels[level + 1].codebook_size, cond_ratio=ratio)


class VQVAEHierarchy(nn.Module):
    """All levels plus the priors: the whole model that one exported file holds.

    ``levels[l]``: :class:`VQVAELevel`; ``top_prior``: :class:`TransformerPrior` over the top codes;
    ``upsamplers[l]`` (``l < top``): codes of level ``l`` given codes of level ``l + 1``.
    ``trained`` (buffer, ``(n_levels, 2)``): optimiser steps each autoencoder (column 0) and each
    prior (column 1) has had, so a model file says which parts were trained.
    """

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        top = len(config.levels) - 1
        self.levels = nn.ModuleList(
            VQVAELevel(c, *self._above(config, i) if config.condition_on_above and i < top else ())
            for i, c in enumerate(config.levels)
        )
        self.top_prior = TransformerPrior(config.prior_config(top))
        self.upsamplers = nn.ModuleList(TransformerPrior(config.prior_config(level)) for level in range(top))
        self.register_buffer("trained", torch.zeros(len(config.levels), 2, dtype=torch.long))

    @staticmethod
    def _above(config: VQVAEConfig, level: int) -> tuple[int, int]:
        upper = config.levels[level + 1]
        return upper.code_dim, upper.hop_length // config.levels[level].hop_length

    @property
    def top_level(self) -> int:
        return len(self.levels) - 1

    def above_vectors(self, level: int, above_codes: torch.Tensor | None) -> torch.Tensor | None:
        """The code vectors a conditioned level's decoder takes (None for a level that takes none)."""
        if not self.levels[level].conditioned:
            return None
        if above_codes is None:
            raise ValueError(f"level {level}'s decoder is conditioned on level {level + 1}: give that level's codes too")
        return self.levels[level + 1].quantizer.decode(above_codes)

    def prior(self, level: int) -> TransformerPrior:
        return self.top_prior if level == self.top_level else self.upsamplers[level]

    @property
    def hop_multiple(self) -> int:
        """Audio lengths that every level encodes exactly are multiples of this (the top hop)."""
        return self.config.levels[-1].hop_length

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 1, T)`` with ``T % top hop == 0`` -> codes per level, ``[(B, T / hop_0), ...]``."""
        return [level.encode(audio) for level in self.levels]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, level: int, temperature: float = 1.0, top_p: float = 1.0, progress: bool = False,
               above_codes: torch.Tensor | None = None) -> torch.Tensor:
        """Codes of ``level`` ``(B, N)`` (and, for a conditioned level, of ``level + 1``
        ``(B, N / ratio)``) -> audio ``(B, 1, N * hop_level)``."""
        return self.levels[level].decode(codes, self.above_vectors(level, above_codes), temperature, top_p, progress)

    @torch.no_grad()
    def sample_codes(
        self,
        n_samples: int,
        batch_size: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        bottom_level: int = 0,
        progress: bool = False,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Top-down ancestral sampling of codes; returns ``[codes of bottom_level, ..., codes of top]``,
        each covering ``ceil(n_samples / top hop) * top hop`` samples."""
        top = self.top_level
        n_top = max(1, math.ceil(n_samples / self.hop_multiple))
        codes = self.top_prior.generate(n_top, batch_size=batch_size, temperature=temperature, top_p=top_p,
                                        progress=progress, desc=f"level {top} prior", generator=generator)
        out = [codes]
        for level in range(top - 1, bottom_level - 1, -1):
            upsampler = self.upsamplers[level]
            n_tokens = codes.shape[-1] * upsampler.config.cond_ratio
            codes = upsampler.generate(n_tokens, cond=codes, temperature=temperature, top_p=top_p,
                                       progress=progress, desc=f"level {level} upsampler", generator=generator)
            out.append(codes)
        return out[::-1]

    @torch.no_grad()
    def sample(self, n_samples: int, batch_size: int = 1, temperature: float = 1.0, top_p: float = 1.0,
               progress: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Top prior -> upsamplers -> level-0 decoder: ``(batch_size, 1, n_samples)``."""
        codes = self.sample_codes(n_samples, batch_size, temperature, top_p, 0, progress, generator)
        above = codes[1] if len(codes) > 1 else None
        audio = self.decode(codes[0], 0, temperature, top_p, progress, above_codes=above)
        return audio[..., :n_samples]


__all__ = [
    "codebook_perplexity",
    "FeedForwardDecoder",
    "LevelEncoder",
    "LevelOutput",
    "QuantizerResult",
    "VQVAEConfig",
    "VQVAEHierarchy",
    "VQVAELevel",
    "VQVAELevelConfig",
    "VectorQuantizer",
]
