"""``waveforge data check``: validate a MAESTRO-layout folder before training on it.

Checks, per performance: both files exist (via :class:`MaestroIndex`), the audio header is readable
and the file is not truncated, the MIDI parses and holds notes, and the audio lasts as long as the
metadata says (within ``tolerance`` seconds). The first problem raises :class:`BadInputError` naming
the file, which the command line prints as one line with exit status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from waveforge.audio.io import audio_info
from waveforge.data.maestro import SPLITS, MaestroIndex
from waveforge.errors import BadInputError
from waveforge.midi.roll import load_midi
from waveforge.utils.progress import progress as progress_bar


@dataclass(frozen=True)
class SplitSummary:
    pieces: int
    seconds: float
    sample_rates: tuple[int, ...]  # distinct audio rates in the split
    channels: tuple[int, ...]  # distinct channel counts
    soundfonts: tuple[str, ...] = ()  # a synthetic corpus's soundfonts in the split


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    metadata: Path
    splits: dict[str, SplitSummary]

    @property
    def pieces(self) -> int:
        return sum(s.pieces for s in self.splits.values())

    @property
    def hours(self) -> float:
        return sum(s.seconds for s in self.splits.values()) / 3600

    def format(self) -> str:
        """A small table: pieces and hours per split, the audio rates and channel counts found."""
        lines = [f"{self.root} ({self.metadata.name}): all files present and readable", f"{'split':<12}{'pieces':>8}{'hours':>10}  audio"]
        for name in SPLITS:
            s = self.splits[name]
            rates = ", ".join(f"{r} Hz" for r in s.sample_rates) or "-"
            chans = "/".join(str(c) for c in s.channels) or "-"
            fonts = f", soundfonts {', '.join(s.soundfonts)}" if s.soundfonts else ""
            lines.append(f"{name:<12}{s.pieces:>8}{s.seconds / 3600:>10.3f}  {rates}, {chans} ch{fonts}")
        lines.append(f"{'total':<12}{self.pieces:>8}{self.hours:>10.3f}")
        return "\n".join(lines)


def check_samples(path: Path, block_frames: int = 1 << 18) -> None:
    """Decode every sample of ``path`` block by block; raise BadInputError on a NaN or infinite one."""
    import numpy as np
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            start = 0
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                bad = ~np.isfinite(block)
                if bad.any():
                    frame = start + int(np.argmax(bad.any(axis=1)))
                    raise BadInputError(path, f"audio holds NaN or infinite samples (first at {frame / f.samplerate:.3f} s)")
                start += block.shape[0]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise BadInputError(path, f"not a readable audio file ({str(e).strip().splitlines()[0][:120]})") from None


def check_dataset(root: str | os.PathLike, tolerance: float = 1.0, progress: bool = True, decode: bool = False) -> DatasetSummary:
    """Validate every performance under ``root``; raise BadInputError at the first problem.

    Args:
        root: a folder with ``maestro-v3.0.0.csv`` (or ``.json``, or a v1/v2 metadata file).
        tolerance: largest allowed ``|audio duration - metadata duration|`` in seconds.
        progress: show a bar (one step per performance).
        decode: also read every sample and refuse NaN or infinite ones (a float WAV can hold them;
            training would stop on that file hours in).

    The audio is checked from its header, plus a check that a WAV's data chunk is complete, so a
    200-hour dataset is checked without decoding 200 hours; every MIDI file is parsed.
    """
    if not tolerance >= 0:
        raise BadInputError(None, f"tolerance must be >= 0, got {tolerance}")
    index = MaestroIndex(root)
    if len(index) == 0:
        raise BadInputError(index.metadata_path, "metadata lists no performances")
    found: dict[str, list] = {name: [] for name in SPLITS}
    for record in progress_bar(index, desc="check", total=len(index), unit="piece", enabled=progress and sys.stderr.isatty()):
        info = audio_info(record.audio_path)
        if abs(info.duration - record.duration) > tolerance:
            raise BadInputError(
                record.audio_path,
                f"audio lasts {info.duration:.3f} s but the metadata (row {record.row}) says {record.duration:.3f} s",
            )
        if decode:
            check_samples(record.audio_path)
        load_midi(record.midi_path)
        found[record.split].append((info, record.soundfont))
    splits = {
        name: SplitSummary(
            pieces=len(infos),
            seconds=sum(i.duration for i, _ in infos),
            sample_rates=tuple(sorted({i.sample_rate for i, _ in infos})),
            channels=tuple(sorted({i.channels for i, _ in infos})),
            soundfonts=tuple(sorted({f for _, f in infos if f})),
        )
        for name, infos in found.items()
    }
    return DatasetSummary(Path(root), index.metadata_path, splits)
