"""The MAESTRO v3 layout: a metadata table (CSV and/or JSON) plus ``<year>/<stem>.{midi,wav}``.

Reads v3's column-oriented JSON (``{"split": {"0": "train", ...}, ...}``), the v1/v2 JSON list of
rows, and the CSV. Every problem names the row it is in.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal

from waveforge.errors import BadInputError

COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration")
SPLITS = ("train", "validation", "test")
Split = Literal["train", "validation", "test"]


@dataclass(frozen=True)
class MaestroRecord:
    """One performance; paths are absolute, resolved inside the dataset root."""

    composer: str
    title: str
    split: Split
    year: int
    midi_path: Path
    audio_path: Path
    duration: float
    row: int  # 0-based row in the metadata table, for error messages
    #: columns beyond MAESTRO's seven, as strings (a synthetic corpus's ``soundfont`` and ``acoustics``)
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def soundfont(self) -> str | None:
        """The soundfont a synthetic piece was rendered with; ``None`` for a recording."""
        return self.extra.get("soundfont") or None

    @property
    def stem(self) -> str:
        return self.audio_path.stem


def _metadata_file(root: Path) -> Path:
    for name in ("maestro-v3.0.0.csv", "maestro-v3.0.0.json", "maestro-v2.0.0.json", "maestro-v1.0.0.json", "maestro-v2.0.0.csv", "maestro-v1.0.0.csv"):
        if (root / name).is_file():
            return root / name
    found = [p for p in sorted(root.glob("maestro*.csv")) + sorted(root.glob("maestro*.json")) if p.is_file()]
    if found:
        return found[0]
    raise BadInputError(root, "no MAESTRO metadata (maestro-v3.0.0.csv or .json) in this folder")


def read_metadata_rows(path: Path) -> list[dict]:
    """Rows as dicts of the seven columns, from a CSV, a v3 column-oriented JSON, or a v1/v2 row list."""
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: CSVs re-saved by spreadsheets start with a BOM
                reader = csv.DictReader(f)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise BadInputError(path, f"metadata is missing column(s) {', '.join(missing)}")
                return [dict(r) for r in reader]
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # json nests without limit; a 100,000-deep document is not metadata
        raise BadInputError(path, "unreadable metadata (JSON nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error, OSError) as e:
        raise BadInputError(path, f"unreadable metadata ({str(e)[:120]})") from None
    if isinstance(data, list):  # v1/v2: a list of row objects
        return [dict(r) if isinstance(r, dict) else {"__bad__": r} for r in data]
    if isinstance(data, dict):  # v3: column -> {row index: value}
        missing = [c for c in COLUMNS if c not in data]
        if missing:
            raise BadInputError(path, f"metadata is missing column(s) {', '.join(missing)}")
        if not all(isinstance(data[c], dict) for c in COLUMNS):
            raise BadInputError(path, "metadata JSON columns must map row numbers to values (v3 layout)")
        try:
            keys = sorted(data["split"].keys(), key=lambda k: int(k))
        except ValueError:
            raise BadInputError(path, "metadata JSON row keys must be row numbers") from None
        extra = [c for c, v in data.items() if c not in COLUMNS and isinstance(v, dict)]
        return [{c: data[c].get(k) for c in (*COLUMNS, *extra)} for k in keys]
    raise BadInputError(path, "metadata JSON is neither column-oriented (v3) nor a list of rows (v1/v2)")


def _inside(root: Path, rel: object, row: int, column: str, meta: Path) -> Path:
    if not isinstance(rel, str) or not rel:
        raise BadInputError(meta, f"row {row}: {column} is empty or not a string")
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise BadInputError(meta, f"row {row}: {column} {rel!r} escapes the dataset root")
    # No resolve(): year folders symlinked to another disk are fine; ".." and absolute paths are not.
    return root.absolute() / pure


class MaestroIndex:
    """Typed records of a MAESTRO-layout folder.

    >>> index = MaestroIndex("/data/maestro-v3.0.0")
    >>> test = index.split("test")
    """

    def __init__(self, root: str | os.PathLike, metadata: str | os.PathLike | None = None, check_files: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BadInputError(self.root, "dataset root is not a folder")
        self.metadata_path = Path(metadata) if metadata else _metadata_file(self.root)
        self.records = self._parse(read_metadata_rows(self.metadata_path), check_files)

    def _parse(self, rows: list[dict], check_files: bool) -> list[MaestroRecord]:
        meta = self.metadata_path
        records = []
        for i, r in enumerate(rows):
            missing = [c for c in COLUMNS if c not in r]
            if missing:
                raise BadInputError(meta, f"row {i}: malformed, missing {', '.join(missing)}")
            if r["split"] not in SPLITS:
                raise BadInputError(meta, f"row {i}: split {r['split']!r} is not one of {', '.join(SPLITS)}")
            try:
                year, duration = int(r["year"]), float(r["duration"])
            except (TypeError, ValueError, OverflowError):
                raise BadInputError(meta, f"row {i}: malformed year {r['year']!r} or duration {r['duration']!r}") from None
            if not 0 < duration < float("inf"):
                raise BadInputError(meta, f"row {i}: duration {duration} is not a positive finite number")
            midi = _inside(self.root, r["midi_filename"], i, "midi_filename", meta)
            audio = _inside(self.root, r["audio_filename"], i, "audio_filename", meta)
            if check_files:
                for column, p in (("midi_filename", midi), ("audio_filename", audio)):
                    if not p.is_file():
                        raise BadInputError(meta, f"row {i}: {column} {r[column]!r} does not exist under {self.root}")
            extra = {str(k): str(v) for k, v in r.items() if k not in COLUMNS and k is not None and v is not None}
            records.append(
                MaestroRecord(str(r["canonical_composer"]), str(r["canonical_title"]), r["split"], year, midi, audio, duration, i, extra)
            )
        return records

    def split(self, name: Split | str) -> list[MaestroRecord]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return [r for r in self.records if r.split == name]

    def hours(self, name: str | None = None) -> float:
        return sum(r.duration for r in (self.records if name is None else self.split(name))) / 3600

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[MaestroRecord]:
        return iter(self.records)


def write_metadata(root: str | os.PathLike, rows: list[dict], version: str = "v3.0.0") -> tuple[Path, Path]:
    """Write ``maestro-<version>.csv`` and the column-oriented ``.json`` (atomically).

    MAESTRO's seven columns come first; columns beyond them (those of the first row) follow.
    """
    import io

    from waveforge.utils.atomic import atomic_write_text

    root = Path(root)
    names = list(COLUMNS) + [c for c in (rows[0] if rows else {}) if c not in COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in names})
    csv_path, json_path = root / f"maestro-{version}.csv", root / f"maestro-{version}.json"
    atomic_write_text(csv_path, buf.getvalue())
    columns = {c: {str(i): r.get(c, "") for i, r in enumerate(rows)} for c in names}
    atomic_write_text(json_path, json.dumps(columns))
    return csv_path, json_path
