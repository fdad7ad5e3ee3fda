"""``waveforge eval``: a model against its baseline on held-out pieces, as JSON.

Mel vocoders are compared with Griffin-Lim on the same mels; MIDI renderers with the FluidSynth
render of the same MIDI. Metrics are computed against the recorded audio of each piece.

Families with a likelihood (WaveNet, SampleRNN, WaveGlow) also get the test audio's negative
log-likelihood in bits per sample, beside a unigram and a linear-predictor baseline fitted on the
training split (:mod:`waveforge.likelihood`). Unconditional models get the likelihood alone, and a
VQ-VAE hierarchy its per-level reconstruction, codebook usage and prior bits per code
(:func:`waveforge.vqvae_eval.evaluate_hierarchy`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

import waveforge
from waveforge.audio.griffinlim import griffin_lim
from waveforge.audio.io import audio_info, load_audio
from waveforge.audio.mel import MelConfig, analysis_mel_config
from waveforge.data.maestro import MaestroIndex
from waveforge.errors import BadInputError
from waveforge.inference.families import SynthesisOptions
from waveforge.likelihood import fit_baselines
from waveforge.metrics import all_metrics
from waveforge.midi.roll import PianoRollConfig, load_midi, piano_roll
from waveforge.utils.progress import progress


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]} if rows else {}


def evaluate_model(
    model: str | os.PathLike,
    data_root: str | os.PathLike,
    split: str = "test",
    max_pieces: int | None = None,
    seconds: float = 10.0,
    options: SynthesisOptions | None = None,
    griffin_lim_iters: int = 64,
    notes: bool = False,
    fluidsynth_soundfont: str | os.PathLike | None = None,
) -> dict:
    """Metrics of ``model`` on ``split`` of the MAESTRO-layout ``data_root`` against its baseline.

    With ``notes``, every output is also transcribed and scored note by note
    (:mod:`waveforge.notes`) beside the transcriber on the reference audio (the ceiling) and on
    FluidSynth's render of the same MIDI (with ``fluidsynth_soundfont``, default pretty_midi's).
    """
    transcriber = None
    if notes:
        from waveforge.notes import Transcriber

        transcriber = Transcriber()  # first: a missing extra fails before any synthesis
    synth = waveforge.load(model)
    if transcriber is not None and (synth.family == "vqvae" or synth.feature is None):
        raise BadInputError(model, "--notes scores conditioned synthesis (a mel vocoder or a MIDI renderer); this model is unconditional")
    if synth.family == "vqvae":  # no conditioning and no single likelihood: per-level figures instead
        from waveforge.vqvae_eval import evaluate_hierarchy

        return evaluate_hierarchy(model, data_root, split=split, seconds=seconds, max_pieces=max_pieces)
    from waveforge.inference.twostage import ComposedRenderer, NotesToMelSynthesizer

    if isinstance(synth, NotesToMelSynthesizer) and not isinstance(synth, ComposedRenderer):  # the mel stage alone
        from waveforge.inference.twostage import evaluate_mel_stage

        result = evaluate_mel_stage(synth, data_root, split, max_pieces, seconds, options, griffin_lim_iters, transcriber, fluidsynth_soundfont)
        return {"model": str(Path(model)), **result}
    feature = synth.feature
    has_likelihood = synth.adapter.likelihood_kind(synth.model) is not None
    if feature is None and not has_likelihood:
        raise BadInputError(model, "eval compares conditioned synthesis with a baseline; this model is unconditional and has no likelihood (use `waveforge sample`)")
    index = MaestroIndex(data_root)
    records = index.split(split)[:max_pieces]
    if not records:
        raise BadInputError(data_root, f"split {split!r} has no pieces")
    likelihood = _LikelihoodEval(synth, index, seconds) if has_likelihood else None
    if feature is None:
        assert likelihood is not None
        t0 = time.perf_counter()
        for record in progress(records, desc=f"likelihood {split}", unit="piece"):
            likelihood.add(load_audio(record.audio_path, synth.sample_rate, frames=_frames(record, seconds)), None)
        return {
            "model": str(Path(model)), "family": synth.family, "feature": "none", "split": split,
            "pieces": len(records), "seconds_per_piece": seconds, "likelihood": likelihood.result(),
            "elapsed_s": round(time.perf_counter() - t0, 1),
        }
    # metrics always use one fixed mel analysis at the model's rate, whatever the model's features
    metric_mel = analysis_mel_config(synth.sample_rate)
    hop = feature.hop_length
    model_rows, baseline_rows = [], []
    note_rows: dict[str, list[dict[str, float]]] = {}
    t0 = time.perf_counter()
    audio_seconds = 0.0
    for record in progress(records, desc=f"eval {split}", unit="piece"):
        reference = load_audio(record.audio_path, synth.sample_rate, frames=_frames(record, seconds))
        n_frames = reference.shape[-1] // hop
        reference = reference[..., : n_frames * hop]
        if isinstance(feature, MelConfig):
            cond = synth.mel(reference)
            baseline = griffin_lim(cond[0], feature, n_iter=griffin_lim_iters)
        else:
            assert isinstance(feature, PianoRollConfig)
            from waveforge.midi.render import render_midi

            midi = load_midi(record.midi_path)
            cond = piano_roll(midi, feature, n_frames).unsqueeze(0)
            baseline = render_midi(midi, synth.sample_rate, fluidsynth_soundfont)[..., : n_frames * hop]
        if likelihood is not None:
            likelihood.add(reference, cond)
        generated = synth.synthesize(cond, options)[0]
        audio_seconds += reference.shape[-1] / synth.sample_rate
        model_rows.append(all_metrics(reference, generated, metric_mel))
        baseline_rows.append(all_metrics(reference, baseline, metric_mel))
        if transcriber is not None:
            outputs = {"model": generated, "reference": reference}
            if isinstance(feature, MelConfig):
                from waveforge.midi.render import render_midi

                outputs["griffin_lim"] = baseline
                outputs["fluidsynth"] = render_midi(record.midi_path, synth.sample_rate, fluidsynth_soundfont)
            else:
                outputs["fluidsynth"] = baseline
            for name, scores in _note_scores(transcriber, record, outputs, reference.shape[-1], synth.sample_rate).items():
                note_rows.setdefault(name, []).append(scores)
    baseline_name = "griffin_lim" if isinstance(feature, MelConfig) else "fluidsynth"
    extra = {"likelihood": likelihood.result()} if likelihood is not None else {}
    if transcriber is not None:
        from waveforge.midi.render import default_soundfont

        extra["notes"] = {name: _mean(rows) for name, rows in note_rows.items()}
        extra["notes_fluidsynth_soundfont"] = Path(fluidsynth_soundfont or default_soundfont()).name
    return {
        "model": str(Path(model)),
        "family": synth.family,
        "feature": feature.to_dict()["kind"],
        "split": split,
        "pieces": len(records),
        "seconds_per_piece": seconds,
        "options": {k: v for k, v in vars(options or SynthesisOptions()).items() if k not in ("progress", "batch_size")},
        "metrics": {"model": _mean(model_rows), baseline_name: _mean(baseline_rows)},
        **extra,
        "lower_is_better": ["mr_stft", "lsd_db", "mel_l1", "bits_per_sample"],
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "audio_s": round(audio_seconds, 1),
    }


def _note_scores(transcriber, record, outputs: dict[str, torch.Tensor], n_samples: int, sample_rate: int) -> dict[str, dict[str, float]]:
    """Transcribe each output's first ``n_samples`` and score it against the piece's MIDI notes."""
    from waveforge.notes import midi_notes, note_scores

    reference_notes = midi_notes(record.midi_path, seconds=n_samples / sample_rate)
    scores = {}
    for name, audio in progress(list(outputs.items()), desc=f"transcribe {record.stem}", unit="clip"):
        estimated = transcriber.transcribe(audio.reshape(-1)[:n_samples], sample_rate)
        scores[name] = note_scores(reference_notes, estimated)
    return scores


def _frames(record, seconds: float) -> int:
    """Frames of the recording (at its own rate) covering ``seconds``."""
    return int(math.ceil(seconds * audio_info(record.audio_path).sample_rate))


class _LikelihoodEval:
    """Accumulates the model's and the baselines' NLL over test pieces (bits per sample)."""

    #: training audio the baselines are fitted on (seconds per piece, pieces)
    TRAIN_SECONDS, TRAIN_PIECES = 30.0, 8

    def __init__(self, synth, index: MaestroIndex, seconds: float):
        self.synth = synth
        self.kind = synth.adapter.likelihood_kind(synth.model)
        train = index.split("train")[: self.TRAIN_PIECES]
        if not train:
            raise BadInputError(index.root, "the likelihood baselines need a train split; it has no pieces")
        audio = [load_audio(r.audio_path, synth.sample_rate, frames=_frames(r, self.TRAIN_SECONDS))[0].numpy() for r in train]
        self.baselines = fit_baselines(audio, self.kind)
        self.nats = {"model": 0.0, "unigram": 0.0, "linear_predictor": 0.0}
        self.samples = 0
        # whole frames, and whole top-tier frames for SampleRNN
        self.multiple = synth.feature.hop_length if synth.feature is not None else 256

    def add(self, audio: torch.Tensor, cond: torch.Tensor | None) -> None:
        """``audio (1, T)`` at the model rate; ``cond (1, C, F)`` or None."""
        n = audio.shape[-1] // self.multiple * self.multiple
        if cond is not None:
            n = min(n, cond.shape[-1] * self.synth.feature.hop_length)
            cond = cond[..., : n // self.synth.feature.hop_length].to(self.synth.device)
        audio = audio[..., :n]
        with torch.inference_mode():
            log_p = self.synth.adapter.log_likelihood(self.synth.model, audio.reshape(1, 1, n).to(self.synth.device), cond)
        x = audio[0].double().numpy()
        self.nats["model"] -= float(log_p.sum())
        self.nats["unigram"] += self.baselines.unigram_nats(x)
        self.nats["linear_predictor"] += self.baselines.linear_predictor_nats(x)
        self.samples += n

    def result(self) -> dict:
        bits = {k: round(v / max(self.samples, 1) / math.log(2), 4) for k, v in self.nats.items()}
        return {"kind": self.kind.label, "samples": self.samples, "bits_per_sample": bits}
