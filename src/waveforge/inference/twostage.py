"""The two-stage MIDI renderer: a notes-to-mel model, then any mel vocoder whose ``MelConfig`` matches.

* :class:`NotesToMelSynthesizer`: what ``waveforge.load`` returns for a bare notes-to-mel model.
  ``mel_from_roll`` / ``render_mel`` give its log-mel; ``render(midi, vocoder=...)`` and
  ``synthesize(roll, vocoder=...)`` give audio through a vocoder (a path or a loaded ``Synthesizer``).
* :class:`ComposedRenderer`: a notes-to-mel model and its vocoder from one file (``waveforge export
  NOTES --vocoder VOCODER -o piano.safetensors``); ``synthesize(roll) -> audio``, so to ``waveforge
  eval`` it is a piano-roll renderer like any other.

Both stages are chunked: the mel stage by :meth:`Notes2MelStage.mel_chunked`, the vocoder by its
own ``Synthesizer.synthesize``. The whole mel of a piece is kept between them: ``n_mels / hop`` of
the audio's size (0.31 for 80 bands at hop 256), small beside the output audio itself.

Sampling options (``steps``, ``sampler``, ``guidance``, ``seed``) apply to the notes-to-mel stage;
the vocoder gets ``vocoder_options`` (default: its own defaults, with the same seed).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import fields
from pathlib import Path

import torch
from torch import Tensor

from waveforge.audio.mel import MelConfig, MelSpectrogram
from waveforge.errors import BadInputError
from waveforge.inference.families import SynthesisOptions
from waveforge.inference.modelfile import ModelFile, read_model_file, save_model_file
from waveforge.inference.inputs import check_playable
from waveforge.inference.synthesizer import Synthesizer
from waveforge.midi.roll import PianoRollConfig, load_midi, piano_roll


def check_vocoder(mel_config: MelConfig, vocoder_feature, vocoder_family: str, where: str | os.PathLike | None) -> None:
    """One ``BadInputError`` line when the vocoder is not a mel model or its mel settings differ."""
    if not isinstance(vocoder_feature, MelConfig):
        kind = "nothing (unconditional)" if vocoder_feature is None else "piano rolls"
        raise BadInputError(where, f"not a mel vocoder: this {vocoder_family} model is conditioned on {kind}")
    differences = [
        f"{f.name} {getattr(vocoder_feature, f.name)} (notes model: {getattr(mel_config, f.name)})"
        for f in fields(MelConfig)
        if getattr(vocoder_feature, f.name) != getattr(mel_config, f.name)
    ]
    if differences:
        raise BadInputError(where, "the vocoder's mel settings differ from the notes-to-mel model's: " + ", ".join(differences))


def _roll_with_tail(midi, feature: PianoRollConfig) -> Tensor:
    """``(1, 264, F)``: the MIDI's roll plus half a second for the release to ring out (as ``Synthesizer.render``)."""
    where = str(midi) if isinstance(midi, (str, os.PathLike)) else None
    if isinstance(midi, (str, os.PathLike)):
        midi = load_midi(midi)
    check_playable(where, midi)  # unplayable notes counted, none playable refused, duration limit (as Synthesizer.render)
    roll = piano_roll(midi, feature)
    tail = int(math.ceil(0.5 * feature.frame_rate))
    return torch.nn.functional.pad(roll, (0, tail)).unsqueeze(0)


