"""MaestroIndex on the real MAESTRO v3 metadata format, and the bad inputs check_dataset must name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from waveforge.audio.io import save_audio
from waveforge.data.check import check_dataset
from waveforge.data.maestro import COLUMNS, MaestroIndex, read_metadata_rows, write_metadata
from waveforge.errors import BadInputError

REPO = Path(__file__).resolve().parents[1]
SUBSET = Path(__file__).parent / "fixtures" / "maestro-v3-subset"
# The full metadata lives beside the repository (../shared/...); a git worktree sits one level deeper.
FULL = next(
    (p for p in (REPO.parent / "shared/data/maestro-v3.0.0-metadata", REPO.parent.parent / "shared/data/maestro-v3.0.0-metadata") if p.is_dir()),
    None,
)


def _key(r):
    return (r.composer, r.title, r.split, r.year, r.midi_path, r.audio_path, r.duration, r.row)


def test_subset_csv_and_column_json_agree():
    from_csv = MaestroIndex(SUBSET, SUBSET / "maestro-v3.0.0.csv", check_files=False)
    from_json = MaestroIndex(SUBSET, SUBSET / "maestro-v3.0.0.json", check_files=False)
    assert len(from_csv) == 30
    assert [len(from_csv.split(s)) for s in ("train", "validation", "test")] == [12, 9, 9]
    assert [_key(r) for r in from_csv] == [_key(r) for r in from_json]
    first = from_csv.records[0]
    assert (first.composer, first.title, first.year) == ("Alban Berg", "Sonata Op. 1", 2018)
    assert first.audio_path == (SUBSET / "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.wav").absolute()
    assert first.duration == pytest.approx(698.661160312)
    assert any(r.composer == "Frédéric Chopin" for r in from_csv)  # UTF-8 survives both readers


def test_default_metadata_file_is_the_v3_csv_and_files_are_checked():
    with pytest.raises(BadInputError, match=r"maestro-v3.0.0.csv: row 0: midi_filename .* does not exist"):
        MaestroIndex(SUBSET)


def test_v1_v2_row_list_json_is_accepted(tmp_path):
    rows = read_metadata_rows(SUBSET / "maestro-v3.0.0.json")
    (tmp_path / "maestro-v2.0.0.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    v2 = MaestroIndex(tmp_path, check_files=False)
    v3 = MaestroIndex(tmp_path, SUBSET / "maestro-v3.0.0.json", check_files=False)
    assert v2.metadata_path.name == "maestro-v2.0.0.json"
    assert [_key(r)[:4] + (r.duration,) for r in v2] == [_key(r)[:4] + (r.duration,) for r in v3]


@pytest.mark.skipif(FULL is None, reason="the full MAESTRO v3 metadata (../shared/data/maestro-v3.0.0-metadata) is not here")
@pytest.mark.parametrize("name", ["maestro-v3.0.0.csv", "maestro-v3.0.0.json"])
def test_full_maestro_v3_metadata_has_the_documented_counts(name):
    index = MaestroIndex(FULL, FULL / name, check_files=False)
    assert len(index) == 1276
    assert [len(index.split(s)) for s in ("train", "validation", "test")] == [962, 137, 177]
    assert [round(index.hours(s), 2) for s in ("train", "validation", "test")] == [159.24, 19.43, 19.98]


# -- check_dataset on a small hand-made dataset -----------------------------------------------------

SR = 8000


def _make_dataset(root: Path) -> list[dict]:
    rows = []
    for i, split in enumerate(("train", "validation", "test")):
        stem = f"2018/piece{i}"
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(0)
        inst.notes.append(pretty_midi.Note(80, 60 + i, 0.1, 1.0))
        pm.instruments.append(inst)
        (root / "2018").mkdir(parents=True, exist_ok=True)
        pm.write(str(root / f"{stem}.midi"))
        seconds = 1.5 + i
        t = np.arange(int(seconds * SR)) / SR
        save_audio(root / f"{stem}.wav", 0.3 * np.sin(2 * np.pi * 220 * t), SR)
        rows.append({"canonical_composer": "Test", "canonical_title": f"Piece {i}", "split": split, "year": 2018,
                     "midi_filename": f"{stem}.midi", "audio_filename": f"{stem}.wav", "duration": seconds})
    write_metadata(root, rows)
    return rows


def test_check_dataset_summarises_a_good_folder(tmp_path):
    _make_dataset(tmp_path)
    summary = check_dataset(tmp_path, progress=False)
    assert summary.pieces == 3 and summary.splits["test"].seconds == pytest.approx(3.5)
    assert summary.hours == pytest.approx((1.5 + 2.5 + 3.5) / 3600)
    text = summary.format()
    assert "train" in text and "validation" in text and f"{SR} Hz" in text


def test_truncated_wav_is_named(tmp_path):
    _make_dataset(tmp_path)
    wav = tmp_path / "2018/piece1.wav"
    wav.write_bytes(wav.read_bytes()[:-1000])
    with pytest.raises(BadInputError, match=r"piece1.wav: truncated WAV"):
        check_dataset(tmp_path, progress=False)


def test_text_file_named_wav_is_named(tmp_path):
    _make_dataset(tmp_path)
    (tmp_path / "2018/piece2.wav").write_text("this is not audio\n")
    with pytest.raises(BadInputError, match=r"piece2.wav: not a readable audio file"):
        check_dataset(tmp_path, progress=False)


def test_midi_without_notes_is_named(tmp_path):
    _make_dataset(tmp_path)
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.write(str(tmp_path / "2018/piece0.midi"))
    with pytest.raises(BadInputError, match=r"piece0.midi: MIDI file has no notes"):
        check_dataset(tmp_path, progress=False)


def test_duration_mismatch_is_named(tmp_path):
    rows = _make_dataset(tmp_path)
    rows[1]["duration"] = 9.0
    write_metadata(tmp_path, rows)
    with pytest.raises(BadInputError, match=r"piece1.wav: audio lasts 2.500 s but the metadata \(row 1\) says 9.000 s"):
        check_dataset(tmp_path, progress=False)
    check_dataset(tmp_path, tolerance=7.0, progress=False)  # within a loose tolerance it passes


def test_csv_missing_a_column_is_named(tmp_path):
    _make_dataset(tmp_path)
    csv_path = tmp_path / "maestro-v3.0.0.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(",".join(line.split(",")[:-1]) for line in lines) + "\n")  # drop `duration`
    with pytest.raises(BadInputError, match=r"maestro-v3.0.0.csv: metadata is missing column\(s\) duration"):
        check_dataset(tmp_path, progress=False)


def test_json_missing_a_column_is_named(tmp_path):
    _make_dataset(tmp_path)
    (tmp_path / "maestro-v3.0.0.csv").unlink()
    data = json.loads((tmp_path / "maestro-v3.0.0.json").read_text())
    del data["split"]
    (tmp_path / "maestro-v3.0.0.json").write_text(json.dumps(data))
    with pytest.raises(BadInputError, match=r"maestro-v3.0.0.json: metadata is missing column\(s\) split"):
        check_dataset(tmp_path, progress=False)


@pytest.mark.parametrize("bad", ["../outside.wav", "2018/../../outside.wav", "/etc/passwd"])
def test_path_escaping_the_root_is_refused(tmp_path, bad):
    rows = _make_dataset(tmp_path / "data")
    shutil.copy(tmp_path / "data/2018/piece0.wav", tmp_path / "outside.wav")  # it exists, and is still refused
    rows[0]["audio_filename"] = bad
    write_metadata(tmp_path / "data", rows)
    with pytest.raises(BadInputError, match=r"row 0: audio_filename .* escapes the dataset root"):
        check_dataset(tmp_path / "data", progress=False)


def test_missing_file_and_bad_split_are_named(tmp_path):
    rows = _make_dataset(tmp_path)
    (tmp_path / "2018/piece2.wav").unlink()
    with pytest.raises(BadInputError, match=r"row 2: audio_filename '2018/piece2.wav' does not exist"):
        check_dataset(tmp_path, progress=False)
    rows[0]["split"] = "dev"
    write_metadata(tmp_path, rows)
    with pytest.raises(BadInputError, match=r"row 0: split 'dev' is not one of"):
        MaestroIndex(tmp_path, check_files=False)


def test_write_metadata_round_trips_in_v3_format(tmp_path):
    rows = _make_dataset(tmp_path)
    data = json.loads((tmp_path / "maestro-v3.0.0.json").read_text())
    assert list(data) == list(COLUMNS) and data["split"] == {"0": "train", "1": "validation", "2": "test"}
    assert read_metadata_rows(tmp_path / "maestro-v3.0.0.json") == rows


def test_symlinked_year_folder_is_allowed(tmp_path):
    _make_dataset(tmp_path / "elsewhere")
    root = tmp_path / "data"
    root.mkdir()
    (root / "2018").symlink_to(tmp_path / "elsewhere/2018", target_is_directory=True)
    shutil.copy(tmp_path / "elsewhere/maestro-v3.0.0.csv", root)
    assert check_dataset(root, progress=False).pieces == 3


def test_data_list_prints_a_splits_files(tiny_corpus, capsys):
    """`waveforge data list` (the recipes' run.sh use it to pick held-out pieces)."""
    from waveforge.cli import main as cli_main

    index = MaestroIndex(tiny_corpus)
    assert cli_main(["data", "list", str(tiny_corpus), "--split", "test"]) == 0
    assert capsys.readouterr().out.split() == [str(r.audio_path) for r in index.split("test")]
    assert cli_main(["data", "list", str(tiny_corpus), "--split", "validation", "--midi"]) == 0
    assert capsys.readouterr().out.split() == [str(r.midi_path) for r in index.split("validation")]
