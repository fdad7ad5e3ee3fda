"""Notes to mel: the first stage of the two-stage MIDI renderer (Hawthorne et al. 2022's split).

A piano roll ``(B, 264, F)`` (onsets, frames with sustain, velocity; :mod:`waveforge.midi.roll`)
becomes the natural-log mel ``(B, n_mels, F)`` of the same audio, in the ``MelConfig`` of the mel
vocoder that finishes the job. Both run at the frame rate, so this stage costs ``n_mels`` values
per frame instead of ``hop_length`` samples.

The trunk is non-causal (a note's decay depends on what follows it): a width-3 input conv, then
pre-norm residual blocks of dilated, zero-padded convolutions (dilations ``1, 2, 4, ...`` repeated
every ``dilation_cycle`` layers) and, optionally, local self-attention over frames within
``attention_window`` frames either side. Nothing normalises over time (the norm is per frame, over
channels), so every output frame depends on the input within :attr:`Notes2MelTrunk.receptive_field_frames`
either side and on nothing beyond: that is what makes chunked rendering with that much context
equal to a whole-input pass.

With ``note_frames > 0`` both models start from a :class:`NotePrior`: an additive note model in the
mel domain, where every onset adds its pitch's learned ``(n_mels, note_frames)`` template (a quiet
and a loud one, mixed by velocity), damped a few frames after the key and pedal release it. It puts
each note's attack on the right frame and its partials in the right bands from the first step, which
a convolution stack trained on a CPU budget does not learn; the trunk then corrects it (regression:
the prior's log-mel plus the trunk's output) or is conditioned on it (diffusion). A note's template
reaches ``note_frames - 1`` frames after its onset, so the prior adds that much to the receptive field.

Two models share the trunk:

* :class:`Notes2Mel` (regression): ``roll -> log-mel``. Its output conv starts at zero with its
  bias at ``ln(log_floor)``, the log-mel of digital silence, so an untrained model already maps
  every roll to silence and training only has to raise the frames where notes sound.
* :class:`Notes2MelDenoiser` (spectrogram diffusion): the plain ``(x, c_noise, cond)`` backbone that
  :class:`waveforge.diffusion.Denoiser` wraps, over the normalised log-mel
  ``(mel - mel_offset) / mel_scale``. ``prepare(roll, drop)`` embeds the roll once per call and puts a
  learned null embedding in the dropped rows (classifier-free guidance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveforge.audio.mel import mel_band_hz
from waveforge.midi.roll import N_KEYS
from waveforge.models.config import ModelConfig


@dataclass
class Notes2MelConfig(ModelConfig):
    """The notes-to-mel architecture (its JSON form: ``to_dict`` / ``from_dict``).

    ``mel_offset`` / ``mel_scale`` map the log-mel to the diffusion model's state
    (``(mel - offset) / scale``: the floor ``ln 1e-5 = -11.5`` and a loud band near ``+1`` land near
    ``-2`` and ``+2``). ``log_floor`` must be the vocoder ``MelConfig``'s.
    """

    roll_channels: int = 3 * N_KEYS
    n_mels: int = 80
    channels: int = 256
    n_layers: int = 12
    kernel_size: int = 3
    dilation_cycle: int = 6
    attention_layers: int = 0
    attention_heads: int = 4
    attention_window: int = 32
    noise_channels: int = 128
    log_floor: float = 1e-5
    mel_offset: float = -5.0
    mel_scale: float = 3.0
    note_frames: int = 0
    release_frames: int = 24

    PRESETS = {
        # paper scale for multi-GPU MAESTRO training: 512 channels, 30 blocks: 26 dilated convs
        # (dilations 1..128, cycled), then 4 attending 128 frames either side
        "paper": dict(channels=512, n_layers=30, dilation_cycle=8, attention_layers=4, attention_heads=8, attention_window=128),
        # for the cpu recipes: 128 channels, 12 layers (two cycles of dilations 1..32)
        "small": dict(channels=128, n_layers=12, dilation_cycle=6),
        # for tests: 16 channels, 4 layers (dilations 1, 2, 1, 2), one of them with attention
        "tiny": dict(channels=16, n_layers=4, dilation_cycle=2, attention_layers=1, attention_heads=2, attention_window=3, noise_channels=16),
    }

    def __post_init__(self) -> None:
        for name in ("roll_channels", "n_mels", "channels", "n_layers", "dilation_cycle", "attention_heads", "noise_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive (symmetric, non-causal padding), got {self.kernel_size}")
        if self.attention_layers < 0 or self.attention_window < 1:
            raise ValueError(f"attention_layers must be >= 0 and attention_window >= 1, got {self.attention_layers}, {self.attention_window}")
        if self.attention_layers and self.channels % self.attention_heads:
            raise ValueError(f"channels ({self.channels}) must be divisible by attention_heads ({self.attention_heads})")
        if self.attention_layers > self.n_layers:
            raise ValueError(f"attention_layers ({self.attention_layers}) cannot exceed n_layers ({self.n_layers})")
        if self.note_frames < 0 or self.release_frames < 1:
            raise ValueError(f"note_frames must be >= 0 (0: no note prior) and release_frames >= 1, got {self.note_frames}, {self.release_frames}")
        if self.note_frames and self.roll_channels != 3 * N_KEYS:
            raise ValueError(f"the note prior reads a piano roll of {3 * N_KEYS} channels, got roll_channels={self.roll_channels}")
        if not 0 < self.log_floor < 1 or self.mel_scale <= 0:
            raise ValueError(f"log_floor must lie in (0, 1) and mel_scale be positive, got {self.log_floor}, {self.mel_scale}")

    @property
    def floor(self) -> float:
        """``ln(log_floor)``: the log-mel of silence."""
        return math.log(self.log_floor)

    def dilations(self) -> list[int]:
        return [2 ** (i % self.dilation_cycle) for i in range(self.n_layers)]

    @property
    def prior_reach(self) -> int:
        """Frames before an output frame that the note prior reads (0 without it)."""
        return max(self.note_frames, self.release_frames) - 1 if self.note_frames else 0



def harmonic_templates(band_hz: Tensor, n_frames: int) -> Tensor:
    """A starting guess for the note templates, ``(88, n_mels, n_frames)`` natural-log magnitude.

    Partials at whole multiples of each key's fundamental with amplitude ``1 / n``, spread over the
    two nearest bands, decaying exponentially, faster for high keys and high partials (as a piano's
    strings do). Training replaces it; it only has to put each key's energy near the right bands.
    """
    n_mels = band_hz.numel()
    keys = torch.arange(N_KEYS, dtype=torch.float32)
    f0 = 440.0 * 2.0 ** ((keys + 21 - 69) / 12)  # (88,)
    band_index = torch.arange(n_mels, dtype=torch.float32)
    power = torch.zeros(N_KEYS, n_mels)
    for n in range(1, 64):
        f = n * f0  # (88,)
        position = torch.from_numpy(np.interp(f.numpy(), band_hz.numpy(), band_index.numpy(), left=-10.0, right=n_mels + 10.0)).float()
        weight = (1.0 - (band_index[None, :] - position[:, None]).abs()).clamp(min=0.0)  # (88, n_mels)
        power += weight * (1.0 / n) ** 2
    shape = 0.5 * torch.log(power + 1e-6)  # (88, n_mels)
    shape = shape - shape.amax(dim=1, keepdim=True) - 0.5
    time_constant = (120.0 * 2.0 ** (-keys / 24.0)).clamp(min=8.0)  # frames per e-fold: low keys ring longer
    band_speedup = 1.0 + 2.0 * band_index / n_mels  # high partials die first
    k = torch.arange(n_frames, dtype=torch.float32)
    return shape[:, :, None] - k[None, None, :] * band_speedup[None, :, None] / time_constant[:, None, None]


class NotePrior(nn.Module):
    """Additive note model: ``roll (B, 264, F) -> log-mel (B, n_mels, F)``.

    Each onset of key ``p`` at frame ``f`` with velocity ``v`` adds, at frames ``f + k``,
    ``((1 - v) exp(T[p, :, k]) + v exp(T[p, :, k] + G[p, :])) * damper[p, f + k]`` to the mel
    magnitude, where ``T`` is the key's log template over ``note_frames`` frames and ``G`` the loud
    note's extra brightness. ``damper`` is 1 while the key (or the pedal) holds the note and decays
    at a learned per-key rate for ``release_frames`` after. Notes add in power, then a learned
    per-band noise floor, then the log. Onsets are few, so the sum is added note by note
    rather than convolved over every frame of 88 keys.
    """

    def __init__(self, n_mels: int, note_frames: int, release_frames: int, log_floor: float, band_hz: Tensor | None = None):
        super().__init__()
        if band_hz is None:  # the vocoders' usual mel (f_max 8 kHz): only the starting guess depends on it
            band_hz = mel_band_hz(n_mels, 0.0, 8000.0)
        self.note_frames, self.release_frames, self.log_floor = note_frames, release_frames, log_floor
        self.template = nn.Parameter(harmonic_templates(band_hz, note_frames))  # (88, n_mels, K) log magnitude
        self.loud_gain = nn.Parameter(torch.full((N_KEYS, n_mels), 1.5))  # (88, n_mels) log ratio, loud / quiet
        self.release_rate = nn.Parameter(torch.full((N_KEYS,), math.log(math.expm1(0.25))))  # softplus -> e-folds per frame
        self.noise_floor = nn.Parameter(torch.full((n_mels,), math.log(10 * log_floor)))  # (n_mels,) log magnitude

    def damper(self, frames: Tensor) -> Tensor:
        """``frames (B, 88, F)`` held -> ``(B, 88, F)``: 1 while held, decaying after the release."""
        r = self.release_frames
        decay = torch.exp(-F.softplus(self.release_rate)[:, None] * torch.arange(r, device=frames.device, dtype=frames.dtype))  # (88, R)
        past = F.pad(frames, (r - 1, 0)).unfold(-1, r, 1).flip(-1)  # (B, 88, F, R): frame f - j at [..., j]
        return (past * decay[None, :, None, :]).amax(dim=-1)

    def forward(self, roll: Tensor) -> Tensor:
        b, _, n = roll.shape
        onsets, frames, velocity = roll[:, :N_KEYS], roll[:, N_KEYS : 2 * N_KEYS], roll[:, 2 * N_KEYS :]
        damper = self.damper(frames)  # (B, 88, F)
        k = self.note_frames
        n_mels = self.template.shape[1]
        batch, key, frame = torch.nonzero(onsets > 0.5, as_tuple=True)  # (N,) each
        # frames-major rows (B * (F + K), n_mels): each note adds whole rows of n_mels values, so index_add
        # moves rows rather than accumulating (b, mel, frame) triplets one value at a time
        power = torch.zeros(b * (n + k), n_mels, device=roll.device, dtype=roll.dtype)
        if batch.numel():
            v = velocity[batch, key, frame][:, None, None]  # (N, 1, 1)
            quiet = torch.exp(self.template[key].transpose(1, 2))  # (N, K, n_mels)
            magnitude = quiet * ((1 - v) + v * torch.exp(self.loud_gain[key])[:, None, :])
            at = frame[:, None] + torch.arange(k, device=roll.device)  # (N, K) output frames
            held = F.pad(damper, (0, k))[batch[:, None], key[:, None], at]  # (N, K)
            contribution = (magnitude * held[:, :, None]).square()  # (N, K, n_mels)
            rows = (batch[:, None] * (n + k) + at).reshape(-1)  # (N * K,)
            power = power.index_add(0, rows, contribution.reshape(-1, n_mels))
        power = power.view(b, n + k, n_mels).transpose(1, 2)  # (B, n_mels, F + K)
        power = power[..., :n] + torch.exp(2 * self.noise_floor)[None, :, None]
        return 0.5 * torch.log(power.clamp(min=self.log_floor**2))  # (B, n_mels, F)


def note_prior_layers(config: "Notes2MelConfig", band_hz: Tensor | None) -> tuple[NotePrior | None, nn.Conv1d | None]:
    """The note prior and the width-3 conv that embeds its log-mel for the trunk; ``(None, None)`` without one."""
    if not config.note_frames:
        return None, None
    prior = NotePrior(config.n_mels, config.note_frames, config.release_frames, config.log_floor, band_hz)
    return prior, nn.Conv1d(config.n_mels, config.channels, 3, padding=1)


class FrameNorm(nn.Module):
    """LayerNorm over channels at each frame: ``(B, C, F) -> (B, C, F)``, local in time."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, h: Tensor) -> Tensor:
        return self.norm(h.transpose(1, 2)).transpose(1, 2)