class NotesToMelSynthesizer(Synthesizer):
    """A notes-to-mel model: piano roll -> log-mel, and through a given mel vocoder, audio.

    ``mel_chunk_frames`` overrides the mel stage's chunk (default: the stage's choice).
    """

    mel_chunk_frames: int | None = None

    @property
    def stage(self):
        return self.model

    @property
    def mel_config(self) -> MelConfig:
        return self.stage.mel_config

    @property
    def objective(self) -> str:
        return self.stage.objective

    def mel_from_roll(self, roll: Tensor, options: SynthesisOptions | None = None) -> Tensor:
        """``roll: (B, 264, F)`` -> log-mel ``(B, n_mels, F)`` in the vocoder's ``MelConfig``."""
        options = options or SynthesisOptions()
        if roll.dim() != 3 or roll.shape[1] != self.feature.channels:
            raise BadInputError(None, f"piano roll must be (B, {self.feature.channels}, F), got {tuple(roll.shape)}")
        with torch.inference_mode():
            return self.stage.mel_chunked(roll.to(self.device), options, self.mel_chunk_frames)

    def render_mel(self, midi, options: SynthesisOptions | None = None) -> Tensor:
        """A MIDI path or ``PrettyMIDI`` -> log-mel ``(1, n_mels, F)``."""
        return self.mel_from_roll(_roll_with_tail(midi, self.feature), options)

    def load_vocoder(self, vocoder: "Synthesizer | str | os.PathLike") -> Synthesizer:
        """A vocoder path or ``Synthesizer``, checked against this model's mel settings."""
        where = None
        if isinstance(vocoder, (str, os.PathLike)):
            from waveforge.pretrained import resolve

            where = str(vocoder)
            if not resolve(vocoder).is_file():  # a shipped vocoder's name, or a path
                raise BadInputError(vocoder, "no such vocoder model file")
            vocoder = Synthesizer.load(vocoder)
        if not isinstance(vocoder, Synthesizer):
            raise TypeError(f"vocoder must be a path or a Synthesizer, got {type(vocoder).__name__}")
        if isinstance(vocoder, NotesToMelSynthesizer):
            raise BadInputError(where, "not a mel vocoder: this is a notes-to-mel model")
        check_vocoder(self.mel_config, vocoder.feature, vocoder.family, where)
        if vocoder.device != self.device:
            vocoder.model.to(self.device)
        return vocoder

    def synthesize(self, cond: Tensor, options: SynthesisOptions | None = None, vocoder=None,
                   vocoder_options: SynthesisOptions | None = None) -> Tensor:
        """``cond: (B, 264, F)`` -> ``(B, 1, F * hop)`` through ``vocoder`` (required for a bare model)."""
        if vocoder is None:
            raise BadInputError(None, "a notes-to-mel model makes mel-spectrograms; give a mel vocoder (--vocoder VOCODER)")
        vocoder = self.load_vocoder(vocoder)
        options = options or SynthesisOptions()
        mel = self.mel_from_roll(cond, options)
        vocoder_options = vocoder_options or SynthesisOptions(seed=options.seed, progress=options.progress)
        return vocoder.synthesize(mel, vocoder_options)

    def render(self, midi, options: SynthesisOptions | None = None, vocoder=None, vocoder_options: SynthesisOptions | None = None) -> Tensor:
        """A MIDI path or ``PrettyMIDI`` -> ``(1, 1, T)`` audio through ``vocoder`` (path or ``Synthesizer``)."""
        if vocoder is None and not isinstance(self, ComposedRenderer):
            raise BadInputError(midi if isinstance(midi, (str, os.PathLike)) else None,
                                "a notes-to-mel model makes mel-spectrograms; give a mel vocoder (--vocoder VOCODER)")
        vocoder = self.load_vocoder(vocoder) if vocoder is not None else None  # checked before the MIDI is read
        return self.synthesize(_roll_with_tail(midi, self.feature), options, vocoder, vocoder_options)


class ComposedRenderer(NotesToMelSynthesizer):
    """A notes-to-mel model with its mel vocoder, loaded from one file: ``synthesize(roll) -> audio``."""

    def __init__(self, model, adapter, model_file: ModelFile, chunk_frames: int | None = None):
        super().__init__(model, adapter, model_file, chunk_frames)
        from waveforge.inference.families import get_adapter

        vocoder_meta = model_file.model_config["vocoder"]
        vocoder_file = ModelFile(
            family=vocoder_meta["family"], model_config=vocoder_meta["model_config"],
            feature=MelConfig(**{k: v for k, v in vocoder_meta["feature"].items() if k != "kind"}),
            sample_rate=int(vocoder_meta["sample_rate"]), state_dict={}, version=vocoder_meta.get("version", "?"),
        )
        self.vocoder = Synthesizer(model.vocoder, get_adapter(vocoder_file.family), vocoder_file)

    @property
    def stage(self):
        return self.model.stage

    def synthesize(self, cond: Tensor, options: SynthesisOptions | None = None, vocoder=None,
                   vocoder_options: SynthesisOptions | None = None) -> Tensor:
        return super().synthesize(cond, options, self.vocoder if vocoder is None else vocoder, vocoder_options)


