"""WaveNet (van den Oord et al. 2016) with Fast-WaveNet cached generation (Paine et al. 2016).

A stack of gated residual layers with dilated causal convolutions; dilations cycle
``1, 2, ..., 2**(layers_per_cycle - 1)``. Skip outputs of all layers are summed and mapped by
``ReLU -> 1x1 -> ReLU -> 1x1`` to either a 256-way mu-law softmax or the parameters of a
discretised mixture of logistics over 16-bit samples (Parallel WaveNet / PixelCNN++).

Conditioning: local ``cond (B, C, F)`` is upsampled to samples by the shared
:class:`~waveforge.nn.ConditionUpsampler` and projected into every layer's gate; global
conditioning is an embedding of a class id, also projected into every gate.

Time alignment: ``forward(x)[..., t]`` parameterises the sample that *follows* input ``x[t]``;
the upsampled condition at ``t`` belongs to that predicted sample. To train on ``targets``, feed
``model.shift_right(targets)`` (silence before the first sample).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from waveforge import kernels
from waveforge.audio.mulaw import mu_law_decode, mu_law_encode
from waveforge.losses.logistic import discretized_mix_logistic_log_prob, sample_mix_logistic
from waveforge.models.config import ModelConfig
from waveforge.nn.causal import ConvQueue, GatedResidualBlock
from waveforge.nn.sampling import sample_categorical
from waveforge.nn.upsample import ConditionUpsampler
from waveforge.utils.progress import progress

OUTPUTS = ("mulaw", "logistic")


@dataclass
class WaveNetConfig(ModelConfig):
    """Architecture of one WaveNet (the model's own config; exported as JSON with ``asdict``)."""

    layers: int = 24
    cycles: int = 2  # dilations 1 .. 2**(layers/cycles - 1), repeated `cycles` times
    residual_channels: int = 64
    gate_channels: int = 128  # split into tanh and sigmoid halves
    skip_channels: int = 64
    kernel_size: int = 2
    output: str = "mulaw"  # "mulaw": 2**mu_law_bits-way softmax; "logistic": mixture of logistics
    mu_law_bits: int = 8
    n_mixtures: int = 10
    logistic_classes: int = 65536  # 16-bit samples
    cond_channels: int = 0  # C of local conditioning (n_mels or 264); 0: none
    hop_length: int = 256
    upsample_channels: int | None = None  # channels after the ConditionUpsampler (default cond_channels)
    upsample_scales: list[int] | None = None
    n_global: int = 0  # number of global class ids (e.g. instruments or speakers); 0: none
    global_channels: int = 16

    PRESETS = {
        # The WaveNet vocoder size (Shen et al. 2018 / Tacotron 2's vocoder as commonly reproduced):
        # 30 layers, 3 cycles of dilations 1..512 (receptive field 3070), 512 residual / 512 gate /
        # 256 skip channels, 10-component mixture of logistics over 16-bit samples, 80-band mel at hop 256.
        "paper": dict(layers=30, cycles=3, residual_channels=512, gate_channels=512, skip_channels=256,
                      output="logistic", n_mixtures=10, cond_channels=80, hop_length=256),
        # 24 layers, 2 cycles of dilations 1..2048 (receptive field 8191), 64 residual / 128 gate / 64 skip, mu-law 256
        "small": dict(layers=24, cycles=2),
        # 6 layers (dilations 1, 2, 4 twice), 16 residual / 32 gate / 16 skip, hop 16
        "tiny": dict(layers=6, cycles=2, residual_channels=16, gate_channels=32, skip_channels=16, hop_length=16),
    }

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.layers < 1 or self.cycles < 1 or self.layers % self.cycles:
            raise ValueError(f"layers ({self.layers}) must be a positive multiple of cycles ({self.cycles})")
        if self.gate_channels % 2:
            raise ValueError(f"gate_channels must be even, got {self.gate_channels}")
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if self.upsample_scales is not None and math.prod(self.upsample_scales) != self.hop_length:
            raise ValueError(f"upsample_scales {self.upsample_scales} do not multiply to hop_length {self.hop_length}")

    @property
    def dilations(self) -> list[int]:
        per_cycle = self.layers // self.cycles
        return [2 ** (i % per_cycle) for i in range(self.layers)]

    @property
    def receptive_field(self) -> int:
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    @property
    def out_channels(self) -> int:
        return 2**self.mu_law_bits if self.output == "mulaw" else 3 * self.n_mixtures

@dataclass
class WaveNetCache:
    """Generation state: one queue per layer, the upsampled condition and the time step."""

    queues: list[ConvQueue]
    cond_upsampled: torch.Tensor | None  # (B, upsample_channels, T)
    global_terms: list[torch.Tensor] | None  # per layer (B, gate)
    t: int = 0
    n_steps: int | None = None  # length of the conditioned sequence, if any


class WaveNet(nn.Module):
    """WaveNet over mu-law classes or float samples.

    ``forward(x, cond=None, global_id=None)``:
      * ``x``: ``(B, T)`` int64 mu-law classes (``output="mulaw"``) or ``(B, 1, T)`` float in [-1, 1]
        (``output="logistic"``), the *inputs* (targets shifted right by one, see :meth:`shift_right`);
      * ``cond``: ``(B, cond_channels, T // hop_length)``; ``global_id``: ``(B,)`` int64;
      * returns ``(B, out_channels, T)``: logits of the next sample, or mixture parameters.
    """

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = c = config
        if c.output == "mulaw":
            self.input_embedding = nn.Embedding(2**c.mu_law_bits, c.residual_channels)  # = 1x1 conv of the one-hot
        else:
            self.input_conv = nn.Conv1d(1, c.residual_channels, 1)
        self.blocks = nn.ModuleList(
            GatedResidualBlock(c.residual_channels, c.gate_channels, c.skip_channels, c.kernel_size, d) for d in c.dilations
        )
        self.upsampler = None
        self.cond_projections = None
        if c.cond_channels > 0:
            up = c.upsample_channels or c.cond_channels
            self.upsampler = ConditionUpsampler(c.cond_channels, c.hop_length, out_channels=up, scales=c.upsample_scales)
            self.cond_projections = nn.ModuleList(nn.Conv1d(up, c.gate_channels, 1, bias=False) for _ in c.dilations)
        self.global_embedding = None
        self.global_projections = None
        if c.n_global > 0:
            self.global_embedding = nn.Embedding(c.n_global, c.global_channels)
            self.global_projections = nn.ModuleList(nn.Linear(c.global_channels, c.gate_channels, bias=False) for _ in c.dilations)
        self.head_hidden = nn.Conv1d(c.skip_channels, c.skip_channels, 1)
        self.head_out = nn.Conv1d(c.skip_channels, c.out_channels, 1)

    # ---------------------------------------------------------------- training pass
    @property
    def silence(self) -> torch.Tensor:
        """The input before the first sample: mu-law class of 0.0, or 0.0."""
        if self.config.output == "mulaw":
            return torch.tensor(2 ** (self.config.mu_law_bits - 1), dtype=torch.long)
        return torch.tensor(0.0)

    def shift_right(self, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs: ``targets`` (``(B, T)`` classes or ``(B, 1, T)`` floats) delayed by one sample."""
        first = self.silence.to(targets.device, targets.dtype).expand(*targets.shape[:-1], 1)
        return torch.cat([first, targets[..., :-1]], dim=-1)

    def _embed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.output == "mulaw":
            if x.dim() != 2 or x.dtype != torch.long:
                raise ValueError(f"mu-law WaveNet takes (B, T) int64 classes, got {tuple(x.shape)} {x.dtype}")
            return self.input_embedding(x).transpose(1, 2)  # (B, residual, T)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"logistic WaveNet takes (B, 1, T) float audio, got {tuple(x.shape)}")
        return self.input_conv(x)

    def _global_terms(self, global_id: torch.Tensor | None, batch_size: int) -> list[torch.Tensor] | None:
        if self.global_embedding is None:
            if global_id is not None:
                raise ValueError("this WaveNet has no global conditioning (n_global=0) but global_id was given")
            return None
        if global_id is None or global_id.shape != (batch_size,):
            raise ValueError(f"this WaveNet needs global_id of shape ({batch_size},)")
        g = self.global_embedding(global_id)  # (B, global_channels)
        return [proj(g) for proj in self.global_projections]  # each (B, gate)

    def _upsample(self, cond: torch.Tensor | None, n_samples: int, batch_size: int) -> torch.Tensor | None:
        if self.upsampler is None:
            if cond is not None:
                raise ValueError("this WaveNet is unconditional (cond_channels=0) but cond was given")
            return None
        c = self.config
        if cond is None or cond.dim() != 3 or cond.shape[0] != batch_size or cond.shape[1] != c.cond_channels:
            raise ValueError(f"this WaveNet needs cond of shape ({batch_size}, {c.cond_channels}, F)")
        if cond.shape[-1] * c.hop_length != n_samples:
            raise ValueError(f"cond has {cond.shape[-1]} frames, expected {n_samples} samples / hop {c.hop_length}")
        return self.upsampler(cond)  # (B, up, T)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, global_id: torch.Tensor | None = None) -> torch.Tensor:
        h = self._embed_inputs(x)  # (B, residual, T)
        batch_size, n_samples = h.shape[0], h.shape[-1]
        cond_up = self._upsample(cond, n_samples, batch_size)
        global_terms = self._global_terms(global_id, batch_size)
        skip_sum = 0.0
        for i, block in enumerate(self.blocks):
            cond_term = None
            if cond_up is not None:
                cond_term = self.cond_projections[i](cond_up)  # (B, gate, T)
            if global_terms is not None:
                g = global_terms[i][:, :, None]
                cond_term = g if cond_term is None else cond_term + g
            h, skip = block(h, cond_term)
            skip_sum = skip_sum + skip  # (B, skip, T)
        return self.head_out(F.relu(self.head_hidden(F.relu(skip_sum))))

    def targets(self, audio: torch.Tensor) -> torch.Tensor:
        """What the model predicts for ``audio (B, 1, T)`` in [-1, 1]: mu-law classes ``(B, T)``, or the audio itself."""
        if self.config.output == "mulaw":
            return mu_law_encode(audio[:, 0], self.config.mu_law_bits)
        return audio

    def log_prob_of(self, logits_or_params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log p(target_t | past)`` in nats per sample, ``(B, T)``, from :meth:`forward`'s output on
        ``shift_right(targets)``: the categorical over mu-law classes, or the discretised logistic mixture."""
        if self.config.output == "mulaw":
            return -F.cross_entropy(logits_or_params, targets, reduction="none")
        return discretized_mix_logistic_log_prob(logits_or_params, targets, self.config.n_mixtures, self.config.logistic_classes)

    def loss(self, logits_or_params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean NLL per sample (nats); targets as for :meth:`shift_right`."""
        return -self.log_prob_of(logits_or_params, targets).mean()

    def log_prob(self, audio: torch.Tensor, cond: torch.Tensor | None = None, global_id: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced ``log p(audio | cond)`` in nats per sample: ``audio (B, 1, T)`` -> ``(B, T)``
        (the training objective is its negative mean; ``waveforge eval`` sums it)."""
        targets = self.targets(audio)
        return self.log_prob_of(self(self.shift_right(targets), cond, global_id), targets)

    # ---------------------------------------------------------------- cached generation (reference)
    def new_cache(
        self, batch_size: int = 1, cond: torch.Tensor | None = None, global_id: torch.Tensor | None = None
    ) -> WaveNetCache:
        """Empty queues for ``batch_size`` streams; ``cond (B, C, F)`` fixes the length at ``F * hop``."""
        device = self.head_out.weight.device
        n_steps = None
        cond_up = None
        if cond is not None:
            batch_size = cond.shape[0]
            n_steps = cond.shape[-1] * self.config.hop_length
            cond_up = self._upsample(cond, n_steps, batch_size)
        else:
            self._upsample(None, 0, batch_size)
        queues = [b.dilated.new_queue(batch_size, device=device) for b in self.blocks]
        return WaveNetCache(queues, cond_up, self._global_terms(global_id, batch_size), 0, n_steps)

    def step(self, x_prev: torch.Tensor, cache: WaveNetCache) -> torch.Tensor:
        """One sample: ``x_prev (B,)`` (class ids or floats) -> ``(B, out_channels)``; advances ``cache``.

        Costs O(layers): each layer reads its input from ``kernel_size - 1`` dilated positions of its queue.
        """
        if cache.n_steps is not None and cache.t >= cache.n_steps:
            raise ValueError(f"the condition covers {cache.n_steps} samples; cannot step past it")
        if self.config.output == "mulaw":
            h = self.input_embedding(x_prev)  # (B, residual)
        else:
            h = F.linear(x_prev[:, None].to(self.input_conv.weight.dtype), self.input_conv.weight[:, :, 0], self.input_conv.bias)
        skip_sum = 0.0
        for i, block in enumerate(self.blocks):
            cond_term = None
            if cache.cond_upsampled is not None:
                cond_term = F.linear(cache.cond_upsampled[:, :, cache.t], self.cond_projections[i].weight[:, :, 0])
            if cache.global_terms is not None:
                g = cache.global_terms[i]
                cond_term = g if cond_term is None else cond_term + g
            h, skip = block.step(h, cache.queues[i], cond_term)
            skip_sum = skip_sum + skip
        cache.t += 1
        hidden = F.relu(F.linear(F.relu(skip_sum), self.head_hidden.weight[:, :, 0], self.head_hidden.bias))
        return F.linear(hidden, self.head_out.weight[:, :, 0], self.head_out.bias)

    def sample_output(self, out: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0, generator=None) -> torch.Tensor:
        """``(B, out_channels)`` -> next inputs ``(B,)``: class ids (mu-law) or floats (logistic)."""
        if self.config.output == "mulaw":
            return sample_categorical(out, temperature, top_p, generator)
        return sample_mix_logistic(out, self.config.n_mixtures, temperature, top_p, generator)

    def to_audio(self, samples: torch.Tensor) -> torch.Tensor:
        """Generated ``(B, T)`` classes or floats -> ``(B, 1, T)`` float audio."""
        if self.config.output == "mulaw":
            return mu_law_decode(samples, self.config.mu_law_bits)[:, None, :]
        return samples.float()[:, None, :]

    @torch.no_grad()
    def generate(
        self,
        n_samples: int | None = None,
        cond: torch.Tensor | None = None,
        global_id: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int = 1,
        progress: bool = False,
        backend: str = "auto",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample audio ``(B, 1, n_samples)``; with ``cond (B, C, F)``, ``n_samples = F * hop``.

        ``backend``: ``"fast"`` (the fused numba loop in :mod:`waveforge.kernels.wavenet`),
        ``"reference"`` (the PyTorch :meth:`step` loop), or ``"auto"`` (fast when available).
        """
        if cond is not None:
            batch_size = cond.shape[0]
            if n_samples is not None and n_samples != cond.shape[-1] * self.config.hop_length:
                raise ValueError(f"n_samples={n_samples} does not match cond ({cond.shape[-1]} frames x hop {self.config.hop_length})")
            n_samples = cond.shape[-1] * self.config.hop_length
        if n_samples is None or n_samples < 1:
            raise ValueError("n_samples (or cond) is required")
        if backend not in ("auto", "fast", "reference"):
            raise ValueError(f"backend must be 'auto', 'fast' or 'reference', got {backend!r}")
        device = self.head_out.weight.device
        if cond is not None and cond.device != device:
            raise ValueError(f"cond is on {cond.device} but the model is on {device}")
        if backend != "reference":
            from waveforge.kernels import wavenet as fast

            if not kernels.runs_on(device):
                # "fast" included: on a GPU the PyTorch loop is the on-device path there is
                warnings.warn(
                    f"WaveNet: the fused generation loop runs on the CPU only; this model is on {device}, "
                    "so it samples with the PyTorch loop there",
                    RuntimeWarning,
                    stacklevel=2,
                )
            elif fast.available():
                return fast.generate(self, n_samples, cond, global_id, temperature, top_p, batch_size, progress, generator)
            elif backend == "fast":
                raise RuntimeError(f"the fast WaveNet kernel is unavailable: {fast.unavailable_reason()}")
            else:
                warnings.warn(
                    f"WaveNet: the fused generation loop is unavailable ({fast.unavailable_reason()}); "
                    "using the PyTorch reference loop, which is ~50x slower",
                    RuntimeWarning,
                    stacklevel=2,
                )
        cache = self.new_cache(batch_size, cond, global_id)
        x = self.silence.to(device).expand(batch_size).clone()
        samples = []
        for _ in _progress(range(n_samples), progress):
            x = self.sample_output(self.step(x, cache), temperature, top_p, generator)
            samples.append(x)
        return self.to_audio(torch.stack(samples, dim=-1))


def _progress(steps, enabled: bool):
    return progress(steps, desc="wavenet", total=len(steps), unit="sample", enabled=enabled)
