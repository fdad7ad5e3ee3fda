"""MIDI -> audio with FluidSynth: the reference piano render of the toolkit.

Every non-drum note is played by General MIDI program 0 (acoustic grand piano) on one channel, with
the file's sustain / sostenuto / soft pedals (CC64/66/67). The synthesizer runs in float32 with a
fixed output gain, so loudness follows the MIDI velocities the same way in every file; a render
whose peak would exceed :data:`PEAK_CEILING` is scaled down as a whole (never up), so nothing clips
and quiet pieces stay quiet.

FluidSynth renders deterministically: a fresh synthesizer per call, one rendering thread and events
applied at fixed sample positions give the same samples for the same MIDI, soundfont and rate.
"""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from waveforge.errors import BadInputError
from waveforge.midi.roll import load_midi

PEAK_CEILING = 0.95
"""Largest absolute sample a render may hold; louder renders are attenuated to this peak."""

SYNTH_GAIN = 0.8
"""FluidSynth master gain: a ten-note fortissimo chord peaks near 0.35 (TimGM6mb) to 0.55 (FluidR3_GM)."""

PEDAL_CCS = (64, 66, 67)  # sustain, sostenuto, soft
_CHANNEL = 0
_BLOCK = 64  # FluidSynth's internal block; events between writes take effect at block starts


def default_soundfont() -> Path:
    """The TimGM6mb General MIDI soundfont that pretty_midi ships with its package."""
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def _check_soundfont(path: Path) -> None:
    if not path.is_file():
        raise BadInputError(path, "soundfont not found")
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise BadInputError(path, "not a SoundFont 2 (.sf2) file")


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as e:  # OSError: the Python binding found no libfluidsynth
        raise BadInputError(None, f"MIDI rendering needs pyfluidsynth and libfluidsynth ({e})") from None
    return fluidsynth


def _quiet_fluidsynth_warnings(fluidsynth) -> None:
    """FluidSynth prints warnings (e.g. about unused drum channels) straight to stderr; mute them."""
    set_log = getattr(getattr(fluidsynth, "_fl", None), "fluid_set_log_function", None)
    if set_log is not None:
        set_log.restype = ctypes.c_void_p
        set_log.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        for level in (2, 3, 4):  # FLUID_WARN, FLUID_INFO, FLUID_DBG
            set_log(level, None, None)


def _float_writer(fluidsynth):
    """``write(synth_ptr, n) -> (n, 2) float32`` via fluid_synth_write_float, or the s16 binding as fallback."""
    write_float = getattr(getattr(fluidsynth, "_fl", None), "fluid_synth_write_float", None)
    if write_float is None:
        def write_s16(synth, n: int) -> np.ndarray:
            return synth.get_samples(n).reshape(n, 2).astype(np.float32) / 32768.0
        return write_s16
    write_float.restype = ctypes.c_int
    write_float.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]

    def write(synth, n: int) -> np.ndarray:
        buf = np.zeros((n, 2), dtype=np.float32)  # interleaved L/R
        ptr = buf.ctypes.data
        if write_float(synth.synth, n, ptr, 0, 2, ptr, 1, 2) != 0:
            raise RuntimeError("fluid_synth_write_float failed")
        return buf

    return write


def _events(midi: pretty_midi.PrettyMIDI, sample_rate: int) -> list[tuple[int, int, int, int, int]]:
    """``(sample, order, kind, a, b)`` sorted: note-offs before pedal changes before note-ons at one instant.

    kind 0 = note off (pitch), 1 = control change (number, value), 2 = note on (pitch, velocity).
    """
    events = []
    for inst in midi.instruments:
        if inst.is_drum:
            continue
        for n in inst.notes:
            if n.end <= n.start:
                continue
            events.append((round(n.start * sample_rate), 2, 2, n.pitch, n.velocity))
            events.append((round(n.end * sample_rate), 0, 0, n.pitch, 0))
        for cc in inst.control_changes:
            if cc.number in PEDAL_CCS:
                events.append((round(cc.time * sample_rate), 1, 1, cc.number, cc.value))
    events.sort()
    return events


def render_length(midi: pretty_midi.PrettyMIDI, sample_rate: int, tail_seconds: float = 1.0) -> int:
    """Samples in :func:`render_midi`'s output: the MIDI's end time plus the tail, rounded up."""
    return int(math.ceil((midi.get_end_time() + tail_seconds) * sample_rate))


def render_midi(
    midi: pretty_midi.PrettyMIDI | str | os.PathLike,
    sample_rate: int,
    soundfont: str | os.PathLike | None = None,
    tail_seconds: float = 1.0,
) -> torch.Tensor:
    """Render ``midi`` as solo piano: ``(1, T)`` float32 mono in [-PEAK_CEILING, PEAK_CEILING].

    Args:
        midi: a parsed file or a path (a path with no notes raises BadInputError).
        sample_rate: output rate in Hz (FluidSynth accepts 8000-96000).
        soundfont: any ``.sf2`` (or ``.sf3``, which FluidSynth 2 reads); ``None`` uses the TimGM6mb soundfont shipped with pretty_midi.
        tail_seconds: time after the last event for the release and reverb to ring out.

    ``T = ceil((midi end time + tail_seconds) * sample_rate)``. The stereo output of FluidSynth is
    averaged to mono (the toolkit reads every file as mono).
    """
    if not isinstance(midi, pretty_midi.PrettyMIDI):
        midi = load_midi(midi)
    if not 8000 <= sample_rate <= 96000:
        raise BadInputError(None, f"sample rate {sample_rate} is outside FluidSynth's 8000-96000 Hz")
    sf2 = Path(soundfont) if soundfont is not None else default_soundfont()
    _check_soundfont(sf2)
    fluidsynth = _fluidsynth()
    _quiet_fluidsynth_warnings(fluidsynth)

    synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=sample_rate, channels=16, **{"synth.chorus.active": 0, "synth.cpu-cores": 1})
    try:
        sfid = synth.sfload(str(sf2))
        if sfid < 0:
            raise BadInputError(sf2, "FluidSynth could not load this soundfont")
        if synth.program_select(_CHANNEL, sfid, 0, 0) != 0:
            raise BadInputError(sf2, "soundfont has no acoustic grand piano (bank 0, program 0)")
        write = _float_writer(fluidsynth)
        n_samples = render_length(midi, sample_rate, tail_seconds)
        out = np.zeros((n_samples, 2), dtype=np.float32)
        pos = 0
        for sample, _, kind, a, b in _events(midi, sample_rate):
            sample = min(sample, n_samples)
            if sample > pos:
                out[pos:sample] = write(synth, sample - pos)
                pos = sample
            if kind == 0:
                synth.noteoff(_CHANNEL, a)
            elif kind == 1:
                synth.cc(_CHANNEL, a, b)
            else:
                synth.noteon(_CHANNEL, a, b)
        if pos < n_samples:
            out[pos:] = write(synth, n_samples - pos)
    finally:
        synth.delete()

    mono = out.mean(axis=1)
    peak = float(np.abs(mono).max(initial=0.0))
    if peak > PEAK_CEILING:
        mono *= PEAK_CEILING / peak
    return torch.from_numpy(np.ascontiguousarray(mono)).unsqueeze(0)  # (1, T)
