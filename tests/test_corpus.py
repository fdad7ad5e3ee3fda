"""The offline MAESTRO-like corpus: determinism, layout, humanisation, and `data check` on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

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
        build_corpus(tmp_path / "x", SynthConfig(minutes=0.1, seed=0, soundfont=tmp_path / "missing.sf2"), progress=False)
    assert not (tmp_path / "x").exists()  # nothing half-made


@pytest.mark.slow
def test_default_ten_minute_corpus_builds_and_checks(tmp_path):
    pieces = build_corpus(tmp_path / "c10", SynthConfig(minutes=10, seed=0), progress=False)
    summary = check_dataset(tmp_path / "c10", tolerance=0.001, progress=False)
    assert summary.pieces == len(pieces) >= 6 and 10 <= summary.hours * 60 < 12
    assert all(summary.splits[s].sample_rates == (44100,) for s in ("train", "validation", "test"))
    assert all(15 <= p.duration <= 100 for p in pieces)
    assert any(p.composer != "waveforge (procedural)" for p in pieces) and any(p.composer == "waveforge (procedural)" for p in pieces)
