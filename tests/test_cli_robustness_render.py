"""``waveforge render`` under bad input: unplayable notes, long files, output paths (issue 19)."""

import numpy as np
import pretty_midi
import torch
import pytest

import waveforge
from waveforge.cli import main
from robustness_helpers import refused as _refused, tiny_renderer


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    return tiny_renderer(tmp_path_factory.mktemp("renderer") / "r.safetensors")


def _midi(path, pitches, end=0.5, resolution=220, tempo=120.0):
    midi = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=tempo)
    piano = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate(pitches):
        piano.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=0.1 * i, end=end + 0.1 * i))
    midi.instruments.append(piano)
    midi.write(str(path))
    return path




def test_a_midi_with_no_playable_note_is_refused(renderer, tmp_path, capsys, one_thread):
    midi = _midi(tmp_path / "high.mid", [110, 115, 120, 5])
    _refused(capsys, ["render", renderer, midi, "-o", tmp_path / "out.wav"], "high.mid", "none of the 4 notes is playable")
    assert not (tmp_path / "out.wav").exists()


def test_dropped_notes_are_counted_in_one_warning_line(renderer, tmp_path, capsys, one_thread):
    midi = _midi(tmp_path / "mixed.mid", [60, 64, 120])
    assert main(["render", str(renderer), str(midi), "-o", str(tmp_path / "out.wav")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "1 of 3 notes" in warnings[0] and "mixed.mid" in warnings[0], warnings
    assert waveforge.audio.audio_info(tmp_path / "out.wav").frames > 0


def test_a_midi_longer_than_the_limit_is_refused_before_the_roll(renderer, tmp_path, capsys):
    # one tick per beat at the slowest tempo: a few bytes that declare days of music
    midi = _midi(tmp_path / "long.mid", [60], end=3 * 24 * 3600.0, resolution=1, tempo=4.0)
    _refused(capsys, ["render", renderer, midi, "-o", tmp_path / "out.wav"], "long.mid", "over the limit")
    _refused(capsys, ["render", renderer, _midi(tmp_path / "short.mid", [60], end=30.0), "-o", tmp_path / "out.wav", "--max-seconds", "10"],
             "short.mid", "over the limit of 10 s")


@pytest.mark.parametrize("output, needle", [("out.mp4", "unknown audio suffix"), ("out", "unknown audio suffix"), ("afile/x.wav", "is a file")])
def test_the_output_path_is_checked_before_the_work(renderer, tmp_path, capsys, output, needle):
    (tmp_path / "afile").write_text("x")
    midi = _midi(tmp_path / "song.mid", [60])
    _refused(capsys, ["render", renderer, midi, "-o", tmp_path / output], needle)


def test_a_folder_as_output_is_refused(renderer, tmp_path, capsys):
    (tmp_path / "dir.wav").mkdir()
    _refused(capsys, ["render", renderer, _midi(tmp_path / "song.mid", [60]), "-o", tmp_path / "dir.wav"], "is a folder")


def test_max_seconds_applies_to_one_call_only(renderer, tmp_path, capsys):
    import os

    midi = _midi(tmp_path / "song.mid", [60], end=2.0)
    _refused(capsys, ["render", renderer, midi, "-o", tmp_path / "out.wav", "--max-seconds", "1"], "over the limit of 1 s")
    assert "WAVEFORGE_MAX_SECONDS" not in os.environ


def test_streamed_render_equals_the_whole_render(renderer, tmp_path, one_thread):
    from waveforge.audio.io import load_audio, save_audio_stream

    synth = waveforge.load(renderer)
    synth.chunk_frames = 64  # several chunks for a few seconds of music
    midi = _midi(tmp_path / "song.mid", [48, 60, 64, 67, 72], end=2.0)
    whole = synth.render(midi)
    pieces = list(synth.render_stream(midi))
    assert len(pieces) > 2
    assert torch.equal(torch.cat(pieces, dim=-1), whole)
    path, n = save_audio_stream(tmp_path / "out.wav", synth.render_stream(midi), synth.sample_rate)
    assert n == whole.shape[-1]
    assert torch.allclose(load_audio(path), whole[0].clamp(-1, 1), atol=1.5 / 32768)


def test_a_stream_that_turns_non_finite_leaves_no_file(tmp_path):
    from waveforge.audio.io import save_audio_stream
    from waveforge.errors import BadInputError

    pieces = [torch.zeros(1, 1, 100), torch.full((1, 1, 100), float("nan"))]
    with pytest.raises(BadInputError, match="NaN"):
        save_audio_stream(tmp_path / "out.wav", iter(pieces), 22050)
    assert list(tmp_path.iterdir()) == []


def test_roll_windows_equal_the_whole_roll(tmp_path):
    from waveforge.midi.roll import PianoRollConfig, PianoRollWindows, piano_roll

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    rng = np.random.default_rng(0)
    for _ in range(60):  # overlapping notes, repeated keys, some out of range
        start = float(rng.uniform(0, 4))
        piano.notes.append(pretty_midi.Note(velocity=int(rng.integers(1, 128)), pitch=int(rng.integers(15, 115)), start=start, end=start + float(rng.uniform(0.01, 1.5))))
    piano.control_changes.append(pretty_midi.ControlChange(64, 100, 1.0))
    piano.control_changes.append(pretty_midi.ControlChange(64, 0, 2.5))
    midi.instruments.append(piano)
    config = PianoRollConfig()
    whole = piano_roll(midi, config, n_frames=500)
    windows = PianoRollWindows(midi, config, n_frames=500)
    for lo, hi in [(0, 500), (0, 1), (37, 38), (100, 356), (250, 500), (499, 600)]:
        assert torch.equal(windows[..., lo:hi][0], whole[:, lo:hi]), (lo, hi)


def test_render_equals_synthesis_of_the_padded_roll(renderer, tmp_path, one_thread):
    from waveforge.midi.roll import piano_roll

    synth = waveforge.load(renderer)
    synth.chunk_frames = 64
    midi = _midi(tmp_path / "song.mid", [48, 60, 64, 67, 72], end=2.0)
    tail = int(np.ceil(0.5 * synth.feature.frame_rate))
    roll = torch.nn.functional.pad(piano_roll(pretty_midi.PrettyMIDI(str(midi)), synth.feature), (0, tail)).unsqueeze(0)
    assert torch.equal(synth.render(midi), synth.synthesize(roll))