class DilatedBlock(nn.Module):
    """``h + W_out gelu(W_dil * norm(h + noise))``: a non-causal dilated conv, zero-padded both sides."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, noise_channels: int | None):
        super().__init__()
        self.norm = FrameNorm(channels)
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2)
        self.out = nn.Conv1d(2 * channels, channels, 1)
        nn.init.zeros_(self.out.weight)  # each block starts as the identity: a deep stack trains from step one
        nn.init.zeros_(self.out.bias)
        self.noise = nn.Linear(noise_channels, channels) if noise_channels else None
        self.context = dilation * (kernel_size - 1) // 2

    def forward(self, h: Tensor, noise: Tensor | None = None) -> Tensor:
        y = h if noise is None or self.noise is None else h + self.noise(noise).unsqueeze(-1)  # (B, C, F)
        return h + self.out(F.gelu(self.conv(self.norm(y))))


class LocalAttentionBlock(nn.Module):
    """Self-attention over frames, each frame seeing ``window`` frames either side (a band mask).

    A band keeps the receptive field finite, so chunked rendering stays exact; the cost of the
    ``(F, F)`` mask is bounded by the chunk, not the piece.
    """

    def __init__(self, channels: int, heads: int, window: int):
        super().__init__()
        self.norm = FrameNorm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.heads = heads
        self.context = window

    def forward(self, h: Tensor) -> Tensor:
        b, c, n = h.shape
        q, k, v = self.qkv(self.norm(h)).reshape(b, 3, self.heads, c // self.heads, n).transpose(-1, -2).unbind(1)  # each (B, H, F, C/H)
        index = torch.arange(n, device=h.device)
        band = (index[:, None] - index[None, :]).abs() <= self.context  # (F, F), True where attending
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=band)  # (B, H, F, C/H)
        return h + self.out(y.transpose(-1, -2).reshape(b, c, n))


class Notes2MelTrunk(nn.Module):
    """The shared non-causal stack: ``(B, channels, F) -> (B, channels, F)``; the attention blocks come last."""

    def __init__(self, config: Notes2MelConfig, noise_channels: int | None):
        super().__init__()
        n_conv = config.n_layers - config.attention_layers
        self.blocks = nn.ModuleList(
            [DilatedBlock(config.channels, config.kernel_size, d, noise_channels) for d in config.dilations()[:n_conv]]
        )
        self.attention = nn.ModuleList(
            [LocalAttentionBlock(config.channels, config.attention_heads, config.attention_window) for _ in range(config.attention_layers)]
        )
        self.norm = FrameNorm(config.channels)

    @property
    def receptive_field_frames(self) -> int:
        """Frames either side that an output frame depends on (the blocks' reach, summed)."""
        return sum(b.context for b in self.blocks) + sum(a.context for a in self.attention)

    def forward(self, h: Tensor, noise: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            h = block(h, noise)
        for block in self.attention:
            h = block(h)
        return self.norm(h)


class Notes2Mel(nn.Module):
    """Regression notes-to-mel: ``roll: (B, roll_channels, F) -> log-mel: (B, n_mels, F)``."""

    def __init__(self, config: Notes2MelConfig, band_hz: Tensor | None = None):
        """``band_hz``: the mel bands' centre frequencies, for the note prior's starting guess only."""
        super().__init__()
        self.config = config
        self.input = nn.Conv1d(config.roll_channels, config.channels, 3, padding=1)
        self.prior, self.prior_input = note_prior_layers(config, band_hz)
        self.trunk = Notes2MelTrunk(config, noise_channels=None)
        self.output = nn.Conv1d(config.channels, config.n_mels, 1)
        nn.init.zeros_(self.output.weight)  # silence (or the prior alone) until training raises the frames where notes sound
        nn.init.constant_(self.output.bias, 0.0 if config.note_frames else config.floor)

    @property
    def receptive_field_frames(self) -> int:
        return 1 + self.trunk.receptive_field_frames + self.config.prior_reach

    def forward(self, roll: Tensor) -> Tensor:
        """``(B, roll_channels, F) -> (B, n_mels, F)`` natural-log mel."""
        if roll.dim() != 3 or roll.shape[1] != self.config.roll_channels:
            raise ValueError(f"roll must be (B, {self.config.roll_channels}, F), got {tuple(roll.shape)}")
        h = self.input(roll)  # (B, C, F)
        if self.prior is None:
            return self.output(self.trunk(h))  # (B, n_mels, F)
        base = self.prior(roll)  # (B, n_mels, F)
        h = h + self.prior_input((base - self.config.mel_offset) / self.config.mel_scale)
        return base + self.output(self.trunk(h))


class Notes2MelDenoiser(nn.Module):
    """Spectrogram-diffusion backbone ``F(x_in: (B, n_mels, F), c_noise: (B,), cond) -> (B, n_mels, F)``.

    ``cond`` is what :meth:`prepare` returns (the embedded roll, ``(B, channels, F)``); a raw roll
    ``(B, roll_channels, F)`` is prepared on the fly. ``x`` is the normalised log-mel state
    (:meth:`normalise`).
    """

    def __init__(self, config: Notes2MelConfig, band_hz: Tensor | None = None):
        super().__init__()
        self.config = config
        self.roll_input = nn.Conv1d(config.roll_channels, config.channels, 3, padding=1)
        # with the note prior, the condition also carries the prior's log-mel (normalised like the state)
        self.prior, self.prior_input = note_prior_layers(config, band_hz)
        self.null_condition = nn.Parameter(torch.zeros(config.channels, 1))  # the "no notes given" embedding for CFG
        self.mel_input = nn.Conv1d(config.n_mels, config.channels, 3, padding=1)
        e = config.noise_channels
        self.register_buffer("noise_frequencies", torch.randn(e // 2) * 4.0, persistent=True)  # Fourier features of c_noise
        self.noise_mlp = nn.Sequential(nn.Linear(2 * (e // 2), e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        self.trunk = Notes2MelTrunk(config, noise_channels=e)
        self.output = nn.Conv1d(config.channels, config.n_mels, 1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    conditional = True

    @property
    def receptive_field_frames(self) -> int:
        """Per denoiser evaluation; a sampler of ``n`` evaluations reaches ``n`` times as far."""
        return 1 + self.trunk.receptive_field_frames + self.config.prior_reach

    def normalise(self, mel: Tensor) -> Tensor:
        return (mel - self.config.mel_offset) / self.config.mel_scale

    def denormalise(self, x: Tensor) -> Tensor:
        return x * self.config.mel_scale + self.config.mel_offset

    def prepare(self, roll: Tensor, drop: Tensor | None = None) -> Tensor:
        """``roll: (B, roll_channels, F)``, ``drop: (B,) bool`` -> ``(B, channels, F)`` condition embedding."""
        cond = self.roll_input(roll)  # (B, C, F)
        if self.prior is not None:
            cond = cond + self.prior_input(self.normalise(self.prior(roll)))
        if drop is not None:
            cond = torch.where(drop.view(-1, 1, 1), self.null_condition.to(cond.dtype).expand_as(cond), cond)
        return cond

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        if cond.shape[1] == self.config.roll_channels and cond.shape[1] != self.config.channels:
            cond = self.prepare(cond)
        angles = c_noise.to(x.dtype)[:, None] * self.noise_frequencies[None, :] * (2 * math.pi)  # (B, E/2)
        noise = self.noise_mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))  # (B, E)
        h = self.mel_input(x) + cond  # (B, C, F)
        return self.output(self.trunk(h, noise))  # (B, n_mels, F)


__all__ = ["NotePrior", "Notes2Mel", "Notes2MelConfig", "Notes2MelDenoiser", "Notes2MelTrunk", "harmonic_templates"]
