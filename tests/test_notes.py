"""Note-level evaluation: mir_eval scoring by hand count, the transcriber on known audio, `eval --notes`."""

import json

import numpy as np
import pretty_midi
import pytest
import torch

from waveforge.cli import main as cli_main
from waveforge.notes import NoteList, midi_notes, note_scores, notes_available

needs_notes = pytest.mark.skipif(not notes_available(), reason="the notes extra (transkun, mir_eval) is not installed")


def _notes(*rows):
    return NoteList.from_tuples([(s, e, p, 80) for s, e, p in rows])


@needs_notes
def test_scores_agree_with_a_hand_count():
    reference = _notes((0.0, 0.5, 60), (0.5, 1.0, 62), (1.0, 1.5, 64), (1.5, 2.0, 65))
    estimated = _notes(
        (0.02, 0.50, 60),  # hit, offset right
        (0.46, 0.70, 62),  # hit (40 ms early), offset 300 ms early: misses with offsets
        (1.00, 1.50, 63),  # wrong pitch
        (1.58, 2.00, 65),  # 80 ms late: outside the 50 ms tolerance
        (2.50, 3.00, 70),  # extra note
    )
    s = note_scores(reference, estimated)
    assert s["n_reference"] == 4 and s["n_estimated"] == 5
    assert s["onset_precision"] == pytest.approx(2 / 5)
    assert s["onset_recall"] == pytest.approx(2 / 4)
    assert s["onset_f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    # with offsets only the first note matches: P 1/5, R 1/4
    assert s["offset_f1"] == pytest.approx(2 * 0.2 * 0.25 / 0.45)


@needs_notes
def test_empty_transcriptions_score_zero_and_silence_matches_silence():
    reference = _notes((0.0, 0.5, 60))
    empty = NoteList.from_tuples([])
    assert note_scores(reference, empty)["onset_f1"] == 0.0
    assert note_scores(empty, reference)["onset_f1"] == 0.0
    assert note_scores(empty, empty)["onset_f1"] == 1.0


def test_reference_notes_are_as_played_and_clipped_to_the_excerpt():
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(80, 60, 0.5, 1.0), pretty_midi.Note(80, 64, 1.5, 3.0), pretty_midi.Note(80, 67, 2.5, 2.8)]
    piano.control_changes += [pretty_midi.ControlChange(64, 127, 0.2), pretty_midi.ControlChange(64, 0, 2.0)]
    midi.instruments.append(piano)
    notes = midi_notes(midi, seconds=2.0)
    # the pedal would hold the first note to 2.0 s; as played it ends at 1.0 s. The note at 2.5 s is not in the excerpt.
    assert notes.pitches.tolist() == [60, 64]
    assert np.allclose(notes.intervals, [[0.5, 1.0], [1.5, 2.0]])


def test_notes_without_the_extra_is_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("waveforge.notes.notes_available", lambda: False)
    code = cli_main(["eval", str(tmp_path / "model.safetensors"), "--data", str(tmp_path), "--notes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'waveforge[notes]'" in err[0]


# -- the real transcriber (slow: transkun takes about a second per second of audio on 2 cores) ----------


def _known_midi() -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    pitches = [48, 60, 64, 67, 72, 71, 69, 65, 62, 55, 59, 74]
    piano.notes += [pretty_midi.Note(70 + (i * 7) % 40, p, 0.4 + 0.35 * i, 0.7 + 0.35 * i) for i, p in enumerate(pitches)]
    piano.notes.append(pretty_midi.Note(90, 36, 0.4, 2.0))  # a held bass note under the line
    midi.instruments.append(piano)
    return midi


def test_the_transcribers_pedal_events_are_not_notes():
    """transkun reports the sustain and soft pedals as events of pitch -64 and -67 beside the notes."""
    from types import SimpleNamespace

    from waveforge.notes import Transcriber

    class FakeTransKun:
        def transcribe(self, stereo, discardSecondHalf):
            assert stereo.shape[1] == 2
            return [SimpleNamespace(start=0.1, end=0.5, pitch=60, velocity=70),
                    SimpleNamespace(start=0.0, end=2.0, pitch=-64, velocity=127),
                    SimpleNamespace(start=0.3, end=0.9, pitch=-67, velocity=127),
                    SimpleNamespace(start=0.6, end=0.8, pitch=21, velocity=40)]

    transcriber = object.__new__(Transcriber)
    transcriber.model, transcriber.device, transcriber.sample_rate = FakeTransKun(), torch.device("cpu"), 16000
    notes = transcriber.transcribe(np.zeros(16000, dtype=np.float32), 16000)
    assert notes.pitches.tolist() == [60, 21]
    assert notes.intervals.tolist() == [[0.1, 0.5], [0.6, 0.8]]


@pytest.fixture(scope="module")
def transcriber():
    if not notes_available():
        pytest.skip("the notes extra (transkun, mir_eval) is not installed")
    from waveforge.notes import Transcriber

    return Transcriber()


@pytest.mark.slow
def test_transcriber_finds_the_notes_of_a_fluidsynth_render_and_not_of_silence_noise_or_a_shift(transcriber):
    from waveforge.midi.render import render_midi

    sr = 22050
    midi = _known_midi()
    audio = render_midi(midi, sr)[0]
    reference = midi_notes(midi)
    assert note_scores(reference, transcriber.transcribe(audio, sr))["onset_f1"] >= 0.9
    shifted = torch.cat([torch.zeros(int(0.150 * sr)), audio])
    assert note_scores(reference, transcriber.transcribe(shifted, sr))["onset_f1"] <= 0.1
    assert note_scores(reference, transcriber.transcribe(torch.zeros_like(audio), sr))["onset_f1"] <= 0.1
    noise = 0.1 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(0))
    assert note_scores(reference, transcriber.transcribe(noise, sr))["onset_f1"] <= 0.1


@pytest.mark.slow
def test_eval_notes_through_the_cli_on_a_renderer(tiny_corpus, tmp_path, capsys, monkeypatch):
    """A (tiny, untrained) piano-roll model through `waveforge eval --notes`: the model plays no notes,
    while the transcriber finds them in the reference and FluidSynth audio."""
    from waveforge.inference.modelfile import ModelFile, save_model_file
    from waveforge.midi.roll import PianoRollConfig
    from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig

    cfg = MelGANGeneratorConfig.tiny(cond_channels=264, upsample_factors=[8, 8, 4])  # hop 256, as the roll
    model = MelGANGenerator(cfg)
    feature = PianoRollConfig(sample_rate=22050, hop_length=256)
    path = save_model_file(tmp_path / "r.safetensors", ModelFile("melgan", cfg.to_dict(), feature, 22050, model.state_dict()))
    code = cli_main(["eval", str(path), "--data", str(tiny_corpus), "--seconds", "4", "--max-pieces", "1", "--notes"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    notes = result["notes"]
    assert set(notes) == {"model", "reference", "fluidsynth"}
    assert notes["reference"]["onset_f1"] >= 0.8 and notes["fluidsynth"]["onset_f1"] >= 0.8
    assert notes["model"]["onset_f1"] <= 0.3
