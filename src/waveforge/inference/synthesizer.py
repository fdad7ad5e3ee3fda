"""Synthesizer: an exported model plus the features it was trained on."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from waveforge.audio.io import load_audio
from waveforge.audio.mel import MelConfig, MelSpectrogram, log_mel_ceiling
from waveforge.errors import BadInputError
from waveforge.features import FeatureConfig
from waveforge.inference.families import FamilyAdapter, SynthesisOptions, get_adapter
from waveforge.inference.modelfile import ModelFile, read_model_file
from waveforge.inference.validation import build_model
from waveforge.inference.inputs import check_playable, check_real_array, read_npy
from waveforge.midi.roll import PianoRollConfig, PianoRollWindows, load_midi, sustained_notes
from waveforge.utils.limits import check_seconds


class Synthesizer:
    """``vocode(audio_or_mel)``, ``render(midi)`` and ``sample(seconds)`` for any family.

    Long conditioned inputs are synthesised in chunks of ``adapter.chunk_frames(model)`` frames, each
    with ``adapter.context_frames(model)`` frames of context on both sides that are computed and then
    dropped, so memory stays bounded and the seams match a whole-input pass; families whose
    ``context_frames`` is ``None`` synthesise whole inputs. The chunks come from
    ``adapter.synthesize_chunked`` (MelGAN's spectral heads carry their running phase from chunk to chunk).
    """

    def __init__(self, model: nn.Module, adapter: FamilyAdapter, model_file: ModelFile, chunk_frames: int | None = None):
        self.model = model
        self.adapter = adapter
        self.model_file = model_file
        self.family = model_file.family
        self.feature: FeatureConfig | None = model_file.feature
        self.sample_rate = model_file.sample_rate
        if chunk_frames is None:  # the family's preference (MelGAN: small chunks stay in cache)
            chunk_frames = adapter.chunk_frames(model)
        self.chunk_frames = chunk_frames
        self._mel = MelSpectrogram(self.feature) if isinstance(self.feature, MelConfig) else None

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Synthesizer":
        model_file = read_model_file(path)
        adapter = get_adapter(model_file.family, str(path))
        model = build_model(str(path), adapter, model_file).to(device).eval()
        front = adapter.synthesizer_class(model)  # a family with its own front end (notes2mel: two stages)
        return (front or cls)(model, adapter, model_file)

    def compile(self) -> "Synthesizer":
        """``torch.compile`` the model (families whose adapter allows it: MelGAN), in place; returns self.

        Inductor fuses the activations and paddings into its generated C++ loops (``waveforge bench``:
        ``melgan-paper/vocode-compiled``); outputs equal eager mode to float32 rounding. The first call
        for each input length compiles, so it pays off on long inputs and in long-lived processes.
        """
        if not self.adapter.compilable:
            raise BadInputError(None, f"compiling is available for MelGAN models, not {self.family}")
        if not cxx_compiler_available():
            raise BadInputError(None, "compiling needs a C++ compiler for torch.compile (g++ or clang++); none was found")
        self.model = torch.compile(self.model)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hop_length(self) -> int:
        if self.feature is None:
            raise ValueError("unconditional model has no hop length")
        return self.feature.hop_length

    # ----------------------------------------------------------------------------------------
    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """``(1, T)`` or ``(B, 1, T)`` audio at the model rate -> ``(B, n_mels, T // hop)``."""
        if self._mel is None:
            raise BadInputError(None, f"this {self.family} model is conditioned on {_kind(self.feature)}, not on mel-spectrograms")
        if audio.dim() == 2:
            audio = audio.unsqueeze(0)
        return self._mel(audio)

    def vocode(self, audio_or_mel: torch.Tensor | np.ndarray | str | os.PathLike, options: SynthesisOptions | None = None) -> torch.Tensor:
        """A waveform ``(1, T)`` / ``(B, 1, T)``, a mel ``(n_mels, F)`` / ``(B, n_mels, F)``, or a path
        to an audio file or ``.npy`` mel -> ``(B, 1, F * hop)`` audio."""
        where = str(audio_or_mel) if isinstance(audio_or_mel, (str, os.PathLike)) else None
        if not isinstance(self.feature, MelConfig):
            raise BadInputError(where, f"this {self.family} model is conditioned on {_kind(self.feature)}; it cannot vocode mel-spectrograms")
        if where is not None:
            audio_or_mel = self._read_vocode_input(Path(audio_or_mel))
        x = check_real_array(where, audio_or_mel)
        n_mels = self.feature.n_mels
        is_mel = x.dim() >= 2 and x.shape[-2] == n_mels and not (x.dim() == 3 and x.shape[1] == 1)
        if x.dim() == 2 and x.shape[0] == 1:
            is_mel = False
        if is_mel:
            mel = self.check_mel(x if x.dim() == 3 else x.unsqueeze(0), where)
        else:
            if not torch.isfinite(x).all():
                raise BadInputError(where, "audio holds NaN or infinite samples")
            if x.shape[-1] < self.feature.n_fft:
                raise BadInputError(where, f"audio of {x.shape[-1]} samples is shorter than one analysis window ({self.feature.n_fft} samples)")
            check_seconds(where, x.shape[-1] / self.sample_rate)
            mel = self.mel(x)
        return self.synthesize(mel, options, where=where)

    def check_mel(self, mel: torch.Tensor, where: str | None = None) -> torch.Tensor:
        if not isinstance(self.feature, MelConfig):
            raise BadInputError(where, f"this {self.family} model is conditioned on {_kind(self.feature)}; it cannot vocode mel-spectrograms")
        if mel.dim() != 3 or mel.shape[1] != self.feature.n_mels:
            bands = mel.shape[-2] if mel.dim() >= 2 else "?"
            raise BadInputError(where, f"mel has {bands} bands, but this model takes {self.feature.n_mels} (shape {tuple(mel.shape)})")
        if mel.shape[0] == 0 or mel.shape[-1] == 0:
            raise BadInputError(where, f"mel has no frames (shape {tuple(mel.shape)})")
        if not torch.isfinite(mel).all():
            raise BadInputError(where, "mel holds NaN or infinite values")
        # a natural-log mel of audio within [-1, 1] cannot exceed log(window sum x bins); far above it the
        # model saturates into full-scale output
        ceiling = log_mel_ceiling(self.feature) + 1.0
        peak = float(mel.max())
        if peak > ceiling:
            raise BadInputError(where, f"mel values reach {peak:.3g}; a log-mel of audio within [-1, 1] stays below {ceiling:.1f} (NaN or infinite output otherwise)")
        check_seconds(where, mel.shape[-1] * self.feature.hop_length / self.sample_rate)
        return mel

    def _read_vocode_input(self, path: Path) -> torch.Tensor:
        if path.suffix.lower() == ".npy":
            mel = read_npy(path)
            if mel.dim() == 2:
                mel = mel.unsqueeze(0)
            return self.check_mel(mel, str(path))
        return load_audio(path, self.sample_rate)

    def render(self, midi, options: SynthesisOptions | None = None) -> torch.Tensor:
        """A MIDI path or ``PrettyMIDI`` -> ``(1, 1, T)`` audio, for piano-roll-conditioned models.

        Notes outside the piano's A0-C8 are dropped with one warning line on stderr that counts
        them; a file with no playable note is refused."""
        where, roll = self._render_roll(midi)
        return self.synthesize(roll, options, where=where)

    def render_stream(self, midi, options: SynthesisOptions | None = None) -> Iterator[torch.Tensor]:
        """:meth:`render` as consecutive ``(1, 1, n)`` pieces, for writing as they come
        (:func:`waveforge.audio.io.save_audio_stream`): only the roll and one chunk's audio are
        held, not the whole output."""
        where, roll = self._render_roll(midi)
        return self.synthesize_stream(roll, options, where=where)

    def _render_roll(self, midi) -> tuple[str | None, torch.Tensor]:
        where = str(midi) if isinstance(midi, (str, os.PathLike)) else None
        if not isinstance(self.feature, PianoRollConfig):
            raise BadInputError(where, f"this {self.family} model is conditioned on {_kind(self.feature)}; it cannot render MIDI")
        if isinstance(midi, (str, os.PathLike)):
            midi = load_midi(midi)
        check_playable(where, midi)
        notes_end = int(math.ceil(max(n.end for n in sustained_notes(midi, self.feature.sustain)) * self.feature.frame_rate))
        tail = int(math.ceil(0.5 * self.feature.frame_rate))  # half a second for the release to ring out
        check_seconds(where, (notes_end + tail) / self.feature.frame_rate, "MIDI duration")
        # computed window by window as synthesis slices it: a long render never holds the whole roll
        return where, PianoRollWindows(midi, self.feature, n_frames=notes_end + tail)

    def sample(self, seconds: float, batch_size: int = 1, options: SynthesisOptions | None = None) -> torch.Tensor:
        """Unconditional samples, ``(batch_size, 1, round(seconds * sample_rate))``."""
        if self.feature is not None:
            raise BadInputError(None, f"this {self.family} model is conditioned on {_kind(self.feature)}; use vocode or render")
        options = options or SynthesisOptions()
        n = int(round(seconds * self.sample_rate))
        check_seconds(None, seconds)
        with torch.inference_mode():
            audio = self.adapter.synthesize(self.model, None, n, _with_seed(dataclasses.replace(options, batch_size=batch_size)))
        return _finite_output(None, audio)

    # ----------------------------------------------------------------------------------------
    def synthesize(self, cond: torch.Tensor, options: SynthesisOptions | None = None, where: str | None = None) -> torch.Tensor:
        """``cond: (B, C, F)`` -> ``(B, 1, F * hop)``, chunked when the family allows it; non-finite
        output (a diverged model, an extreme input) raises BadInputError naming ``where``."""
        return torch.cat(list(self.synthesize_stream(cond, options, where)), dim=-1)

    def synthesize_stream(self, cond: torch.Tensor, options: SynthesisOptions | None = None, where: str | None = None) -> Iterator[torch.Tensor]:
        """:meth:`synthesize` as consecutive ``(B, 1, n)`` pieces (one piece for families that do not chunk)."""
        options = options or SynthesisOptions()
        cond = cond.to(self.device)
        hop = self.hop_length
        n_frames = cond.shape[-1]
        context = self.adapter.context_frames(self.model)
        _with_seed(options)
        with torch.inference_mode():
            if context is None or n_frames <= self.chunk_frames:
                whole = cond if isinstance(cond, torch.Tensor) else cond[..., 0:n_frames]
                pieces = iter([self.adapter.synthesize(self.model, whole, n_frames * hop, options)])
            else:  # families whose chunks carry state override synthesize_chunked (MelGAN's running phase)
                pieces = self.adapter.synthesize_chunked(self.model, cond, hop, self.chunk_frames, context, options)
            for piece in pieces:
                yield _finite_output(where, piece)


def _finite_output(where: str | None, audio: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(audio).all():
        raise BadInputError(where, "synthesis produced NaN or infinite samples (a diverged model or an extreme input); nothing written")
    return audio


def cxx_compiler_available() -> bool:
    """Whether ``torch.compile``'s CPU backend (Inductor) can find a C++ compiler."""
    return any(shutil.which(name) for name in (os.environ.get("CXX") or "g++", "c++", "clang++"))


def _with_seed(options: SynthesisOptions) -> SynthesisOptions:
    if options.seed is not None:
        torch.manual_seed(options.seed)
    return options


def _kind(feature: FeatureConfig | None) -> str:
    if feature is None:
        return "nothing (unconditional)"
    return "mel-spectrograms" if isinstance(feature, MelConfig) else "piano rolls"