def compose_model_file(notes: ModelFile, vocoder: ModelFile, where_vocoder: str | os.PathLike | None = None) -> ModelFile:
    """One model file holding a notes-to-mel model and a checked mel vocoder (weights under ``vocoder/``)."""
    from waveforge.inference.families.notes2mel import VOCODER_PREFIX

    if notes.family != "notes2mel":
        raise BadInputError(None, f"--vocoder composes a notes-to-mel model with a vocoder; this is a {notes.family} model")
    if "vocoder" in notes.model_config:
        raise BadInputError(None, "this notes-to-mel model already holds a vocoder")
    if vocoder.family == "notes2mel":
        raise BadInputError(where_vocoder, "not a mel vocoder: this is a notes-to-mel model")
    mel = MelConfig(**{k: v for k, v in notes.model_config["mel"].items() if k != "kind"})
    check_vocoder(mel, vocoder.feature, vocoder.family, where_vocoder)
    config = {**notes.model_config, "vocoder": {
        "family": vocoder.family, "model_config": vocoder.model_config, "feature": vocoder.feature.to_dict(),
        "sample_rate": vocoder.sample_rate, "version": vocoder.version, "extra": vocoder.extra,
    }}
    state = {**notes.state_dict, **{VOCODER_PREFIX + k: v for k, v in vocoder.state_dict.items()}}
    return ModelFile(notes.family, config, notes.feature, notes.sample_rate, state, extra={**notes.extra, "vocoder_family": vocoder.family})


# -- evaluation of the mel stage alone ---------------------------------------------------------------


def band_variance(log_mel: Tensor) -> float:
    """Mean over bands of the log-mel's variance over time (``(..., n_mels, F)``); over-smoothed mels score low."""
    return float(log_mel.float().var(dim=-1).mean())


