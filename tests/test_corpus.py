"""The offline MAESTRO-like corpus: determinism, layout, humanisation, and `data check` on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from waveforge.audio.io import audio_info
from waveforge.data.check import check_dataset
from waveforge.data.maestro import MaestroIndex
from waveforge.data.synth import (
    BASS,
    MELODY,
    PROCEDURAL_KINDS,
    Score,
    ScoreNote,
    SynthConfig,
    assign_splits,
    build_corpus,
    perform,
    procedural_score,
)
from waveforge.errors import BadInputError

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = SynthConfig(minutes=0.5, seed=7, sample_rate=16000)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "a"
    build_corpus(root, TINY, progress=False)
    return root


def _waveforge(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    return subprocess.run([sys.executable, "-m", "waveforge", *args], capture_output=True, text=True, env=env, timeout=300)


def test_same_seed_gives_byte_identical_files(tiny_corpus, tmp_path):
    # the second build runs in another process, through the command line
    proc = _waveforge("data", "synth", str(tmp_path / "b"), "--minutes", "0.5", "--sample-rate", "16000", "--seed", str(TINY.seed))
    assert proc.returncode == 0, proc.stderr
    a, b = _files(tiny_corpus), _files(tmp_path / "b")
    assert list(a) == list(b) and all(a[k] == b[k] for k in a)
    assert {"maestro-v3.0.0.csv", "maestro-v3.0.0.json"} <= set(a)
    assert sum(k.endswith(".wav") for k in a) == sum(k.endswith(".midi") for k in a) >= 3


def test_another_seed_gives_other_music(tiny_corpus, tmp_path):
    build_corpus(tmp_path / "c", SynthConfig(minutes=0.5, seed=8, sample_rate=16000, use_real=False), progress=False)
    a, c = _files(tiny_corpus), _files(tmp_path / "c")
    assert [v for k, v in sorted(a.items()) if k.endswith(".wav")] != [v for k, v in sorted(c.items()) if k.endswith(".wav")]


def test_tiny_corpus_is_maestro_layout_and_passes_check(tiny_corpus):
    summary = check_dataset(tiny_corpus, tolerance=0.001, progress=False)
    assert all(summary.splits[s].pieces >= 1 for s in ("train", "validation", "test"))
    assert summary.hours * 60 == pytest.approx(0.5, abs=0.25)
    index = MaestroIndex(tiny_corpus)
    for record in index:
        assert record.midi_path.parent.name == str(record.year) == record.audio_path.parent.name
        assert record.midi_path.suffix == ".midi" and record.audio_path.suffix == ".wav"
        assert record.midi_path.stem == record.audio_path.stem
        info = audio_info(record.audio_path)
        assert (info.sample_rate, info.channels) == (16000, 1)
        assert info.duration == pytest.approx(record.duration, abs=1e-5)
        midi = pretty_midi.PrettyMIDI(str(record.midi_path))
        assert [i.program for i in midi.instruments] == [0]
        assert info.duration > midi.get_end_time()  # the render rings out past the last event


def test_corrupted_wav_makes_data_check_exit_2_with_one_line(tiny_corpus, tmp_path):
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(tiny_corpus, root)
    wav = sorted(root.rglob("*.wav"))[1]
    wav.write_bytes(wav.read_bytes()[: len(wav.read_bytes()) // 2])
    proc = _waveforge("data", "check", str(root))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert lines[0].startswith(f"waveforge: error: {wav}: truncated WAV")


@pytest.mark.parametrize("n", [3, 4, 10, 11, 50])
def test_splits_are_by_piece_about_80_10_10_with_every_split_present(n):
    splits = assign_splits(n, np.random.default_rng(0))
    counts = {s: splits.count(s) for s in ("train", "validation", "test")}
    assert sum(counts.values()) == n and min(counts.values()) >= 1
    assert counts["validation"] == counts["test"] == max(1, round(0.1 * n))


def _pedal_events(midi: pretty_midi.PrettyMIDI) -> list[pretty_midi.ControlChange]:
    return [cc for cc in midi.instruments[0].control_changes if cc.number == 64]


@pytest.mark.parametrize("kind", sorted(PROCEDURAL_KINDS))
def test_every_procedural_kind_is_playable_piano_music(kind):
    generate, (slowest, fastest) = PROCEDURAL_KINDS[kind]
    from waveforge.data.synth import _Key

    score = generate(np.random.default_rng(1), _Key(2, kind == "chorale"), 40.0, 90.0)
    assert len(score.notes) >= 20
    assert all(21 <= n.pitch <= 108 and n.length > 0 for n in score.notes)
    midi = perform(score, np.random.default_rng(2))
    notes = midi.instruments[0].notes
    assert all(1 <= n.velocity <= 127 and n.end > n.start >= 0 for n in notes)
    by_pitch: dict[int, list] = {}
    for n in notes:  # a key sounds once at a time
        by_pitch.setdefault(n.pitch, []).append(n)
    for same in by_pitch.values():
        same.sort(key=lambda n: n.start)
        assert all(a.end <= b.start for a, b in zip(same, same[1:]))


def test_procedural_pieces_span_the_keyboard_and_dynamics():
    pitches, velocities, seconds = [], [], []
    for i in range(16):
        rng = np.random.default_rng((0, i))
        midi = perform(procedural_score(rng, 30.0), rng)
        pitches += [n.pitch for n in midi.instruments[0].notes]
        velocities.append(np.mean([n.velocity for n in midi.instruments[0].notes]))
        seconds.append(midi.get_end_time())
    assert min(pitches) <= 33 and max(pitches) >= 96  # from the bottom octave to the top one
    assert min(velocities) < 60 < 85 < max(velocities)  # quiet pieces and loud ones
    assert all(20 <= s <= 45 for s in seconds)  # 30 s asked, rubato and ritardandi allowed


def test_humaniser_bends_tempo_jitters_onsets_and_pedals():
    # sixteen bars of steady quarter notes with a bass note and a pedal change on each downbeat
    notes = [ScoreNote(72, float(b), 1.0, MELODY) for b in range(64)] + [ScoreNote(48, float(b), 4.0, BASS) for b in range(0, 64, 4)]
    score = Score("test", "test", notes, tempo_bpm=120.0, pedal_changes=[float(b) for b in range(0, 64, 4)], phrase_beats=16.0)
    midi = perform(score, np.random.default_rng(3))
    melody = sorted(n.start for n in midi.instruments[0].notes if n.pitch == 72)
    iois = np.diff(melody)
    assert iois.std() > 0.01  # not a metronome
    assert 0.4 < np.median(iois) < 0.6  # but still about 120 bpm
    assert iois[-3:].mean() > 1.1 * np.median(iois)  # final ritardando
    velocities = [n.velocity for n in midi.instruments[0].notes if n.pitch == 72]
    assert len(set(velocities)) > 5
    pedal = _pedal_events(midi)
    downs = [cc.time for cc in pedal if cc.value >= 64]
    ups = [cc.time for cc in pedal if cc.value < 64]
    assert len(downs) == 16 and len(ups) == 16  # a change per bar, released at the end
    assert [cc.value >= 64 for cc in sorted(pedal, key=lambda c: c.time)] == [True] + [False, True] * 15 + [False]
    bass_onsets = sorted(n.start for n in midi.instruments[0].notes if n.pitch == 48)
    for onset, up in zip(bass_onsets[1:], sorted(ups)):  # legato pedalling: lift just after the new bass
        assert 0.0 < up - onset < 0.1


def test_pedal_is_written_to_the_midi_file(tmp_path):
    build_corpus(tmp_path / "p", SynthConfig(minutes=0.5, seed=1, sample_rate=16000, use_real=False), progress=False)
    found = 0
    for path in sorted((tmp_path / "p").rglob("*.midi")):
        found += len(_pedal_events(pretty_midi.PrettyMIDI(str(path))))
    assert found > 0


def test_without_music21_the_builder_notes_it_and_goes_procedural(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "music21", None)  # `import music21` now raises ImportError
    pieces = build_corpus(tmp_path / "m", SynthConfig(minutes=0.2, seed=5, sample_rate=8000), progress=False)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "music21 is not installed" in err[0]
    assert {p.composer for p in pieces} == {"waveforge (procedural)"}


def test_bad_config_and_soundfont_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="--minutes must be positive"):
        SynthConfig(minutes=0, seed=0)
    with pytest.raises(BadInputError, match="missing.sf2: soundfont not found"):
        build_corpus(tmp_path / "x", SynthConfig(minutes=0.1, seed=0, soundfonts=(tmp_path / "missing.sf2",)), progress=False)
    assert not (tmp_path / "x").exists()  # nothing half-made


@pytest.mark.slow
def test_default_ten_minute_corpus_builds_and_checks(tmp_path):
    pieces = build_corpus(tmp_path / "c10", SynthConfig(minutes=10, seed=0), progress=False)
    summary = check_dataset(tmp_path / "c10", tolerance=0.001, progress=False)
    assert summary.pieces == len(pieces) >= 6 and 10 <= summary.hours * 60 < 12
    assert all(summary.splits[s].sample_rates == (44100,) for s in ("train", "validation", "test"))
    assert all(15 <= p.duration <= 100 for p in pieces)
    assert any(p.composer != "waveforge (procedural)" for p in pieces) and any(p.composer == "waveforge (procedural)" for p in pieces)


# -- more than one piano, and recordings' acoustics ----------------------------------------------------


@pytest.fixture(scope="module")
def two_pianos(tmp_path_factory) -> tuple[Path, Path]:
    """pretty_midi's soundfont under two names: enough to test how pieces are spread and split."""
    from waveforge.midi.render import default_soundfont

    folder = tmp_path_factory.mktemp("soundfonts")
    a, b = folder / "PianoA.sf2", folder / "PianoB.sf2"
    a.write_bytes(default_soundfont().read_bytes())
    b.write_bytes(default_soundfont().read_bytes())
    return a, b


