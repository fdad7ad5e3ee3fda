"""Notes-to-mel models, alone or composed with a mel vocoder (the two-stage MIDI renderer).

A model file of family ``notes2mel`` holds ``model_config``::

    {"objective": "regression" | "diffusion", "notes2mel": Notes2MelConfig, "mel": MelConfig,
     # diffusion only:
     "prediction": "v", "sigma_data": 1.0, "sampling": SamplingConfig,
     # a composed file only: the vocoder's own model file, its weights under "vocoder/"
     "vocoder": {"family": ..., "model_config": ..., "feature": ..., "sample_rate": ..., "version": ...}}

``feature`` is the ``PianoRollConfig`` the model reads, so to :func:`waveforge.evaluate.evaluate_model`
a composed model looks like any piano-roll renderer. ``waveforge.load`` returns a
:class:`waveforge.inference.twostage.NotesToMelSynthesizer` (bare) or
:class:`~waveforge.inference.twostage.ComposedRenderer` (with its vocoder).

Chunking. The mel stage runs in chunks with context either side. The regression model's output
depends on ``receptive_field_frames`` either side, so that much context makes chunks equal a
whole-input pass. A deterministic diffusion sampler (euler, heun, ddim with eta 0, dpmpp-2m) makes
``n`` denoiser evaluations, each reaching ``receptive_field_frames`` further, and starts from noise
drawn per block of :data:`NOISE_BLOCK` frames from a seed (:func:`frame_noise`), so a chunk draws
the very noise the whole pass draws for its frames: with ``n x receptive_field_frames`` of context
(capped at :data:`MAX_DIFFUSION_CONTEXT`) its chunks equal the whole pass too. Ancestral samplers
(ddpm, ddim with eta > 0) draw fresh noise at each step, so their chunks are only statistically alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from waveforge.audio.mel import MelConfig, log_mel_ceiling
from waveforge.diffusion import CFGDenoiser, Denoiser, SamplingConfig, get_sampler, get_sigmas
from waveforge.errors import BadInputError
from waveforge.inference.families import FamilyAdapter, SynthesisOptions
from waveforge.models.notes2mel import Notes2Mel, Notes2MelConfig, Notes2MelDenoiser

OBJECTIVES = ("regression", "diffusion")
#: frames per independently seeded block of starting noise
NOISE_BLOCK = 64
#: the most context a diffusion chunk takes either side, whatever the step count
MAX_DIFFUSION_CONTEXT = 2048
#: prefix of the vocoder's weights in a composed file
VOCODER_PREFIX = "vocoder/"


def frame_noise(batch: int, n_mels: int, lo: int, hi: int, seed: int, device=None, dtype=torch.float32) -> Tensor:
    """Standard normal ``(batch, n_mels, hi - lo)`` for frames ``[lo, hi)`` of a piece, the same for a
    frame whichever chunk asks: block ``k`` (frames ``[k * NOISE_BLOCK, (k + 1) * NOISE_BLOCK)``) is
    drawn from a generator seeded by ``(seed, k)``."""
    pieces = []
    for block in range(lo // NOISE_BLOCK, (hi - 1) // NOISE_BLOCK + 1):
        g = torch.Generator().manual_seed((int(seed) * 0x9E37_79B9_7F4A_7C15 + block) % 2**63)  # one stream per (seed, block)
        noise = torch.randn((batch, n_mels, NOISE_BLOCK), generator=g)
        first = block * NOISE_BLOCK
        pieces.append(noise[..., max(lo, first) - first : min(hi, first + NOISE_BLOCK) - first])
    return torch.cat(pieces, dim=-1).to(device=device, dtype=dtype)


def sampler_evaluations(sampler: str, steps: int) -> int:
    """Denoiser evaluations a sampler makes over ``steps`` steps ending at sigma = 0."""
    return 2 * steps - 1 if sampler.replace("-", "_") == "heun" else steps


class Notes2MelStage(nn.Module):
    """The notes-to-mel stage of an exported model: ``mel(roll, options) -> (B, n_mels, F)`` log-mel.

    ``objective`` is ``"regression"`` (``model`` a :class:`Notes2Mel`) or ``"diffusion"`` (``model``
    a :class:`Notes2MelDenoiser`, wrapped in a :class:`Denoiser`, sampled with ``sampling``).
    """

    def __init__(self, objective: str, model: nn.Module, mel_config: MelConfig, denoiser: Denoiser | None = None,
                 sampling: SamplingConfig | None = None):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
        self.model = model
        self.mel_config = mel_config
        self.denoiser = denoiser
        self.sampling = sampling

    @property
    def receptive_field_frames(self) -> int:
        return self.model.receptive_field_frames

    def sampling_for(self, options: SynthesisOptions) -> SamplingConfig:
        """The model's sampling settings with the call's steps / sampler, and the call's guidance scale
        (as for DiffWave: ``SynthesisOptions.guidance``, default 1, the conditional model)."""
        assert self.sampling is not None
        overrides = {"guidance": options.guidance}
        if options.steps is not None:
            overrides["steps"] = options.steps
        if options.sampler:
            overrides["sampler"] = options.sampler.replace("-", "_")
        try:
            return SamplingConfig(**{**self.sampling.to_dict(), **overrides})
        except ValueError as e:
            raise BadInputError(None, str(e)) from None

    def context_frames(self, options: SynthesisOptions) -> int:
        """Context either side that makes a chunk equal the whole pass (see the module docstring)."""
        if self.objective == "regression":
            return self.receptive_field_frames
        sampling = self.sampling_for(options)
        return min(MAX_DIFFUSION_CONTEXT, sampler_evaluations(sampling.sampler, sampling.steps) * self.receptive_field_frames)

    def chunk_frames(self, options: SynthesisOptions) -> int:
        """Chunks at least 4x their context on each side (the context is computed and thrown away)."""
        return max(1024, 4 * self.context_frames(options))

    def mel(self, roll: Tensor, options: SynthesisOptions, first_frame: int = 0, seed: int = 0) -> Tensor:
        """``roll: (B, 264, F)`` -> ``(B, n_mels, F)``; ``first_frame`` / ``seed`` key the diffusion noise."""
        if self.objective == "regression":
            return self.bounded(self.model(roll))
        sampling = self.sampling_for(options)
        sigmas = get_sigmas(sampling.schedule, sampling.steps, **sampling.schedule_kwargs).to(roll)
        noise = frame_noise(roll.shape[0], self.model.config.n_mels, first_frame, first_frame + roll.shape[-1], seed, roll.device, roll.dtype)
        denoiser: nn.Module = self.denoiser
        if sampling.guidance != 1.0:
            denoiser = CFGDenoiser(self.denoiser, sampling.guidance)
            cond = denoiser.prepare(roll)
        else:
            cond = self.denoiser.prepare(roll)
        kwargs = {"eta": sampling.eta} if sampling.sampler == "ddim" else {}
        x = get_sampler(sampling.sampler)(denoiser, noise * sigmas[0], sigmas, cond, **kwargs)  # (B, n_mels, F)
        return self.bounded(self.model.denormalise(x))

    def bounded(self, mel: Tensor) -> Tensor:
        """The log-mel within what audio can have: nothing quieter than the floor, nothing louder than full
        scale (guidance extrapolates, and a vocoder refuses a mel beyond full scale)."""
        return mel.clamp(self.model.config.floor, log_mel_ceiling(self.mel_config))

    def mel_chunked(self, roll: Tensor, options: SynthesisOptions, chunk_frames: int | None = None, seed: int | None = None) -> Tensor:
        """``(B, 264, F) -> (B, n_mels, F)`` in chunks with context at the seams (memory bounded by the chunk)."""
        if seed is None:
            seed = options.seed if options.seed is not None else int(torch.randint(0, 2**62, ()))
        context = self.context_frames(options)
        chunk = chunk_frames or self.chunk_frames(options)
        n_frames = roll.shape[-1]
        pieces = []
        for start in range(0, n_frames, chunk):
            stop = min(start + chunk, n_frames)
            lo, hi = max(0, start - context), min(n_frames, stop + context)
            mel = self.mel(roll[..., lo:hi], options, first_frame=lo, seed=seed)
            pieces.append(mel[..., start - lo : stop - lo])
        return torch.cat(pieces, dim=-1)


class ComposedModel(nn.Module):
    """A notes-to-mel stage and the mel vocoder (an already-built model of its own family) in one module."""

    def __init__(self, stage: Notes2MelStage, vocoder: nn.Module):
        super().__init__()
        self.stage = stage
        self.vocoder = vocoder


def build_stage(model_config: dict, state_dict: dict[str, Tensor]) -> Notes2MelStage:
    objective = model_config.get("objective")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown notes2mel objective {objective!r}")
    config = Notes2MelConfig(**model_config["notes2mel"])
    mel_config = MelConfig(**{k: v for k, v in model_config["mel"].items() if k != "kind"})
    if objective == "regression":
        model = Notes2Mel(config)
        model.load_state_dict(state_dict)
        return Notes2MelStage(objective, model.eval(), mel_config).eval()
    model = Notes2MelDenoiser(config)
    model.load_state_dict(state_dict)
    denoiser = Denoiser(model, model_config["prediction"], model_config["sigma_data"])
    return Notes2MelStage(objective, model, mel_config, denoiser, SamplingConfig(**model_config.get("sampling", {}))).eval()


class Notes2MelAdapter(FamilyAdapter):
    name = "notes2mel"
    # context_frames is None (the default): the two-stage synthesizer chunks each stage itself

    def build(self, model_config: dict, state_dict: dict[str, Tensor]) -> nn.Module:
        notes_state = {k: v for k, v in state_dict.items() if not k.startswith(VOCODER_PREFIX)}
        stage = build_stage(model_config, notes_state)
        vocoder_file = model_config.get("vocoder")
        if vocoder_file is None:
            if len(notes_state) != len(state_dict):  # weights nothing would load: the file is not what it says
                raise ValueError(f"the file holds {VOCODER_PREFIX} tensors but its config names no vocoder")
            return stage
        from waveforge.inference.families import get_adapter

        adapter = get_adapter(vocoder_file["family"])
        vocoder_state = {k[len(VOCODER_PREFIX):]: v for k, v in state_dict.items() if k.startswith(VOCODER_PREFIX)}
        return ComposedModel(stage, adapter.build(vocoder_file["model_config"], vocoder_state))

    def synthesizer_class(self, model: nn.Module):
        from waveforge.inference.twostage import ComposedRenderer, NotesToMelSynthesizer

        return ComposedRenderer if isinstance(model, ComposedModel) else NotesToMelSynthesizer

    def synthesize(self, model: nn.Module, cond: Tensor | None, n_samples: int, options: SynthesisOptions) -> Tensor:
        raise BadInputError(None, "a notes-to-mel model makes mel-spectrograms; render through a mel vocoder (--vocoder)")


ADAPTER = Notes2MelAdapter()