def evaluate_mel_stage(synth: NotesToMelSynthesizer, data_root, split: str = "test", max_pieces: int | None = None,
                       seconds: float = 10.0, options: SynthesisOptions | None = None, griffin_lim_iters: int = 64,
                       transcriber=None, fluidsynth_soundfont: str | os.PathLike | None = None) -> dict:
    """The notes-to-mel stage on its own, on ``split``'s pieces.

    Its mel and the reference audio's mel, each through Griffin-Lim, scored against the recording
    (so the vocoder is out of the comparison); and in the mel domain, the log-mel L1 to the
    reference mel and the per-band variance over time, for the model and for FluidSynth's render
    of the same MIDI (``fluidsynth_soundfont``, default pretty_midi's: on a corpus rendered with
    other soundfonts, "another instrument", the figure a learned renderer should beat). Regression
    over-smooths: its variance falls below the reference's. With a ``transcriber``
    (``eval --notes``), both Griffin-Lim outputs and the reference are scored note by note.
    """
    from waveforge.audio.griffinlim import griffin_lim
    from waveforge.audio.io import audio_info, load_audio
    from waveforge.data.maestro import MaestroIndex
    from waveforge.evaluate import _mean, _note_scores
    from waveforge.midi.render import default_soundfont, render_midi
    from waveforge.metrics import all_metrics
    from waveforge.utils.progress import progress

    index = MaestroIndex(data_root)
    records = index.split(split)[:max_pieces]
    if not records:
        raise BadInputError(data_root, f"split {split!r} has no pieces")
    options = options or SynthesisOptions()
    mel_config, feature = synth.mel_config, synth.feature
    analysis = MelSpectrogram(mel_config)
    metric_mel = MelConfig(sample_rate=synth.sample_rate, f_max=min(8000.0, synth.sample_rate / 2))
    hop = feature.hop_length
    model_rows, reference_rows, mel_rows = [], [], []
    note_rows: dict[str, list[dict[str, float]]] = {}
    t0 = time.perf_counter()
    for record in progress(records, desc=f"eval mel stage {split}", unit="piece"):
        frames = int(math.ceil(seconds * audio_info(record.audio_path).sample_rate))
        reference = load_audio(record.audio_path, synth.sample_rate, frames=frames)
        n_frames = reference.shape[-1] // hop
        reference = reference[..., : n_frames * hop]
        reference_mel = analysis(reference.unsqueeze(0))  # (1, n_mels, F)
        midi = load_midi(record.midi_path)
        roll = piano_roll(midi, feature, n_frames).unsqueeze(0)
        mel = synth.mel_from_roll(roll, options).cpu()
        fluidsynth = torch.nn.functional.pad(render_midi(midi, synth.sample_rate, fluidsynth_soundfont), (0, n_frames * hop))[..., : n_frames * hop]
        fluidsynth_mel = analysis(fluidsynth.reshape(1, 1, -1))
        model_audio = griffin_lim(mel[0], mel_config, n_iter=griffin_lim_iters)
        reference_audio = griffin_lim(reference_mel[0], mel_config, n_iter=griffin_lim_iters)
        model_rows.append(all_metrics(reference, model_audio, metric_mel))
        reference_rows.append(all_metrics(reference, reference_audio, metric_mel))
        mel_rows.append({
            "log_mel_l1": float((mel - reference_mel).abs().mean()),
            "log_mel_l1_fluidsynth": float((fluidsynth_mel - reference_mel).abs().mean()),
            "band_variance_model": band_variance(mel),
            "band_variance_reference": band_variance(reference_mel),
            "band_variance_fluidsynth": band_variance(fluidsynth_mel),
        })
        if transcriber is not None:
            outputs = {"model_mel_griffin_lim": model_audio, "reference_mel_griffin_lim": reference_audio, "reference": reference}
            for name, scores in _note_scores(transcriber, record, outputs, reference.shape[-1], synth.sample_rate).items():
                note_rows.setdefault(name, []).append(scores)
    return {
        "family": synth.family,
        "objective": synth.objective,
        "feature": "piano_roll",
        "split": split,
        "pieces": len(records),
        "seconds_per_piece": seconds,
        "options": {k: v for k, v in vars(options).items() if k not in ("progress", "batch_size")},
        "mel": _mean(mel_rows),
        "metrics": {"model_mel_griffin_lim": _mean(model_rows), "reference_mel_griffin_lim": _mean(reference_rows)},
        **({"notes": {name: _mean(rows) for name, rows in note_rows.items()}} if transcriber is not None else {}),
        "fluidsynth_soundfont": Path(fluidsynth_soundfont or default_soundfont()).name,
        "lower_is_better": ["mr_stft", "lsd_db", "mel_l1", "log_mel_l1"],
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def compose_checkpoint(notes: str | os.PathLike, vocoder: str | os.PathLike, output: str | os.PathLike,
                       dtype: str = "float32") -> Path:
    """``waveforge export NOTES --vocoder VOCODER -o OUT [--dtype float16]``: ``NOTES`` a Lightning
    checkpoint of a notes-to-mel task or its exported ``.safetensors`` (or a shipped model's name);
    the vocoder (a file or a shipped name) is checked before anything is written."""
    from waveforge.inference.modelfile import cast_model_file
    from waveforge.pretrained import is_shipped_name, resolve

    if Path(output).resolve() in (resolve(notes).resolve(), resolve(vocoder).resolve()):
        raise BadInputError(output, "the output would overwrite an input")
    vocoder_file = read_model_file(vocoder)
    if Path(notes).suffix == ".safetensors" or is_shipped_name(notes):
        notes_file = read_model_file(notes)
    else:
        from waveforge.tasks.export import load_task

        task = load_task(notes)
        task.eval()
        notes_file = task.model_file()
    if notes_file.family != "notes2mel":
        raise BadInputError(notes, f"--vocoder composes a notes-to-mel model with a vocoder; this is a {notes_file.family} model")
    return save_model_file(output, cast_model_file(compose_model_file(notes_file, vocoder_file, vocoder), dtype, output))
