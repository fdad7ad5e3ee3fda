"""Piano-roll features at the mel frame rate: onset, frame (sustain applied) and velocity planes."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from waveforge.errors import BadInputError

N_KEYS = 88
LOWEST_PITCH = 21  # A0
SUSTAIN_CC = 64


@dataclass(frozen=True)
class PianoRollConfig:
    """Frame rate is ``sample_rate / hop_length``: the roll aligns with the mel of the same audio."""

    sample_rate: int = 22050
    hop_length: int = 256
    sustain: bool = True

    @property
    def channels(self) -> int:
        return 3 * N_KEYS

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return {"kind": "piano_roll", **asdict(self)}


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float
    end: float
    velocity: int


def load_midi(path: str | os.PathLike) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file; a file that is not MIDI or has no notes raises BadInputError."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "no such file")
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido raises OSError, EOFError, KeyError, ValueError... for bad bytes
        raise BadInputError(path, f"not a readable MIDI file ({type(e).__name__}: {str(e)[:120]})") from None
    if not any(inst.notes for inst in midi.instruments if not inst.is_drum):
        raise BadInputError(path, "MIDI file has no notes")
    return midi


def _pedal_intervals(midi: pretty_midi.PrettyMIDI) -> list[tuple[float, float]]:
    """Times the sustain pedal is held (CC64 >= 64), merged across instruments."""
    changes = sorted(
        (cc.time, cc.value >= 64) for inst in midi.instruments if not inst.is_drum for cc in inst.control_changes if cc.number == SUSTAIN_CC
    )
    intervals, down_at = [], None
    for time, down in changes:
        if down and down_at is None:
            down_at = time
        elif not down and down_at is not None:
            intervals.append((down_at, time))
            down_at = None
    if down_at is not None:
        intervals.append((down_at, math.inf))
    return intervals


def sustained_notes(midi: pretty_midi.PrettyMIDI, sustain: bool = True) -> list[Note]:
    """All non-drum notes, with releases held by the pedal extended.

    A note released while the pedal is down lasts until the pedal comes up or the same pitch is
    struck again, whichever is first.
    """
    notes = sorted(
        (Note(n.pitch, n.start, n.end, n.velocity) for inst in midi.instruments if not inst.is_drum for n in inst.notes),
        key=lambda n: (n.start, n.pitch),
    )
    if not sustain:
        return notes
    pedal = _pedal_intervals(midi)
    next_onset: dict[int, float] = {}
    out: list[Note] = []
    for note in reversed(notes):
        end = note.end
        for down, up in pedal:
            if down <= note.end < up:
                end = up
                break
        end = min(end, next_onset.get(note.pitch, math.inf))
        if math.isinf(end):  # pedal never released: the note rings to the end of the file
            end = max(midi.get_end_time(), note.end)
        out.append(Note(note.pitch, note.start, end, note.velocity))
        next_onset[note.pitch] = note.start
    return out[::-1]


def piano_roll(midi: pretty_midi.PrettyMIDI | str | os.PathLike, config: PianoRollConfig, n_frames: int | None = None) -> torch.Tensor:
    """``(3 * 88, n_frames)`` float32: onsets, frames (sustain applied), velocity / 127.

    Frame ``f`` covers ``[f, f + 1) * hop / sample_rate`` seconds, the same span as mel frame ``f``.
    ``n_frames`` defaults to the end of the last sounding note.
    """
    roll = PianoRollWindows(midi, config, n_frames)
    return roll.window(0, roll.n_frames)


class PianoRollWindows:
    """A piano roll computed window by window: ``roll[..., lo:hi]`` is ``(1, 3 * 88, hi - lo)``,
    equal to the same frames of :func:`piano_roll`, built from the note list on demand.

    Synthesis slices its conditioning chunk by chunk, so a long render never holds the whole
    roll (264 floats per frame), only the notes.
    """

    def __init__(self, midi: pretty_midi.PrettyMIDI | str | os.PathLike, config: PianoRollConfig, n_frames: int | None = None):
        if not isinstance(midi, pretty_midi.PrettyMIDI):
            midi = load_midi(midi)
        notes = sustained_notes(midi, config.sustain)
        fps = config.frame_rate
        if n_frames is None:
            n_frames = int(math.ceil(max((n.end for n in notes), default=0.0) * fps))
        self.n_frames = int(n_frames)
        self.shape = torch.Size([1, 3 * N_KEYS, self.n_frames])
        spans = []  # (key, first, last, velocity) in note order: a later note overwrites an earlier one's velocity
        for note in notes:
            key = note.pitch - LOWEST_PITCH
            if not 0 <= key < N_KEYS:
                continue
            first = int(math.floor(note.start * fps))
            if first >= self.n_frames:
                continue
            spans.append((key, first, max(first + 1, int(math.ceil(note.end * fps))), note.velocity / 127.0))
        self._spans = spans
        self._first = np.array([s[1] for s in spans], dtype=np.int64)
        self._last = np.array([s[2] for s in spans], dtype=np.int64)

    def window(self, lo: int, hi: int) -> torch.Tensor:
        """Frames ``[lo, hi)``: ``(3 * 88, hi - lo)`` float32."""
        lo, hi = max(0, lo), min(self.n_frames, hi)
        roll = np.zeros((3, N_KEYS, max(0, hi - lo)), dtype=np.float32)
        for i in np.flatnonzero((self._first < hi) & (self._last > lo)):
            key, first, last, velocity = self._spans[i]
            if lo <= first:
                roll[0, key, first - lo] = 1.0
            roll[1, key, max(first, lo) - lo : last - lo] = 1.0
            roll[2, key, max(first, lo) - lo : last - lo] = velocity
        return torch.from_numpy(roll.reshape(3 * N_KEYS, roll.shape[-1]))

    # the slice of a (1, C, F) tensor that chunked synthesis takes, and what it asks of it
    def __getitem__(self, index) -> torch.Tensor:
        if not (isinstance(index, tuple) and len(index) == 2 and index[0] is Ellipsis and isinstance(index[1], slice) and index[1].step in (None, 1)):
            raise TypeError("PianoRollWindows supports roll[..., lo:hi] only")
        lo, hi, _ = index[1].indices(self.n_frames)
        return self.window(lo, hi).unsqueeze(0)

    def dim(self) -> int:
        return 3

    def to(self, device) -> "PianoRollWindows":
        if torch.device(device).type != "cpu":
            return _OnDevice(self, torch.device(device))
        return self


class _OnDevice:
    def __init__(self, roll: PianoRollWindows, device: torch.device):
        self.roll, self.device, self.shape, self.n_frames = roll, device, roll.shape, roll.n_frames

    def __getitem__(self, index) -> torch.Tensor:
        return self.roll[index].to(self.device)

    def dim(self) -> int:
        return 3

    def to(self, device):
        return self.roll.to(device)
