"""Data-loading speed: the one-time resample into the cache, and segments per second per worker.

Runs on a synthetic MAESTRO-layout corpus written to a temporary folder (44.1 kHz stereo 16-bit
WAVs with random piano MIDI, like real MAESTRO) at the paper configuration: 22050 Hz, hop 256,
8192-sample crops, 80-band mel. ``x_realtime`` is seconds of audio delivered per second of wall
time in one process; a data-loader worker is one such process, so a recipe needs
``num_workers >= model step rate x batch x segment seconds / x_realtime``. Timed with one torch
thread, as in a DataLoader worker (PyTorch sets workers to one thread): on a loaded machine, a
two-thread OpenMP team costs more than the tiny per-segment STFT it splits (``worker_threads``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pretty_midi
import soundfile as sf
import torch

from waveforge.audio.mel import MelConfig
from waveforge.bench import BenchContext, register, time_median
from waveforge.data.cache import resample_file
from waveforge.data.maestro import write_metadata
from waveforge.data.segments import SegmentDataset
from waveforge.midi.roll import PianoRollConfig

SOURCE_RATE, SAMPLE_RATE, HOP, SEGMENT = 44100, 22050, 256, 8192


def _write_corpus(root: Path, n_pieces: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    (root / "2018").mkdir(parents=True)
    rows = []
    for i in range(n_pieces):
        stem = f"bench_{i}"
        midi, piano = pretty_midi.PrettyMIDI(), pretty_midi.Instrument(program=0)
        for _ in range(int(seconds * 8)):
            start = float(rng.uniform(0, seconds - 0.5))
            piano.notes.append(pretty_midi.Note(int(rng.integers(30, 100)), int(rng.integers(21, 108)), start, start + float(rng.uniform(0.1, 0.5))))
        midi.instruments.append(piano)
        midi.write(str(root / "2018" / f"{stem}.midi"))
        audio = 0.1 * rng.standard_normal((int(seconds * SOURCE_RATE), 2))
        sf.write(str(root / "2018" / f"{stem}.wav"), audio, SOURCE_RATE, subtype="PCM_16")
        rows.append(
            dict(canonical_composer="bench", canonical_title=stem, split="train", year=2018,
                 midi_filename=f"2018/{stem}.midi", audio_filename=f"2018/{stem}.wav", duration=seconds)
        )
    write_metadata(root, rows)


@register("data")
def bench_data(ctx: BenchContext) -> Iterator[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield from _bench_data(ctx)
    finally:
        torch.set_num_threads(threads)


def _bench_data(ctx: BenchContext) -> Iterator[dict]:
    n_pieces, seconds = (2, 20.0) if ctx.quick else (4, 60.0)
    n_segments = 64 if ctx.quick else 256
    with tempfile.TemporaryDirectory(prefix="waveforge-bench-data-") as tmp:
        root = Path(tmp) / "corpus"
        _write_corpus(root, n_pieces, seconds)

        source = root / "2018" / "bench_0.wav"
        t = time_median(lambda: resample_file(source, Path(tmp) / "resampled.wav", SAMPLE_RATE), repeats=ctx.repeats)
        yield {"name": "data/resample-cache-44k1-stereo-to-22k05", "x_realtime": round(seconds / t, 1),
               "samples_per_s": round(seconds * SOURCE_RATE / t), "worker_threads": 1}

        features = {
            "mel": MelConfig(SAMPLE_RATE, hop_length=HOP),
            "piano_roll": PianoRollConfig(SAMPLE_RATE, HOP),
            "none": None,
        }
        for name, feature in features.items():
            ds = SegmentDataset(root, "train", SAMPLE_RATE, HOP, SEGMENT, feature, segments_per_epoch=n_segments, seed=0)
            ds.prepare()
            for i in range(len(ds)):  # warm: cache entries exist, rolls are in the LRU, page cache is hot
                ds[i]
            t = time_median(lambda: [ds[i] for i in range(len(ds))], repeats=ctx.repeats, warmup=0)
            yield {"name": f"data/segments-{name}-{SEGMENT}", "segments_per_s": round(n_segments / t, 1),
                   "samples_per_s": round(n_segments * SEGMENT / t), "x_realtime": round(n_segments * SEGMENT / SAMPLE_RATE / t, 1), "worker_threads": 1}