MULTI = dict(minutes=0.6, seed=11, sample_rate=16000, use_real=False, min_piece_seconds=1.0, max_piece_seconds=2.0)


def test_pieces_are_spread_across_soundfonts_and_recorded(two_pianos, tmp_path):
    pieces = build_corpus(tmp_path / "c", SynthConfig(soundfonts=two_pianos, **MULTI), progress=False)
    records = MaestroIndex(tmp_path / "c").records
    fonts = [r.soundfont for r in records]
    assert len(records) == len(pieces) >= 5
    assert set(fonts) == {"PianoA", "PianoB"}
    assert abs(fonts.count("PianoA") - fonts.count("PianoB")) <= 1
    # the CSV and the JSON agree on the extra column
    json_index = MaestroIndex(tmp_path / "c", metadata=tmp_path / "c" / "maestro-v3.0.0.json")
    assert [r.soundfont for r in json_index.records] == fonts


def test_held_out_soundfont_is_the_test_split_and_only_it(two_pianos, tmp_path):
    build_corpus(tmp_path / "c", SynthConfig(soundfonts=two_pianos, holdout_soundfont="PianoB", **MULTI), progress=False)
    index = MaestroIndex(tmp_path / "c")
    assert index.split("test") and all(r.soundfont == "PianoB" for r in index.split("test"))
    assert all(r.soundfont == "PianoA" for r in index.split("train") + index.split("validation"))
    summary = check_dataset(tmp_path / "c", progress=False)
    assert summary.splits["test"].soundfonts == ("PianoB",) and summary.splits["train"].soundfonts == ("PianoA",)
    assert "soundfonts PianoB" in summary.format()


