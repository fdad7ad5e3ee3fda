"""MelGAN (Kumar et al., 2019): a non-autoregressive convolutional generator.

The generator maps frame-rate conditioning ``cond: (B, C, F)`` (a log-mel with ``C = n_mels``,
or a piano roll with ``C = 264``; the architecture is the same) to audio ``(B, 1, F * hop)``.
Upsampling is done by strided transposed convolutions, one per factor in
``upsample_factors`` (their product is the hop length), each followed by a residual stack of
dilated convolutions (dilations 1, 3, 9) that widens the receptive field at that rate.

Its discriminators are in :mod:`waveforge.models.discriminators`, the phase-integrating output
heads' synthesis in :mod:`waveforge.models.spectral_heads`, and its FLOP count in the bench
(:mod:`waveforge.benchmarks.melgan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from waveforge.models.config import ModelConfig
from waveforge.models.spectral_heads import LOG_MAGNITUDE_RANGE, SINE_TAPS, SPECTRAL_HEADS, SpectralHead, project_to_mel
from waveforge.nn.upsample import init_transposed_conv_

__all__ = ["MelGANGenerator", "MelGANGeneratorConfig", "transposed_conv_geometry"]


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------


UPSAMPLING_MODES = ("transposed", "nearest")
OUTPUT_HEADS = ("waveform", *SPECTRAL_HEADS)


@dataclass
class MelGANGeneratorConfig(ModelConfig):
    """The generator's architecture, nothing else (JSON-exportable with ``asdict``).

    ``hop_length`` is stated explicitly and must equal ``prod(upsample_factors)``; channels halve
    at every upsampling stage, starting from ``initial_channels``.

    ``upsampling``: ``"transposed"`` (the paper: a stride-r transposed conv with kernel 2r) or
    ``"nearest"`` (a width-3 conv at the lower rate, then each sample repeated r times; Odena et
    al. 2016, Pons et al. 2021). A transposed conv has separate weights for each of the r output
    phases, and early in training the generator uses them to emit one pulse per frame: a comb at
    multiples of ``sample_rate / hop`` (86 Hz at 22.05 kHz) over the music and the silence alike.
    Nearest-neighbour upsampling has no phase-specific weights, so it cannot, and it costs fewer
    FLOPs (its conv runs at the lower rate).

    ``output``: ``"waveform"`` (the paper: a width-7 conv to one channel and tanh; the upsampling
    factors multiply to ``hop_length``) or one of two phase-integrating spectral heads, whose conv
    predicts per STFT frame and per bin a log magnitude and a phase increment; the phase is the
    running sum of the increments, and an inverse STFT (``n_fft``, Hann window, hop
    ``hop_length / prod(upsample_factors)``) makes the audio, so the factors need only divide the
    hop (``[1, 1]``: the whole network runs at the frame rate).

    * ``"stft"`` (experimental: no recipe, demo or bench uses it; ``"sines"`` trains better): the
      predictions are the STFT's own bins (a phase vocoder). Each increment is
      the bin's centre-frequency advance plus up to two bins' worth either way (``pi * tanh``);
      bin ``k`` starts at phase ``pi * k``.
    * ``"sines"``: one oscillator per bin, within one bin of its centre; its increment says its
      frequency, and its spectrum (the Hann window's transform, centred there) is written into
      the STFT (:meth:`~waveforge.models.spectral_heads.SpectralHead.sines_spectrum`). A partial is then one oscillator's
      lobe, coherent by construction, where the stft head must keep four bins' phases in step.

    ``mel_projection`` (spectral heads at the frame rate, mel conditioning): after the head has
    written its STFT, rescale it band by band this many times so that its mel is the conditioning
    mel (:func:`~waveforge.models.spectral_heads.project_to_mel`). The generator decides phases and
    how energy spreads within a band; the mel, which the vocoder is given, decides each band's
    level. ``mel`` is that conditioning's :class:`~waveforge.audio.mel.MelConfig` as a dict (its
    filterbank), filled in by the training task. It adds no parameters, so a trained generator can
    be fine-tuned with it (``GANVocoderTask(init_from=...)``).

    Why integrate: any stack of convolutions and upsamplings is shift-equivariant with period
    ``hop_length``, so where its conditioning is steady (a held piano note) a waveform head's
    output repeats every hop and can hold partials only at multiples of ``sample_rate / hop``
    (86 Hz at 22.05 kHz); a partial between them lands up to 43 Hz off. A running phase sum is
    not periodic, so each bin or oscillator advances at whatever rate the network predicts
    (``recipes/melgan/README.md`` gives what each head scored).
    """

    cond_channels: int = 80
    hop_length: int = 256
    upsample_factors: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    initial_channels: int = 512
    residual_dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    residual_kernel_size: int = 3
    input_kernel_size: int = 7
    output_kernel_size: int = 7
    leaky_relu_slope: float = 0.2
    upsampling: str = "transposed"
    output: str = "waveform"
    n_fft: int = 1024
    mel_projection: int = 0
    mel: dict | None = None

    PRESETS = {
        # the MelGAN paper generator: 512 channels, factors 8, 8, 2, 2 (hop 256 at 22.05 kHz)
        "paper": dict(hop_length=256, upsample_factors=[8, 8, 2, 2], initial_channels=512),
        # half the paper's width (about a quarter of its FLOPs), same hop and receptive field
        "small": dict(hop_length=256, upsample_factors=[8, 8, 2, 2], initial_channels=256),
        "tiny": dict(hop_length=16, upsample_factors=[4, 4], initial_channels=32),
    }

    def __post_init__(self) -> None:
        if self.upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {self.upsampling!r}")
        if self.output not in OUTPUT_HEADS:
            raise ValueError(f"output must be one of {OUTPUT_HEADS}, got {self.output!r}")
        self.upsample_factors = [int(f) for f in self.upsample_factors]
        self.residual_dilations = [int(d) for d in self.residual_dilations]
        if not self.upsample_factors or any(f < 1 for f in self.upsample_factors):
            raise ValueError(f"upsample_factors must be a non-empty list of positive integers, got {self.upsample_factors}")
        product = math.prod(self.upsample_factors)
        if self.output == "waveform" and product != self.hop_length:
            raise ValueError(
                f"upsample_factors {self.upsample_factors} multiply to {product}, "
                f"but hop_length is {self.hop_length}; the generator must produce exactly hop_length samples per frame"
            )
        if self.output in ("stft", "sines"):
            if self.hop_length % product != 0:
                raise ValueError(
                    f"upsample_factors {self.upsample_factors} multiply to {product}, which does not divide "
                    f"hop_length {self.hop_length}; the stft head's hop is hop_length / prod(upsample_factors)"
                )
            if self.n_fft % 2 or self.n_fft < 2 * self.stft_hop:
                raise ValueError(f"n_fft must be even and at least twice the stft head's hop ({self.stft_hop}), got {self.n_fft}")
            if self.output == "sines" and self.n_fft < 2 * SINE_TAPS:  # a lobe mirrored at 0 Hz must land below Nyquist
                raise ValueError(f"the sines head writes {SINE_TAPS} bins either side of each oscillator, so n_fft must be at least {2 * SINE_TAPS}, got {self.n_fft}")
        if self.mel_projection:
            self._check_mel_projection()
        n_stages = len(self.upsample_factors)
        if self.initial_channels % (2**n_stages) != 0:
            raise ValueError(
                f"initial_channels ({self.initial_channels}) must be divisible by 2**{n_stages} "
                f"(channels halve at each of the {n_stages} upsampling stages)"
            )
        if self.cond_channels < 1:
            raise ValueError(f"cond_channels must be positive, got {self.cond_channels}")
        for name in ("residual_kernel_size", "input_kernel_size", "output_kernel_size"):
            k = getattr(self, name)
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be odd and positive (so 'same' padding is symmetric), got {k}")

    def _check_mel_projection(self) -> None:
        if self.mel_projection < 0:
            raise ValueError(f"mel_projection is a number of iterations, got {self.mel_projection}")
        if self.output == "waveform" or math.prod(self.upsample_factors) != 1:
            raise ValueError("mel_projection rescales a spectral head's frames to the conditioning mel's: it needs output 'stft' or 'sines' and upsample_factors of 1")
        if self.mel is None:
            raise ValueError("mel_projection needs the conditioning's mel settings (mel); the training task fills them in from mel conditioning")
        from waveforge.audio.mel import MelConfig

        mel = MelConfig(**{k: v for k, v in self.mel.items() if k != "kind"})
        wanted = {"n_mels": self.cond_channels, "n_fft": self.n_fft, "win_length": self.n_fft, "hop_length": self.hop_length}
        for key, value in wanted.items():
            if getattr(mel, key) != value:
                raise ValueError(f"mel_projection needs the mel's {key} to be the generator's {value}, got {getattr(mel, key)}")

    @property
    def stft_hop(self) -> int:
        """The stft head's hop in samples (``hop_length / prod(upsample_factors)``)."""
        return self.hop_length // math.prod(self.upsample_factors)

    @classmethod
    def preset(cls, name: str, **overrides) -> "MelGANGeneratorConfig":
        """As :meth:`ModelConfig.preset`, for ``paper``, ``small`` and ``tiny`` alike: given
        ``upsample_factors`` and no ``hop_length``, the hop is their product (a waveform head's hop)."""
        if overrides.get("upsample_factors") and "hop_length" not in overrides:
            overrides["hop_length"] = math.prod(overrides["upsample_factors"])
        return super().preset(name, **overrides)


