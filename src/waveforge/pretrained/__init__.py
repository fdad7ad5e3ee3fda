"""Models shipped inside the package: ``waveforge.load("piano")``, ``waveforge render song.mid``.

Each shipped model is one ``.safetensors`` model file in this folder (package data, float16
weights, read back as float32) with its model card (``.md``) beside it. Nothing is downloaded and
nothing is unpickled: a name resolves to a file here, and the file is read like any other model.

A value names a shipped model when it is one of :data:`SHIPPED`'s names and no file of that name
exists (a path always means the file). ``recipes/piano/`` reproduces both files.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from waveforge.errors import BadInputError


@dataclass(frozen=True)
class ShippedModel:
    name: str
    filename: str
    card: str
    does: str  # what it does, when the card is absent


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel("piano", "piano.safetensors", "piano.md",
                     "MIDI -> audio: the two-stage piano renderer (notes-to-mel, then a MelGAN vocoder), one file"),
        ShippedModel("piano-vocoder", "piano-vocoder.safetensors", "piano-vocoder.md",
                     "audio or mel -> audio: a MelGAN piano mel vocoder"),
    )
}
#: what ``waveforge render MIDI`` and ``waveforge vocode AUDIO`` use when no model is given
DEFAULT_RENDERER = "piano"
DEFAULT_VOCODER = "piano-vocoder"


def folder() -> Path:
    """This package's folder, where the shipped files live (a regular package: a real directory)."""
    return Path(str(importlib.resources.files(__name__)))


def is_shipped_name(value: str | os.PathLike) -> bool:
    """Whether ``value`` means a shipped model: one of its names, and no file or folder of that name here."""
    text = os.fspath(value)
    return text in SHIPPED and not Path(text).exists()


def shipped_path(name: str) -> Path:
    """The file of shipped model ``name``; one :class:`BadInputError` line when this install lacks it."""
    model = SHIPPED[name]
    path = folder() / model.filename
    if not path.is_file():
        raise BadInputError(name, f"the shipped model {name!r} is not in this install (no {model.filename} in {folder()}); "
                                  "recipes/piano/run.sh trains it, or give a model file")
    return path


def resolve(value: str | os.PathLike) -> Path:
    """A shipped model's name -> its file in the package; a path -> itself."""
    if is_shipped_name(value):
        return shipped_path(os.fspath(value))
    return Path(value)


def card_summary(path: Path) -> str | None:
    """The first non-empty line of a model card, without its Markdown heading marks."""
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return None


_DTYPE_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64", "I64": "int64", "I32": "int32"}


def describe(model: ShippedModel) -> dict:
    """What ``waveforge models`` shows: read from the file's header and the card, no weights loaded."""
    from safetensors import safe_open

    from waveforge.inference.modelfile import METADATA_KEY

    path, card = folder() / model.filename, folder() / model.card
    row = {"name": model.name, "file": model.filename, "present": path.is_file(), "card": model.card if card.is_file() else None,
           "does": (card_summary(card) or model.does).removeprefix(f"{model.name}:").strip()}
    if not row["present"]:
        return row
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = json.loads((f.metadata() or {}).get(METADATA_KEY, "{}"))
        dtypes, parameters = set(), 0
        for key in f.keys():
            tensor_slice = f.get_slice(key)
            parameters += math.prod(tensor_slice.get_shape())
            dtypes.add(_DTYPE_NAMES.get(str(tensor_slice.get_dtype()), str(tensor_slice.get_dtype())))
    row.update(family=meta.get("family"), sample_rate=meta.get("sample_rate"), parameters=parameters,
               size_mb=round(path.stat().st_size / 1e6, 2), dtypes=sorted(dtypes))
    return row


def format_models(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        if row["present"]:
            head = (f"{row['name']:<14} {row['family']}, {row['sample_rate']} Hz, {row['parameters'] / 1e6:.2f} M parameters "
                    f"({'/'.join(row['dtypes'])}), {row['size_mb']:.1f} MB")
        else:
            head = f"{row['name']:<14} not shipped in this install ({row['file']} absent)"
        lines.append(head)
        lines.append(f"{'':<14} {row['does']}")
    lines.append(f"folder: {folder()}")
    return "\n".join(lines)


__all__ = ["DEFAULT_RENDERER", "DEFAULT_VOCODER", "SHIPPED", "ShippedModel", "describe", "folder", "format_models",
           "is_shipped_name", "resolve", "shipped_path"]