def test_holdout_needs_a_known_soundfont_and_another_to_train_on(two_pianos):
    with pytest.raises(BadInputError, match="not one of the soundfonts"):
        SynthConfig(minutes=1, seed=0, soundfonts=two_pianos, holdout_soundfont="Nope")
    with pytest.raises(BadInputError, match="at least two soundfonts"):
        SynthConfig(minutes=1, seed=0, soundfonts=two_pianos[:1], holdout_soundfont="PianoA")


def test_multi_soundfont_acoustic_corpus_is_byte_identical_for_a_seed_and_checks(two_pianos, tmp_path):
    config = SynthConfig(soundfonts=two_pianos, holdout_soundfont="PianoA.sf2", acoustics=True, **MULTI)
    build_corpus(tmp_path / "a", config, progress=False)
    build_corpus(tmp_path / "b", config, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert list(a) == list(b) and all(a[k] == b[k] for k in a)
    records = MaestroIndex(tmp_path / "a").records
    rooms = [json.loads(r.extra["acoustics"]) for r in records]
    assert len({room["room"] for room in rooms}) >= 2 and all(room["rt60"] > 0 for room in rooms)
    check_dataset(tmp_path / "a", progress=False)
    # the acoustics really are in the audio: not the dry render
    from waveforge.audio.io import load_audio
    from waveforge.midi.render import render_midi

    dry = render_midi(records[0].midi_path, 16000, two_pianos[0] if records[0].soundfont == "PianoA" else two_pianos[1])
    wet = load_audio(records[0].audio_path)
    n = min(wet.shape[-1], dry.shape[-1])  # the MIDI file's ticks round the end time by a few samples
    assert abs(wet.shape[-1] - dry.shape[-1]) < 100 and not torch.allclose(wet[..., :n], dry[..., :n], atol=1e-3)


def test_a_room_lengthens_the_decay_measured():
    from waveforge.audio.room import Acoustics, apply_acoustics, decay_time
    from waveforge.midi.render import render_midi

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(100, 72, 0.1, 0.25))  # staccato: the damper ends it at once
    midi.instruments.append(piano)
    sr = 16000
    dry = render_midi(midi, sr, tail_seconds=2.5)
    hall = apply_acoustics(dry, sr, Acoustics(room="hall", rt60=1.6, drr_db=0.0, seed=1))
    small = apply_acoustics(dry, sr, Acoustics(room="small", rt60=0.3, drr_db=0.0, seed=1))
    t_dry, t_small, t_hall = (decay_time(x, sr, drop_db=40) for x in (dry, small, hall))
    assert t_hall > t_dry + 0.5 and t_hall > t_small + 0.4
    # 40 dB of a 60 dB RT60 of 1.6 s takes about 1.07 s
    assert t_hall == pytest.approx(40 / 60 * 1.6, rel=0.35)


def test_tilt_level_and_noise_are_what_they_say():
    from waveforge.audio.room import Acoustics, apply_acoustics

    sr = 16000
    t = torch.arange(sr) / sr
    tones = 0.1 * torch.sin(2 * torch.pi * 250 * t) + 0.1 * torch.sin(2 * torch.pi * 4000 * t)
    out = apply_acoustics(tones, sr, Acoustics(tilt_db_per_octave=1.0, gain_db=-6.0))
    spectrum = torch.fft.rfft(out).abs()
    low, high = float(spectrum[250]), float(spectrum[4000])
    # 250 Hz is 2 octaves below 1 kHz (-2 dB), 4 kHz 2 above (+2 dB); then -6 dB overall
    assert 20 * np.log10(high / low) == pytest.approx(4.0, abs=0.1)
    assert 20 * np.log10(high / float(torch.fft.rfft(tones).abs()[4000])) == pytest.approx(2.0 - 6.0, abs=0.1)
    silence = apply_acoustics(torch.zeros(sr), sr, Acoustics(noise_dbfs=-60.0))
    assert 20 * np.log10(float(silence.square().mean().sqrt())) == pytest.approx(-60.0, abs=0.2)