def transposed_conv_geometry(factor: int) -> tuple[int, int, int]:
    """Kernel, padding and output padding so that a stride-``factor`` transposed conv maps L -> L * factor.

    Output length is ``(L - 1) r - 2p + k + op``. With ``k = 2r``: even ``r`` uses ``p = r/2, op = 0``;
    odd ``r`` uses ``p = (r + 1)/2, op = 1``. Factor 1 degenerates to a plain width-3 ``same`` conv.
    """
    if factor == 1:
        return 3, 1, 0
    if factor % 2 == 0:
        return 2 * factor, factor // 2, 0
    return 2 * factor, factor // 2 + 1, 1


class ResidualUnit(nn.Module):
    """``x + shortcut(x) ... ``: ``(B, C, T) -> (B, C, T)``.

    MelGAN's residual block: LeakyReLU, reflection-padded dilated conv (kernel 3, dilation d),
    LeakyReLU, 1x1 conv; the skip path is a learned 1x1 conv.

    The skip conv starts as the identity. With PyTorch's default initialisation each learned 1x1
    conv scales the signal's variance by about 1/3, so after the twelve residual units of the
    paper generator the input's influence on the output is ~1e-4 of the biases' and learning
    starts from vanishing gradients; an identity skip path keeps the signal (as HiFi-GAN's
    ``x + f(x)`` blocks do) while the architecture stays MelGAN's.
    """

    def __init__(self, channels: int, dilation: int, kernel_size: int, slope: float):
        super().__init__()
        self.slope = slope
        self.pad = dilation * (kernel_size - 1) // 2
        self.dilated = weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=dilation))
        self.pointwise = weight_norm(nn.Conv1d(channels, channels, 1))
        shortcut = nn.Conv1d(channels, channels, 1)
        with torch.no_grad():
            shortcut.weight.copy_(torch.eye(channels).unsqueeze(-1))
            shortcut.bias.zero_()
        self.shortcut = weight_norm(shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(x, self.slope)
        h = self.dilated(F.pad(h, (self.pad, self.pad), mode="reflect"))
        h = self.pointwise(F.leaky_relu(h, self.slope))
        return self.shortcut(x) + h


class UpsampleStage(nn.Module):
    """LeakyReLU, upsampling by ``factor`` halving channels, residual stack: ``(B, C, L) -> (B, C/2, L*factor)``.

    ``mode="transposed"``: a stride-``factor`` transposed conv. ``mode="nearest"``: a reflection-
    padded width-3 conv at the input rate, then every sample repeated ``factor`` times.
    """

    def __init__(self, in_channels: int, factor: int, dilations: list[int], kernel_size: int, slope: float, mode: str = "transposed"):
        super().__init__()
        self.slope = slope
        self.factor = factor
        self.mode = mode
        out_channels = in_channels // 2
        if mode not in UPSAMPLING_MODES:
            raise ValueError(f"mode must be one of {UPSAMPLING_MODES}, got {mode!r}")
        if mode == "nearest":
            conv = nn.Conv1d(in_channels, out_channels, 3)
            with torch.no_grad():  # He scale for the LeakyReLU in front
                conv.weight.normal_(0.0, nn.init.calculate_gain("leaky_relu", slope) / math.sqrt(3 * in_channels))
                conv.bias.zero_()
            self.upsample = weight_norm(conv)
        elif factor == 1:
            k, p, _ = transposed_conv_geometry(factor)
            self.upsample = weight_norm(nn.Conv1d(in_channels, out_channels, k, padding=p))
        else:
            k, p, op = transposed_conv_geometry(factor)
            upsample = nn.ConvTranspose1d(in_channels, out_channels, k, stride=factor, padding=p, output_padding=op)
            init_transposed_conv_(upsample, 0.2)
            self.upsample = weight_norm(upsample)
        self.residuals = nn.ModuleList(ResidualUnit(out_channels, d, kernel_size, slope) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(x, self.slope)
        if self.mode == "nearest":
            h = self.upsample(F.pad(h, (1, 1), mode="reflect"))  # (B, C/2, L)
            h = h.repeat_interleave(self.factor, dim=-1)  # (B, C/2, L * factor)
        else:
            h = self.upsample(h)  # (B, C/2, L * factor)
        for unit in self.residuals:
            h = unit(h)
        return h


class MelGANGenerator(nn.Module):
    """``cond: (B, cond_channels, F)`` -> audio ``(B, 1, F * hop_length)`` in (-1, 1).

    Input: reflection-padded width-7 conv to ``initial_channels``. Then one :class:`UpsampleStage`
    per upsampling factor (channels halve each time), then LeakyReLU, reflection-padded width-7 conv
    to one channel, and tanh. Every conv is weight-normalised during training; call
    :meth:`remove_weight_norm` (outputs unchanged) before deployment.
    """

    def __init__(self, config: MelGANGeneratorConfig):
        super().__init__()
        self.config = config
        c = config
        self.hop_length = c.hop_length
        self.slope = c.leaky_relu_slope
        self.input_pad = c.input_kernel_size // 2
        self.output_pad = c.output_kernel_size // 2
        self.input_conv = weight_norm(nn.Conv1d(c.cond_channels, c.initial_channels, c.input_kernel_size))
        stages = []
        channels = c.initial_channels
        for factor in c.upsample_factors:
            stages.append(UpsampleStage(channels, factor, c.residual_dilations, c.residual_kernel_size, c.leaky_relu_slope, c.upsampling))
            channels //= 2
        self.stages = nn.ModuleList(stages)
        if c.output == "waveform":
            output_conv = nn.Conv1d(channels, 1, c.output_kernel_size)
            with torch.no_grad():
                # Start quiet and without a DC offset: the log-mel input (mostly around -7) leaves large
                # constant offsets in every channel, which a zero-sum kernel cancels, so the tanh starts
                # unsaturated, with an output std of a few hundredths (piano recordings: ~0.03).
                w = torch.randn_like(output_conv.weight)  # (1, C, K)
                w -= w.mean(dim=-1, keepdim=True)
                output_conv.weight.copy_(w / math.sqrt(channels * c.output_kernel_size))
                output_conv.bias.zero_()
        else:
            n_bins = c.n_fft // 2 + 1
            output_conv = nn.Conv1d(channels, 2 * n_bins, c.output_kernel_size)  # log magnitudes, then increments
            with torch.no_grad():
                # zero-sum kernels (see above); magnitudes start near exp(-4): quiet, about a piano's noise floor
                w = torch.randn_like(output_conv.weight)
                w -= w.mean(dim=-1, keepdim=True)
                output_conv.weight.copy_(0.1 * w / math.sqrt(channels * c.output_kernel_size))
                output_conv.bias.zero_()
                output_conv.bias[:n_bins] = math.log((-4.0 - LOG_MAGNITUDE_RANGE[0]) / (LOG_MAGNITUDE_RANGE[1] + 4.0))
        self.head = SpectralHead(c.output, c.n_fft, c.stft_hop) if c.output != "waveform" else None
        self.output_conv = weight_norm(output_conv)
        if c.mel_projection:
            from waveforge.audio.mel import MelConfig, mel_filterbank

            mel = MelConfig(**{k: v for k, v in c.mel.items() if k != "kind"})
            self.register_buffer("mel_filterbank", mel_filterbank(mel), persistent=False)
            self.mel_floor = mel.log_floor
        # Reflection padding needs more samples than it pads, at every rate.
        min_frames = self.input_pad + 1
        rate = 1
        for factor in c.upsample_factors:
            rate *= factor
            widest = max(d * (c.residual_kernel_size - 1) // 2 for d in c.residual_dilations)
            min_frames = max(min_frames, widest // rate + 1)
        self.min_frames = max(min_frames, self.output_pad // math.prod(c.upsample_factors) + 1)

    def _check_cond(self, cond: torch.Tensor) -> None:
        if cond.dim() != 3 or cond.shape[1] != self.config.cond_channels:
            raise ValueError(f"expected cond of shape (B, {self.config.cond_channels}, F), got {tuple(cond.shape)}")
        if cond.shape[-1] < self.min_frames:
            raise ValueError(f"need at least {self.min_frames} conditioning frames (reflection padding), got {cond.shape[-1]}")

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        n_frames = cond.shape[-1]
        if self.head is not None:
            log_magnitude, increments = self.spectral_frames(cond)
            return self.spectral_audio(log_magnitude, increments, self.head.integrate_phase(increments), cond)
        self._check_cond(cond)
        audio = torch.tanh(self._head_input(cond))
        assert audio.shape[-1] == n_frames * self.hop_length  # (B, 1, F * hop)
        return audio

    def _head_input(self, cond: torch.Tensor) -> torch.Tensor:
        """The output conv's result, ``(B, 1 or 2 * (n_fft/2 + 1), F * prod(upsample_factors))``."""
        h = self.input_conv(F.pad(cond, (self.input_pad, self.input_pad), mode="reflect"))  # (B, C0, F)
        for stage in self.stages:
            h = stage(h)  # (B, C_i / 2, F * prod(factors so far))
        h = F.leaky_relu(h, self.slope)
        return self.output_conv(F.pad(h, (self.output_pad, self.output_pad), mode="reflect"))

    # -- the stft and sines heads (models.spectral_heads) --------------------------------------
    def spectral_frames(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond: (B, C, F)`` -> log magnitudes and phase increments, each ``(B, n_fft/2 + 1, F * prod(factors))``
        (see :meth:`SpectralHead.frames`)."""
        if self.head is None:
            raise ValueError("spectral_frames needs a generator with output='stft' or 'sines'")
        self._check_cond(cond)
        return self.head.frames(self._head_input(cond))

    def spectral_audio(self, log_magnitude: torch.Tensor, increments: torch.Tensor, phase: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The head's frames (``(B, K, L)`` each) -> audio ``(B, 1, L * stft_hop)``, projected onto
        ``cond``'s mel when the config says so (``mel_projection``)."""
        spectrum = self.head.spectrum(log_magnitude, increments, phase)
        if self.config.mel_projection:
            spectrum = project_to_mel(spectrum, cond, self.mel_filterbank, self.config.mel_projection, self.mel_floor)
        return self.head.istft(spectrum)

    @torch.no_grad()
    def infer(self, cond: torch.Tensor) -> torch.Tensor:
        """Inference pass (no autograd): ``(B, C, F)`` -> ``(B, 1, F * hop)``."""
        return self.forward(cond)

    def remove_weight_norm(self) -> "MelGANGenerator":
        """Fold every weight-norm parametrisation into a plain weight, in place; outputs are unchanged."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self

    @property
    def receptive_field_frames(self) -> int:
        """A conservative bound on the frames of context, each side, that influence an output sample.

        Chunked synthesis with this much context on both sides matches a whole-input pass.
        """
        c = self.config
        # Work backwards from the output in samples, then convert to frames at the input rate.
        rf = c.output_kernel_size // 2  # at the output conv's rate: samples, or the stft head's frames
        if c.output != "waveform":  # an output sample sums the frames whose windows cover it
            rf += math.ceil(c.n_fft / 2 / c.stft_hop)
        rate = 1
        for factor in reversed(c.upsample_factors):
            rf += sum(d * (c.residual_kernel_size - 1) // 2 for d in c.residual_dilations)
            if c.upsampling == "nearest":  # +1 for the width-3 conv, +1 for the repeated block's alignment
                rf = math.ceil(rf / factor) + 2
            else:
                k, _, _ = transposed_conv_geometry(factor)
                rf = math.ceil(rf / factor) + math.ceil(k / factor)
            rate *= factor
        return rf + c.input_kernel_size // 2
