"""Piano-roll planes of a hand-written MIDI, and the FluidSynth renderer."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from waveforge.errors import BadInputError
from waveforge.midi import PianoRollConfig, load_midi, piano_roll, render_midi, sustained_notes
from waveforge.midi.render import PEAK_CEILING
from waveforge.midi.roll import LOWEST_PITCH, N_KEYS

# 8 frames per second: every time below is a multiple of 1/8 s, so frame edges are exact in binary
# and survive the MIDI tick grid (pretty_midi writes 220 ticks per beat at 120 bpm = 1/440 s).
ROLL = PianoRollConfig(sample_rate=800, hop_length=100, sustain=True)


def _hand_written(path) -> None:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [
        pretty_midi.Note(100, 60, 0.0, 0.5),  # before the pedal: frames 0-3
        pretty_midi.Note(80, 64, 1.125, 1.25),  # released under the pedal: held to pedal-up at 2.0
        pretty_midi.Note(90, 67, 1.25, 1.375),  # held by the pedal, then cut by the re-strike at 1.5
        pretty_midi.Note(50, 67, 1.5, 1.625),  # the re-strike, itself held to pedal-up
        pretty_midi.Note(70, 72, 2.5, 2.75),  # after the pedal: frames 20-21
    ]
    piano.control_changes = [pretty_midi.ControlChange(64, 127, 1.0), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(piano)
    pm.write(str(path))


def _expected(sustain: bool) -> torch.Tensor:
    onset, frame, velocity = (np.zeros((N_KEYS, 24), np.float32) for _ in range(3))

    def note(pitch, first, last, vel):  # frames first..last inclusive
        k = pitch - LOWEST_PITCH
        onset[k, first] = 1
        frame[k, first : last + 1] = 1
        velocity[k, first : last + 1] = vel / 127

    note(60, 0, 3, 100)
    if sustain:
        note(64, 9, 15, 80)
        note(67, 10, 11, 90)
        note(67, 12, 15, 50)
    else:
        note(64, 9, 9, 80)
        note(67, 10, 10, 90)
        note(67, 12, 12, 50)
    note(72, 20, 21, 70)
    return torch.from_numpy(np.concatenate([onset, frame, velocity]))


@pytest.mark.parametrize("sustain", [True, False])
def test_piano_roll_of_hand_written_midi_is_exact(tmp_path, sustain):
    path = tmp_path / "hand.mid"
    _hand_written(path)
    roll = piano_roll(path, PianoRollConfig(800, 100, sustain), n_frames=24)
    assert roll.shape == (3 * N_KEYS, 24)
    assert torch.equal(roll, _expected(sustain))


def test_sustained_notes_extend_under_the_pedal_and_stop_at_a_re_strike(tmp_path):
    path = tmp_path / "hand.mid"
    _hand_written(path)
    notes = sustained_notes(load_midi(path))
    assert [(n.pitch, n.start, n.end, n.velocity) for n in notes] == [
        (60, 0.0, 0.5, 100),
        (64, 1.125, 2.0, 80),  # held to pedal-up
        (67, 1.25, 1.5, 90),  # held by the pedal, cut where the key is struck again
        (67, 1.5, 2.0, 50),
        (72, 2.5, 2.75, 70),
    ]


def test_piano_roll_default_length_ends_with_last_sounding_note(tmp_path):
    path = tmp_path / "hand.mid"
    _hand_written(path)
    assert piano_roll(path, ROLL).shape[1] == 22  # last note ends at 2.75 s = frame 22


def test_load_midi_rejects_a_file_without_notes_and_non_midi(tmp_path):
    empty = tmp_path / "empty.mid"
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.write(str(empty))
    with pytest.raises(BadInputError, match="empty.mid: MIDI file has no notes"):
        load_midi(empty)
    text = tmp_path / "notes.mid"
    text.write_text("not midi")
    with pytest.raises(BadInputError, match="notes.mid: not a readable MIDI file"):
        load_midi(text)


# -- renderer -------------------------------------------------------------------------------------

ONSETS = (0.5, 1.25, 2.0, 2.625, 3.25)


def _melody(program: int = 0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    for t, pitch, vel in zip(ONSETS, (48, 60, 67, 72, 55), (90, 70, 110, 60, 100)):
        inst.notes.append(pretty_midi.Note(vel, pitch, t, t + 0.25))
    pm.instruments.append(inst)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(127, 36, 0.1, 0.2))  # drums are not piano: must stay silent
    pm.instruments.append(drums)
    return pm


def _spectral_flux_onsets(x: np.ndarray, sr: int, hop: int = 80, n_fft: int = 512) -> np.ndarray:
    """Onset times (s): peaks of the half-wave-rectified log-spectral flux, at least 0.2 of the largest
    and the largest within +-50 ms."""
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (n_fft // 2, n_fft // 2)), n_fft)[::hop]
    log_mag = np.log1p(1000 * np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)))
    flux = np.maximum(np.diff(log_mag, axis=0), 0).sum(axis=1)  # flux[i]: frame i -> i + 1
    peaks = [i for i in range(len(flux)) if flux[i] >= 0.2 * flux.max() and flux[i] == flux[max(0, i - 10) : i + 11].max()]
    return (np.array(peaks) + 1) * hop / sr


def test_render_is_audible_deterministic_and_onsets_match_the_midi():
    sr = 16000
    audio = render_midi(_melody(), sr)
    assert audio.shape == (1, int(np.ceil((3.5 + 1.0) * sr))) and audio.dtype == torch.float32
    assert torch.equal(audio, render_midi(_melody(), sr))
    x = audio[0].numpy()
    assert np.abs(x[: int(0.45 * sr)]).max() < 1e-4  # silence (and no drum) before the first note
    assert np.sqrt(np.mean(x**2)) > 1e-3
    detected = _spectral_flux_onsets(x, sr)
    assert len(detected) == len(ONSETS), detected  # one onset per note, nothing else
    assert np.abs(detected - np.array(ONSETS)).max() <= 0.03, detected
    # and the energy really rises there: +12 dB from the 30 ms before to the 30 ms after
    w = int(0.03 * sr)
    for t in ONSETS:
        i = int(t * sr)
        before, after = np.sqrt(np.mean(x[i - w : i] ** 2)) + 1e-9, np.sqrt(np.mean(x[i : i + w] ** 2))
        assert 20 * np.log10(after / before) > 12, t


def test_render_forces_acoustic_grand_piano(tmp_path):
    assert torch.equal(render_midi(_melody(program=40), 16000), render_midi(_melody(program=0), 16000))
    _melody(program=40).write(str(tmp_path / "violin.mid"))  # a path renders like the parsed file
    assert torch.equal(render_midi(tmp_path / "violin.mid", 16000), render_midi(_melody(program=0), 16000))
    # and what plays is a piano: a held note decays (organ, strings and violin sustain: ratio ~0.9-1.5)
    pm = pretty_midi.PrettyMIDI()
    organ = pretty_midi.Instrument(program=19)
    organ.notes.append(pretty_midi.Note(100, 60, 0.0, 2.0))
    pm.instruments.append(organ)
    x = render_midi(pm, 16000)[0].numpy()

    def rms(a, b):
        return np.sqrt(np.mean(x[int(a * 16000) : int(b * 16000)] ** 2))

    assert rms(1.6, 1.9) < 0.3 * rms(0.05, 0.35)


def test_render_limits_the_peak_without_changing_quiet_files():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for copy in range(4):  # forty fortissimo voices at once: far above full scale before limiting
        inst.notes += [pretty_midi.Note(127, p, 0.0, 1.0) for p in range(36, 96, 6)]
    pm.instruments.append(inst)
    loud = render_midi(pm, 16000, "/usr/share/sounds/sf2/FluidR3_GM.sf2") if _has_fluidr3() else render_midi(pm, 16000)
    assert float(loud.abs().max()) == pytest.approx(PEAK_CEILING, abs=1e-6)
    quiet = render_midi(_melody(), 16000)
    assert 0.01 < float(quiet.abs().max()) < PEAK_CEILING


def _has_fluidr3() -> bool:
    from pathlib import Path

    return Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file()


@pytest.mark.skipif(not _has_fluidr3(), reason="Debian's fluid-soundfont-gm is not installed")
def test_render_accepts_another_soundfont():
    a = render_midi(_melody(), 16000, "/usr/share/sounds/sf2/FluidR3_GM.sf2")
    b = render_midi(_melody(), 16000)
    assert a.shape == b.shape and not torch.equal(a, b) and float(a.abs().max()) > 0.01


def test_render_rejects_missing_and_bad_soundfonts(tmp_path):
    with pytest.raises(BadInputError, match="nope.sf2: soundfont not found"):
        render_midi(_melody(), 16000, tmp_path / "nope.sf2")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(BadInputError, match="bad.sf2: not a SoundFont 2"):
        render_midi(_melody(), 16000, bad)
