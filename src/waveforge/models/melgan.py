"""MelGAN (Kumar et al., 2019): a non-autoregressive convolutional generator and its discriminators.

The generator maps frame-rate conditioning ``cond: (B, C, F)`` (a log-mel with ``C = n_mels``,
or a piano roll with ``C = 264``; the architecture is the same) to audio ``(B, 1, F * hop)``.
Upsampling is done by strided transposed convolutions, one per factor in
``upsample_factors`` (their product is the hop length), each followed by a residual stack of
dilated convolutions (dilations 1, 3, 9) that widens the receptive field at that rate.

Discriminators return a :class:`DiscriminatorOutput` (one logit map and one list of feature maps
per sub-discriminator), so a training task can use the multi-scale discriminator of MelGAN, the
multi-period discriminator of HiFi-GAN (Kong et al., 2020), or both (:class:`CombinedDiscriminator`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from waveforge.nn.upsample import init_transposed_conv_

__all__ = [
    "CombinedDiscriminator",
    "DiscriminatorOutput",
    "MelGANGenerator",
    "MelGANGeneratorConfig",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "build_discriminator",
    "melgan_generator_flops",
]


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------


UPSAMPLING_MODES = ("transposed", "nearest")
OUTPUT_HEADS = ("waveform", "stft", "sines")
#: the sines head's taps: each oscillator writes its window's main lobe into this many bins either side
SINE_TAPS = 3
#: the spectral heads' log-magnitude range: 1e-5 (below 16-bit quantisation) to 100 (above full scale)
LOG_MAGNITUDE_RANGE = (math.log(1e-5), math.log(100.0))


@dataclass
class MelGANGeneratorConfig:
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
      the STFT (:meth:`MelGANGenerator.sines_spectrum`). A partial is then one oscillator's
      lobe, coherent by construction, where the stft head must keep four bins' phases in step.

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

    @classmethod
    def paper(cls, cond_channels: int = 80) -> "MelGANGeneratorConfig":
        """The MelGAN paper generator: 512 channels, factors 8, 8, 2, 2 (hop 256 at 22.05 kHz)."""
        return cls(cond_channels=cond_channels, hop_length=256, upsample_factors=[8, 8, 2, 2], initial_channels=512)

    @classmethod
    def small(cls, cond_channels: int = 80) -> "MelGANGeneratorConfig":
        """Half the paper's width (about a quarter of its FLOPs), same hop and receptive field."""
        return cls(cond_channels=cond_channels, hop_length=256, upsample_factors=[8, 8, 2, 2], initial_channels=256)

    @classmethod
    def tiny(cls, cond_channels: int = 80, upsample_factors: list[int] | None = None) -> "MelGANGeneratorConfig":
        """For tests: 32 channels; hop = prod(upsample_factors) (default 4 * 4 = 16)."""
        factors = list(upsample_factors) if upsample_factors is not None else [4, 4]
        return cls(
            cond_channels=cond_channels, hop_length=math.prod(factors), upsample_factors=factors, initial_channels=32
        )

    @property
    def stft_hop(self) -> int:
        """The stft head's hop in samples (``hop_length / prod(upsample_factors)``)."""
        return self.hop_length // math.prod(self.upsample_factors)

    def to_dict(self) -> dict:
        return asdict(self)


