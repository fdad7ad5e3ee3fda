"""``waveforge eval``: a model against its baseline on held-out pieces, as JSON.

Mel vocoders are compared with Griffin-Lim on the same mels; MIDI renderers with the FluidSynth
render of the same MIDI. Metrics are computed against the recorded audio of each piece.
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
from waveforge.audio.mel import MelConfig
from waveforge.data.maestro import MaestroIndex
from waveforge.errors import BadInputError
from waveforge.inference.families import SynthesisOptions
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
) -> dict:
    synth = waveforge.load(model)
    feature = synth.feature
    if feature is None:
        raise BadInputError(model, "eval compares conditioned synthesis with a baseline; this model is unconditional (use `waveforge sample`)")
    records = MaestroIndex(data_root).split(split)[:max_pieces]
    if not records:
        raise BadInputError(data_root, f"split {split!r} has no pieces")
    # metrics always use one fixed mel analysis at the model's rate, whatever the model's features
    metric_mel = MelConfig(sample_rate=synth.sample_rate, f_max=min(8000.0, synth.sample_rate / 2))
    hop = feature.hop_length
    model_rows, baseline_rows = [], []
    t0 = time.perf_counter()
    audio_seconds = 0.0
    for record in progress(records, desc=f"eval {split}", unit="piece"):
        rate = audio_info(record.audio_path).sample_rate
        reference = load_audio(record.audio_path, synth.sample_rate, frames=int(math.ceil(seconds * rate)))
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
            baseline = render_midi(midi, synth.sample_rate)[..., : n_frames * hop]
        generated = synth.synthesize(cond, options)[0]
        audio_seconds += reference.shape[-1] / synth.sample_rate
        model_rows.append(all_metrics(reference, generated, metric_mel))
        baseline_rows.append(all_metrics(reference, baseline, metric_mel))
    baseline_name = "griffin_lim" if isinstance(feature, MelConfig) else "fluidsynth"
    return {
        "model": str(Path(model)),
        "family": synth.family,
        "feature": feature.to_dict()["kind"],
        "split": split,
        "pieces": len(records),
        "seconds_per_piece": seconds,
        "options": {k: v for k, v in vars(options or SynthesisOptions()).items() if k not in ("progress", "batch_size")},
        "metrics": {"model": _mean(model_rows), baseline_name: _mean(baseline_rows)},
        "lower_is_better": ["mr_stft", "lsd_db", "mel_l1"],
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "audio_s": round(audio_seconds, 1),
    }
