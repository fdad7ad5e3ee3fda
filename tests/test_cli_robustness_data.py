"""``waveforge data check`` under hostile metadata and audio: one line naming the file, exit 2 (issue 19)."""

import json

import numpy as np
import pytest
import soundfile as sf

from waveforge.cli import main
from waveforge.data.maestro import write_metadata
from robustness_helpers import refused as _refused, write_wav

SR = 16000


def _dataset(root):
    rows = []
    for i, split in enumerate(("train", "validation", "test")):
        stem = f"2018/piece{i}"
        write_wav(root / f"{stem}.wav", seconds=1.0, sample_rate=SR)
        import pretty_midi

        pm = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(0)
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.5))
        pm.instruments.append(piano)
        pm.write(str(root / f"{stem}.midi"))
        rows.append({"canonical_composer": "Test", "canonical_title": f"Piece {i}", "split": split, "year": 2018,
                     "midi_filename": f"{stem}.midi", "audio_filename": f"{stem}.wav", "duration": 1.0})
    write_metadata(root, rows)
    return rows




def test_a_good_folder_passes_with_decode(tmp_path, capsys):
    _dataset(tmp_path)
    assert main(["data", "check", str(tmp_path), "--decode"]) == 0


def test_deeply_nested_json_is_one_line(tmp_path, capsys):
    (tmp_path / "maestro-v3.0.0.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused(capsys, ["data", "check", tmp_path], "maestro-v3.0.0.json", "nested too deeply")


def test_a_year_of_infinity_is_one_line(tmp_path, capsys):
    rows = _dataset(tmp_path)
    (tmp_path / "maestro-v3.0.0.csv").unlink()
    columns = {c: {str(i): r[c] for i, r in enumerate(rows)} for c in rows[0]}
    columns["year"]["1"] = float("inf")
    (tmp_path / "maestro-v3.0.0.json").write_text(json.dumps(columns))  # json writes Infinity
    _refused(capsys, ["data", "check", tmp_path], "maestro-v3.0.0.json", "row 1")


def test_an_infinite_duration_is_one_line(tmp_path, capsys):
    rows = _dataset(tmp_path)
    rows[2]["duration"] = "inf"
    write_metadata(tmp_path, rows)
    _refused(capsys, ["data", "check", tmp_path], "row 2", "finite")


def test_a_folder_named_like_metadata_is_skipped(tmp_path, capsys):
    (tmp_path / "maestro-odd.csv").mkdir()
    _refused(capsys, ["data", "check", tmp_path], "no MAESTRO metadata")


def test_decode_finds_a_wav_of_nan_samples(tmp_path, capsys):
    _dataset(tmp_path)
    sf.write(str(tmp_path / "2018/piece1.wav"), np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    assert main(["data", "check", str(tmp_path)]) == 0  # the header alone looks fine
    capsys.readouterr()
    _refused(capsys, ["data", "check", tmp_path, "--decode"], "piece1.wav", "NaN or infinite")


@pytest.mark.parametrize("rate", [1, 900_000])
def test_a_sample_rate_outside_the_range_is_one_line(tmp_path, capsys, rate):
    _dataset(tmp_path)
    path = tmp_path / "2018/piece0.wav"
    sf.write(str(path), np.zeros(rate if rate > 1 else 10, np.float32), rate, subtype="FLOAT")
    _refused(capsys, ["data", "check", tmp_path], "piece0.wav", "outside 1,000-768,000 Hz")
