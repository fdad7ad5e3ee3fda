"""Autoregressive priors over VQ-VAE codes: a causal Transformer with a KV cache.

The same module is the *top prior* (unconditional, ``cond_codebook_size = 0``) and an *upsampler*
(Jukebox's name for the conditional prior of level ``l`` given the codes of level ``l + 1``). An
upsampler embeds the upper codes, mixes neighbours with a width-3 convolution (the upper codes are
all known before sampling, so this need not be causal), repeats each vector ``cond_ratio`` times
and adds a learned embedding of the position inside the upper code (``t mod ratio``).

Time alignment: ``forward(tokens)[:, t]`` are the logits of ``tokens[:, t]`` given ``tokens[:, :t]``
(and the conditioning at ``t``); the input at ``t`` is ``tokens[:, t - 1]``, a learned start
token at ``t = 0``. Positions are absolute inside a window of at most ``context`` tokens; sequences
longer than that are sampled window by window, each new window primed with the last half of the
previous one (training crops also start with the start token, so the two agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from waveforge.models.config import ModelConfig
from waveforge.nn.sampling import sample_categorical
from waveforge.utils.progress import progress as progress_bar


@dataclass
class PriorConfig(ModelConfig):
    """A Transformer prior over ``codebook_size`` tokens (the model's own config)."""

    codebook_size: int = 2048
    context: int = 2048  # n_ctx: tokens per attention window
    width: int = 512
    layers: int = 8
    heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.0
    cond_codebook_size: int = 0  # > 0: an upsampler conditioned on codes of the level above
    cond_ratio: int = 1  # tokens of this level per upper-level token

    PRESETS = {
        # the scale of Jukebox's 1B upsamplers: 72 layers, width 1920, MLP ratio 1, context 8192 tokens
        # (about 1.6B parameters here, as attention keeps full width where Jukebox narrows it to 1/4)
        "paper": dict(context=8192, width=1920, layers=72, heads=1, mlp_ratio=1),
        # the cpu recipe's priors: 4 layers of width 192
        "small": dict(context=512, width=192, layers=4, heads=4, dropout=0.1),
        "tiny": dict(context=64, width=32, layers=2, heads=2),
    }

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        if self.cond_ratio < 1:
            raise ValueError(f"cond_ratio must be >= 1, got {self.cond_ratio}")
        if self.context < 2 or self.context % (2 * self.cond_ratio):
            raise ValueError(f"context {self.context} must be a multiple of 2 * cond_ratio ({2 * self.cond_ratio})")



@dataclass
class KVCache:
    """Keys and values per layer, ``(B, heads, context, width / heads)``; ``length`` positions are filled."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(x).split(w, dim=-1)
        q, k, v = (t.view(b, n, self.heads, w // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, hd)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            start = cache.length
            cache.keys[layer][:, :, start : start + n] = k
            cache.values[layer][:, :, start : start + n] = v
            k, v = cache.keys[layer][:, :, : start + n], cache.values[layer][:, :, : start + n]  # (B, H, S + L, hd)
            # new position i (absolute start + i) sees keys 0 .. start + i
            mask = torch.arange(start + n, device=x.device)[None, :] <= (start + torch.arange(n, device=x.device))[:, None]
            # plain matmuls: for a few query positions the fused CPU kernel costs more in thread start-up than it saves
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)  # (B, H, L, S + L)
            y = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v  # (B, H, L, hd)
        y = y.transpose(1, 2).reshape(b, n, w)  # (B, L, W)
        return self.dropout(self.proj(y))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(approximate="tanh"), nn.Linear(mlp_ratio * width, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.norm_attn(x), cache, layer)
        return x + self.mlp(self.norm_mlp(x))


class TransformerPrior(nn.Module):
    """Causal Transformer over code tokens.

    ``forward(tokens (B, N), cond (B, N / cond_ratio) | None) -> logits (B, N, codebook_size)``
    with ``N <= context``; ``generate(n_tokens, cond=...) -> (B, n_tokens)`` with a KV cache.
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = c = config
        self.start_token = c.codebook_size  # the extra embedding row
        self.token_embedding = nn.Embedding(c.codebook_size + 1, c.width)
        self.position_embedding = nn.Embedding(c.context, c.width)
        self.cond_embedding = self.cond_mix = self.phase_embedding = None
        if c.cond_codebook_size > 0:
            self.cond_embedding = nn.Embedding(c.cond_codebook_size, c.width)
            self.cond_mix = nn.Conv1d(c.width, c.width, 3, padding=1)
            self.phase_embedding = nn.Embedding(c.cond_ratio, c.width)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c.width, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.layers))
        self.norm_out = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.codebook_size, bias=False)
        self.apply(_init_weights)

    @property
    def conditional(self) -> bool:
        return self.cond_embedding is not None

    # ------------------------------------------------------------------ pieces
    def cond_vectors(self, cond: torch.Tensor | None, n_tokens: int) -> torch.Tensor | None:
        """Upper codes ``(B, N / ratio)`` -> per-token conditioning ``(B, N, width)`` (None if unconditional)."""
        c = self.config
        if not self.conditional:
            if cond is not None:
                raise ValueError("this prior is unconditional but cond was given")
            return None
        if cond is None or cond.dim() != 2 or cond.shape[-1] * c.cond_ratio != n_tokens:
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"this upsampler needs cond codes (B, {n_tokens} / {c.cond_ratio}), got {got}")
        h = self.cond_mix(self.cond_embedding(cond).transpose(1, 2)).transpose(1, 2)  # (B, N / r, W)
        h = h.repeat_interleave(c.cond_ratio, dim=1)  # (B, N, W)
        phase = torch.arange(n_tokens, device=cond.device) % c.cond_ratio
        return h + self.phase_embedding(phase)[None]

    def _embed(self, inputs: torch.Tensor, start: int, cond_vectors: torch.Tensor | None) -> torch.Tensor:
        """Input tokens at window positions ``start .. start + L`` -> ``(B, L, W)``."""
        n = inputs.shape[-1]
        positions = torch.arange(start, start + n, device=inputs.device)
        h = self.token_embedding(inputs) + self.position_embedding(positions)[None]
        if cond_vectors is not None:
            h = h + cond_vectors[:, start : start + n]
        return self.dropout(h)

    def _trunk(self, h: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            h = block(h, cache, i)
        return self.head(self.norm_out(h))  # (B, L, K)

    def shift_right(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` targets -> inputs: the start token, then ``tokens[:, :-1]``."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    # ------------------------------------------------------------------ training pass
    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[-1] > self.config.context:
            raise ValueError(f"expected tokens (B, N) with N <= context {self.config.context}, got {tuple(tokens.shape)}")
        h = self._embed(self.shift_right(tokens), 0, self.cond_vectors(cond, tokens.shape[-1]))
        return self._trunk(h, None)

    @staticmethod
    def loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mean NLL in nats per token."""
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens.reshape(-1))

    # ------------------------------------------------------------------ cached generation
    def new_cache(self, batch_size: int) -> KVCache:
        c = self.config
        p = self.head.weight
        shape = (batch_size, c.heads, c.context, c.width // c.heads)
        return KVCache([p.new_zeros(shape) for _ in self.blocks], [p.new_zeros(shape) for _ in self.blocks], 0)

    def extend(self, inputs: torch.Tensor, cache: KVCache, cond_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Feed ``inputs (B, L)`` at window positions ``cache.length ..`` -> logits ``(B, L, K)``; advances ``cache``.

        ``cond_vectors``: the whole window's ``(B, window, W)`` from :meth:`cond_vectors`.
        """
        start, n = cache.length, inputs.shape[-1]
        if start + n > self.config.context:
            raise ValueError(f"cache holds {start} of {self.config.context} positions; cannot add {n}")
        logits = self._trunk(self._embed(inputs, start, cond_vectors), cache)
        cache.length += n
        return logits

    @torch.no_grad()
    def generate(
        self,
        n_tokens: int,
        cond: torch.Tensor | None = None,
        batch_size: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        progress: bool = False,
        desc: str = "prior",
        generator: torch.Generator | None = None,
        threads: int | None = 1,
    ) -> torch.Tensor:
        """Sample ``(B, n_tokens)`` codes; an upsampler takes ``cond (B, n_tokens / cond_ratio)``.

        Longer than ``context``: windows advance by ``context / 2`` tokens, each primed (one
        parallel pass) with the last ``context / 2`` tokens of the one before.

        ``threads``: CPU intra-op threads during the token loop (restored afterwards; ``None``
        keeps the current setting). One step's matrices are small, so a second thread costs more
        in wake-ups than it saves: on a loaded 2-core machine one thread was 15x faster per token.
        """
        previous_threads = torch.get_num_threads()
        if threads is not None and self.head.weight.device.type == "cpu":
            torch.set_num_threads(threads)
        try:
            return self._generate(n_tokens, cond, batch_size, temperature, top_p, progress, desc, generator)
        finally:
            torch.set_num_threads(previous_threads)

    def _generate(self, n_tokens, cond, batch_size, temperature, top_p, progress, desc, generator) -> torch.Tensor:
        c = self.config
        if cond is not None:
            batch_size = cond.shape[0]
            if cond.shape[-1] * c.cond_ratio != n_tokens:
                raise ValueError(f"cond has {cond.shape[-1]} codes; {n_tokens} tokens need {n_tokens / c.cond_ratio}")
        elif self.conditional:
            raise ValueError("this upsampler needs cond codes")
        device = self.head.weight.device
        tokens = torch.empty(batch_size, n_tokens, dtype=torch.long, device=device)
        window_start, cache, cond_vecs = 0, None, None
        for t in progress_bar(range(n_tokens), desc=desc, total=n_tokens, unit="code", enabled=progress):
            if cache is None or cache.length == c.context:
                if cache is not None:
                    window_start = t - c.context // 2
                window_len = min(c.context, n_tokens - window_start)
                if self.conditional:
                    r = c.cond_ratio
                    window_cond = cond[:, window_start // r : math.ceil((window_start + window_len) / r)]
                    cond_vecs = self.cond_vectors(window_cond, window_cond.shape[-1] * r)
                cache = self.new_cache(batch_size)
                if t > window_start:  # prime with the inputs of positions 0 .. t - window_start - 1
                    self.extend(self.shift_right(tokens[:, window_start:t]), cache, cond_vecs)
            previous = tokens[:, t - 1 : t] if t > window_start else torch.full((batch_size, 1), self.start_token, device=device)
            logits = self.extend(previous, cache, cond_vecs)[:, -1]  # (B, K)
            tokens[:, t] = sample_categorical(logits, temperature, top_p, generator)
        return tokens


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


__all__ = ["KVCache", "PriorConfig", "TransformerPrior"]
