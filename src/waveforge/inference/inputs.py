"""Checks on synthesis inputs: ``.npy`` mels, arrays handed to the Python API, MIDI files.

Each check runs before the input costs memory or time: a ``.npy`` header is read with
``mmap_mode`` (shape and dtype, no data) before the array is loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from waveforge.errors import BadInputError
from waveforge.midi.roll import LOWEST_PITCH, N_KEYS
from waveforge.utils.limits import check_array_elements, check_seconds


def _check_dtype(where, dtype) -> None:
    dtype = np.dtype(dtype) if not isinstance(dtype, torch.dtype) else dtype
    if isinstance(dtype, torch.dtype):
        if dtype.is_complex:
            raise BadInputError(where, f"complex values ({str(dtype).removeprefix('torch.')}); give real magnitudes (a log-mel) or samples")
        if dtype == torch.bool:
            raise BadInputError(where, "boolean values; give a float array")
        return
    if dtype.kind == "c":
        raise BadInputError(where, f"complex values ({dtype}); give real magnitudes (a log-mel) or samples")
    if dtype.kind not in "fiu":
        raise BadInputError(where, f"values of type {dtype} are not numbers; give a float array")


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, without reading the data."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=10_000)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise BadInputError(path, f"not a readable .npy mel ({' '.join(str(e).split())[:100]})") from None
    return tuple(shape), dtype


def read_npy(path: Path) -> torch.Tensor:
    """A ``.npy`` file -> float32 tensor; shape and dtype are checked from the header first."""
    shape, dtype = npy_header(path)
    _check_dtype(path, dtype)
    check_array_elements(path, shape)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadInputError(path, f"not a readable .npy mel ({str(e)[:100]})") from None
    return torch.from_numpy(np.asarray(array, dtype=np.float32))


def check_real_array(where, x) -> torch.Tensor:
    """An array or tensor from the Python API -> float32 tensor, refusing complex and non-numeric data."""
    if isinstance(x, torch.Tensor):
        _check_dtype(where, x.dtype)
        return x.to(torch.float32)
    array = np.asarray(x)
    _check_dtype(where, array.dtype)
    return torch.as_tensor(array, dtype=torch.float32)


def check_playable(where, midi: pretty_midi.PrettyMIDI) -> int:
    """Count notes a piano cannot play (outside A0-C8): one warning line if any, BadInputError if
    none is playable or the file lasts longer than the duration limit. Returns the playable count."""
    notes = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    playable = sum(LOWEST_PITCH <= n.pitch < LOWEST_PITCH + N_KEYS for n in notes)
    dropped = len(notes) - playable
    if not playable:
        raise BadInputError(where, f"none of the {len(notes)} notes is playable (all outside the piano's A0-C8, MIDI pitches 21-108)")
    if dropped:
        label = where if where is not None else "MIDI"
        print(f"waveforge: warning: {label}: {dropped} of {len(notes)} notes lie outside A0-C8 (MIDI pitches 21-108) and are dropped", file=sys.stderr)
    check_seconds(where, max(n.end for n in notes), "MIDI duration")
    return playable


def npy_batch_size(path: Path) -> int:
    """How many mels a ``.npy`` holds (its first axis when 3-D), read from the header only."""
    shape, _ = npy_header(path)
    return int(shape[0]) if len(shape) == 3 else 1