def _transposed_conv_geometry(factor: int) -> tuple[int, int, int]:
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
            k, p, _ = _transposed_conv_geometry(factor)
            self.upsample = weight_norm(nn.Conv1d(in_channels, out_channels, k, padding=p))
        else:
            k, p, op = _transposed_conv_geometry(factor)
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
            bins = torch.arange(n_bins, dtype=torch.float64)
            # each bin's centre-frequency phase advance per hop, and its starting phase (see the config)
            self.register_buffer("bin_advance", (2 * math.pi * bins * c.stft_hop / c.n_fft).remainder(2 * math.pi).float(), persistent=False)
            start = math.pi * bins if c.output == "stft" else torch.zeros_like(bins)
            self.register_buffer("bin_start", start.remainder(2 * math.pi).float(), persistent=False)
            self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
            # the largest phase deviation per hop: two bins' worth (stft), one bin's (sines)
            self.max_deviation = math.pi if c.output == "stft" else 2 * math.pi * c.stft_hop / c.n_fft
        self.output_conv = weight_norm(output_conv)
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
        if self.config.output != "waveform":
            log_magnitude, increments = self.spectral_frames(cond)
            return self.frames_to_audio(log_magnitude, increments, self.integrate_phase(increments))
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

    # -- the stft and sines heads ----------------------------------------------------------------
    def spectral_frames(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond: (B, C, F)`` -> log magnitudes and phase increments, each ``(B, n_fft/2 + 1, F * prod(factors))``.

        For the stft head these are per STFT bin; for the sines head, per oscillator (its peak-bin
        magnitude, and its phase advance per hop, which says its frequency).

        Log magnitudes lie in ``LOG_MAGNITUDE_RANGE`` through a sigmoid (a full-scale sine's peak
        bin is ~n_fft/4): a bound with a gradient everywhere, where a hard clamp left bins stuck at
        the cap with none. Each increment is within ``max_deviation`` of ``bin_advance``.
        """
        if self.config.output == "waveform":
            raise ValueError("spectral_frames needs a generator with output='stft' or 'sines'")
        self._check_cond(cond)
        raw_magnitude, deviation = self._head_input(cond).chunk(2, dim=1)
        low, high = LOG_MAGNITUDE_RANGE
        log_magnitude = low + (high - low) * torch.sigmoid(raw_magnitude)
        increments = self.bin_advance[:, None] + self.max_deviation * torch.tanh(deviation)
        return log_magnitude, increments

    def integrate_phase(self, increments: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """Running phase ``start + cumsum(increments)`` in [0, 2 pi), ``(B, K, L)`` -> ``(B, K, L)``.

        ``start`` (``(B, K)``, float64) is the phase before the first frame; default ``bin_start``.
        Summed in float64, so an hour of frames keeps the phase to ~1e-9 rad.
        """
        total = increments.double().cumsum(dim=-1)
        total = total + (self.bin_start.double()[:, None] if start is None else start[..., None])
        return total.remainder(2 * math.pi).to(increments.dtype)

    def frames_to_audio(self, log_magnitude: torch.Tensor, increments: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The head's synthesis: ``(B, K, L)`` each -> ``(B, 1, L * stft_hop)``."""
        if self.config.output == "stft":
            return self.overlap_add(torch.polar(torch.exp(log_magnitude), phase))
        return self.overlap_add(self.sines_spectrum(log_magnitude, increments, phase))

    def sines_spectrum(self, log_magnitude: torch.Tensor, increments: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """One stationary sinusoid per oscillator and frame, written into the STFT: ``(B, K, L)`` each -> complex ``(B, K, L)``.

        Oscillator ``k`` sits at fractional bin ``k + u`` (``u`` in (-1, 1), read back from its
        increment), with peak-bin magnitude ``exp(log_magnitude)`` and phase ``phase`` at the
        frame's first sample. Its spectrum is the Hann window's transform centred there, kept
        over ``SINE_TAPS`` bins either side (the main lobe is two bins wide; the first sidelobe
        is 31 dB down), with its negative-frequency image folded back in near 0 Hz and Nyquist, so
        the frame is exactly a windowed real sinusoid at any frequency. A partial is one
        oscillator's lobe, so its bins are coherent by construction, which a per-bin phase sum
        (the stft head) cannot guarantee.
        """
        n_fft, hop = self.config.n_fft, self.config.stft_hop
        per_bin = 2 * math.pi * hop / n_fft
        offset = torch.remainder(increments - self.bin_advance[:, None] + math.pi, 2 * math.pi) - math.pi
        offset = offset / per_bin  # (B, K, L): u, the oscillator's distance from its bin centre, in bins
        amplitude = torch.polar(torch.exp(log_magnitude), phase)
        n_bins, taps = log_magnitude.shape[1], SINE_TAPS
        # bins -taps .. n_bins - 1 + taps: each lobe lands whole, also past 0 Hz and Nyquist
        extended = sum(F.pad(amplitude * hann_transform(m - offset, n_fft), (0, 0, m + taps, taps - m)) for m in range(-taps, taps + 1))
        # A real sinusoid also has a negative-frequency image, the conjugate lobe mirrored about
        # 0 Hz (and, the DFT being periodic, about Nyquist). Bin -j's value is bin j's image; at
        # 0 Hz and Nyquist the lobe meets its own image, so those bins become real. Oscillators
        # within ``taps`` bins of either end (below 86 Hz at n_fft 1024) would otherwise lose it.
        below = extended[:, : taps + 1].flip(1).conj()  # bins 0 .. -taps, into 0 .. taps
        above = extended[:, n_bins - 1 + taps :].flip(1).conj()  # bins Nyquist + taps .. Nyquist, into Nyquist - taps .. Nyquist
        return (
            extended[:, taps : taps + n_bins]
            + F.pad(below, (0, 0, 0, n_bins - taps - 1))
            + F.pad(above, (0, 0, n_bins - taps - 1, 0))
        )

    def overlap_add(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Inverse STFT of a complex ``(B, K, L)`` spectrum -> ``(B, 1, L * stft_hop)``.

        Frame ``l`` is centred on sample ``l * hop + hop / 2``, the framing of the mel features
        (``waveform.audio.mel.hop_aligned_pad``), so the audio lines up with its conditioning;
        weighted overlap-add with a Hann window, normalised by the summed squared window.
        """
        n_fft, hop = self.config.n_fft, self.config.stft_hop
        batch, _, n_frames = spectrum.shape
        frames = torch.fft.irfft(spectrum, n=n_fft, dim=1) * self.window[:, None]  # (B, n_fft, L)
        length = n_fft + (n_frames - 1) * hop
        audio = F.fold(frames, (1, length), (1, n_fft), stride=(1, hop)).reshape(batch, 1, length)
        envelope = F.fold(
            self.window.square()[None, :, None].expand(1, n_fft, n_frames), (1, length), (1, n_fft), stride=(1, hop)
        ).reshape(1, 1, length)
        offset = (n_fft - hop) // 2
        return (audio / envelope.clamp(min=1e-6))[..., offset : offset + n_frames * hop]

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
                k, _, _ = _transposed_conv_geometry(factor)
                rf = math.ceil(rf / factor) + math.ceil(k / factor)
            rate *= factor
        return rf + c.input_kernel_size // 2


def hann_transform(x: torch.Tensor, n: int) -> torch.Tensor:
    """The DFT of a periodic Hann window of length ``n`` at (fractional) bin ``x``, scaled to 1 at 0 (complex).

    ``sum_t w(t) exp(-2 pi i x t / n)`` with the phase referenced to the window's first sample,
    so a sinusoid of phase ``theta`` at the frame start and frequency ``k + u`` bins puts
    ``exp(i theta) * hann_transform(j - k - u)`` (times its peak magnitude) into bin ``j``.
    """
    def dirichlet(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum_t exp(-2 pi i y t / n) = exp(-i pi y (n - 1) / n) sin(pi y) / sin(pi y / n)``, as (real, imaginary)."""
        small = y.abs() < 1e-4  # the limit n, without a 0/0 in either branch's gradient
        num = torch.where(small, torch.full_like(y, float(n)), torch.sin(math.pi * y))
        den = torch.where(small, torch.ones_like(y), torch.sin(math.pi * y / n))
        ratio, angle = num / den, -math.pi * y * (n - 1) / n
        return ratio * torch.cos(angle), ratio * torch.sin(angle)

    (r0, i0), (r1, i1), (r2, i2) = dirichlet(x), dirichlet(x - 1), dirichlet(x + 1)
    scale = 0.5 * n  # the centre value, so a unit-magnitude oscillator has a unit peak bin
    return torch.complex((0.5 * r0 - 0.25 * (r1 + r2)) / scale, (0.5 * i0 - 0.25 * (i1 + i2)) / scale)


def melgan_generator_flops(config: MelGANGeneratorConfig, n_frames: int) -> float:
    """Multiply-adds x 2 of the generator's convolutions for ``n_frames`` input frames (no bias/activation terms).

    A transposed conv with kernel ``k`` and stride ``r`` does ``C_in * C_out * k`` MACs per input
    sample, i.e. ``C_in * C_out * k / r`` per output sample; nearest-neighbour upsampling's width-3
    conv does ``3 C_in C_out`` per input sample.
    """
    c = config
    macs = c.cond_channels * c.initial_channels * c.input_kernel_size * n_frames
    channels, length = c.initial_channels, n_frames
    for factor in c.upsample_factors:
        k = 3 if c.upsampling == "nearest" else _transposed_conv_geometry(factor)[0]
        out_channels = channels // 2
        macs += channels * out_channels * k * length
        length *= factor
        per_unit = out_channels * out_channels * (c.residual_kernel_size + 1 + 1)
        macs += len(c.residual_dilations) * per_unit * length
        channels = out_channels
    if c.output == "waveform":
        macs += channels * 1 * c.output_kernel_size * length
        return 2.0 * macs
    n_bins = c.n_fft // 2 + 1
    macs += channels * 2 * n_bins * c.output_kernel_size * length
    # the inverse real FFT per frame, at the usual 2.5 N log2 N real operations
    return 2.0 * macs + 2.5 * c.n_fft * math.log2(c.n_fft) * length


# ---------------------------------------------------------------------------------------------
# Discriminators
# ---------------------------------------------------------------------------------------------


@dataclass
class DiscriminatorOutput:
    """What every discriminator returns, one entry per sub-discriminator (scale or period).

    ``logits[i]``: the i-th sub-discriminator's patch logits (any shape ``(B, ...)``);
    ``features[i]``: its intermediate activations (the feature-matching targets), ordered input to output.
    """

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]]
    names: list[str]

    def __add__(self, other: "DiscriminatorOutput") -> "DiscriminatorOutput":
        return DiscriminatorOutput(self.logits + other.logits, self.features + other.features, self.names + other.names)


class ScaleDiscriminator(nn.Module):
    """One MelGAN discriminator block: ``(B, 1, T)`` -> logits ``(B, 1, T / 4**n_downsample)`` plus features.

    A width-15 conv, then ``n_downsample`` grouped strided convs (stride 4, kernel 41, groups =
    in_channels / 4, channels x4 up to ``max_channels``), a width-5 conv and a width-3 conv to one logit
    channel; LeakyReLU 0.2 after each but the last.
    """

    def __init__(self, channels: int = 16, max_channels: int = 1024, n_downsample: int = 4, stride: int = 4, slope: float = 0.2):
        super().__init__()
        self.slope = slope
        layers = [nn.Sequential(nn.ReflectionPad1d(7), weight_norm(nn.Conv1d(1, channels, 15)))]
        ch = channels
        for _ in range(n_downsample):
            ch_out = min(ch * stride, max_channels)
            layers.append(
                weight_norm(
                    nn.Conv1d(ch, ch_out, kernel_size=stride * 10 + 1, stride=stride, padding=stride * 5, groups=ch // 4)
                )
            )
            ch = ch_out
        ch_out = min(ch * 2, max_channels)
        layers.append(weight_norm(nn.Conv1d(ch, ch_out, 5, padding=2)))
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv1d(ch_out, 1, 3, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        h = audio
        for layer in self.layers:
            h = F.leaky_relu(layer(h), self.slope)
            features.append(h)
        logits = self.output(h)
        features.append(logits)
        return logits, features


class MultiScaleDiscriminator(nn.Module):
    """MelGAN's discriminator: ``n_scales`` :class:`ScaleDiscriminator` s on audio average-pooled by 1, 2, 4, ...

    ``audio: (B, 1, T)`` -> :class:`DiscriminatorOutput` with ``n_scales`` entries.
    """

    def __init__(self, n_scales: int = 3, channels: int = 16, max_channels: int = 1024, n_downsample: int = 4):
        super().__init__()
        if n_scales < 1:
            raise ValueError(f"n_scales must be >= 1, got {n_scales}")
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(channels, max_channels, n_downsample) for _ in range(n_scales)
        )
        # kernel 4, stride 2: each scale sees the previous one low-passed and halved.
        self.pool = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        logits, features, names = [], [], []
        x = audio
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                x = self.pool(x)  # (B, 1, T / 2**i)
            out, feats = disc(x)
            logits.append(out)
            features.append(feats)
            names.append(f"scale{2**i}")
        return DiscriminatorOutput(logits, features, names)

    @classmethod
    def tiny(cls) -> "MultiScaleDiscriminator":
        return cls(n_scales=3, channels=4, max_channels=32, n_downsample=2)


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's period discriminator: audio ``(B, 1, T)`` folded to ``(B, 1, ceil(T/p), p)``, then
    2-D convs with kernel ``(5, 1)`` and stride ``(3, 1)`` so each column (one phase of the period)
    is judged separately. LeakyReLU 0.1.
    """

    def __init__(self, period: int, channels: list[int] | None = None, slope: float = 0.1):
        super().__init__()
        self.period = period
        self.slope = slope
        channels = channels or [32, 128, 512, 1024, 1024]
        layers, ch = [], 1
        for i, ch_out in enumerate(channels):
            stride = 3 if i < len(channels) - 1 else 1
            layers.append(weight_norm(nn.Conv2d(ch, ch_out, (5, 1), stride=(stride, 1), padding=(2, 0))))
            ch = ch_out
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv2d(ch, 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = audio.shape
        rest = (-t) % self.period
        if rest:
            audio = F.pad(audio, (0, rest), mode="reflect" if t > rest else "constant")
        h = audio.view(b, c, (t + rest) // self.period, self.period)  # (B, 1, T/p, p)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), self.slope)
            features.append(h)
        logits = self.output(h)
        features.append(logits)
        return logits.flatten(1, -1), features


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's multi-period discriminator (periods 2, 3, 5, 7, 11): ``(B, 1, T)`` -> :class:`DiscriminatorOutput`."""

    def __init__(self, periods: list[int] | None = None, channels: list[int] | None = None):
        super().__init__()
        self.periods = list(periods) if periods is not None else [2, 3, 5, 7, 11]
        if not self.periods or any(p < 1 for p in self.periods):
            raise ValueError(f"periods must be positive integers, got {self.periods}")
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in self.periods)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        logits, features, names = [], [], []
        for p, disc in zip(self.periods, self.discriminators):
            out, feats = disc(audio)
            logits.append(out)
            features.append(feats)
            names.append(f"period{p}")
        return DiscriminatorOutput(logits, features, names)

    @classmethod
    def tiny(cls) -> "MultiPeriodDiscriminator":
        return cls(periods=[2, 3, 5], channels=[4, 8, 16])


class CombinedDiscriminator(nn.Module):
    """Several discriminators judged together; their outputs are concatenated in order."""

    def __init__(self, discriminators: list[nn.Module]):
        super().__init__()
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        outputs = [d(audio) for d in self.discriminators]
        result = outputs[0]
        for out in outputs[1:]:
            result = result + out
        return result


def build_discriminator(kind: str = "msd", size: str = "paper") -> nn.Module:
    """``kind``: ``"msd"`` (MelGAN), ``"mpd"`` (HiFi-GAN) or ``"msd+mpd"``; ``size``: ``"paper"`` or ``"tiny"``."""
    if size not in ("paper", "tiny"):
        raise ValueError(f"unknown discriminator size {size!r} (expected 'paper' or 'tiny')")
    makers = {
        "msd": (MultiScaleDiscriminator, MultiScaleDiscriminator.tiny),
        "mpd": (MultiPeriodDiscriminator, MultiPeriodDiscriminator.tiny),
    }
    parts = kind.split("+")
    if not parts or any(p not in makers for p in parts):
        raise ValueError(f"unknown discriminator kind {kind!r} (expected 'msd', 'mpd' or 'msd+mpd')")
    modules = [makers[p][0 if size == "paper" else 1]() for p in parts]
    return modules[0] if len(modules) == 1 else CombinedDiscriminator(modules)
