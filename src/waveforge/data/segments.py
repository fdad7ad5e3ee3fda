"""Segments of MAESTRO-layout pieces with their frame-aligned conditioning.

Two map-style datasets over the pieces of one split, all yielding the same item::

    {"audio": (1, T) float32,       # mono, model rate, T a multiple of hop_length
     "cond": (C, F) float32,        # F = T // hop_length; C = n_mels or 264; absent when unconditional
     "piece": int,                  # index into ``dataset.pieces``
     "offset": int}                 # first sample of the window in the piece, a multiple of hop_length

* :class:`SegmentDataset` (training): ``segments_per_epoch`` random crops; crop ``i`` of epoch ``e``
  comes from a generator seeded by ``(seed, e, i)``.
* :class:`FixedSegmentDataset` (validation / test): crops at fixed, evenly spaced places.

Alignment. Crop offsets are multiples of ``hop_length``, so the crop starts on a frame boundary:
the log-mel is computed on the crop itself (``MelSpectrogram`` gives exactly ``T // hop`` frames),
and the piano roll is the slice ``[offset // hop, offset // hop + F)`` of the whole piece's roll,
which is computed once per piece and kept, packed to bytes, in a bounded per-worker LRU.

Reading. Windows are read with a seek (``load_audio(offset=, frames=)``); a recording at another
rate is read from its resample-once cache entry (:mod:`waveforge.data.cache`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from waveforge.audio.io import audio_info, load_audio
from waveforge.audio.mel import MelConfig, MelSpectrogram
from waveforge.data.cache import ResampleCache, default_cache_dir, resampled_length
from waveforge.data.maestro import MaestroIndex, MaestroRecord
from waveforge.errors import BadInputError
from waveforge.features import FeatureConfig
from waveforge.midi.roll import N_KEYS, PianoRollConfig, load_midi, piano_roll
from waveforge.utils.progress import progress as progress_bar

# Exactly the float32 values piano_roll writes for velocity v (float32(v / 127.0)), so a packed
# roll unpacks bit-for-bit.
_VELOCITY_VALUES = torch.tensor([v / 127.0 for v in range(128)], dtype=torch.float32)


def pack_roll(roll: torch.Tensor) -> torch.Tensor:
    """``(264, F)`` float32 piano roll -> ``(264, F)`` uint8 (onset/frame 0|1, velocity 0..127); 4x smaller."""
    packed = roll.clone()
    packed[2 * N_KEYS :] *= 127.0
    return packed.round_().to(torch.uint8)


def unpack_roll(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_roll`, exact."""
    roll = packed.to(torch.float32)
    roll[2 * N_KEYS :] = _VELOCITY_VALUES[packed[2 * N_KEYS :].long()]
    return roll


def check_segment_length(segment_length: int, hop_length: int, name: str = "segment_length") -> None:
    if hop_length <= 0:
        raise BadInputError("hop_length", f"must be positive, got {hop_length}")
    if segment_length <= 0 or segment_length % hop_length != 0:
        raise BadInputError(
            name,
            f"{segment_length} is not a positive multiple of hop_length {hop_length} "
            f"(e.g. {max(1, round(segment_length / hop_length)) * hop_length})",
        )


class _SplitDataset(Dataset):
    """The pieces of one split at the model rate, and windows of them with aligned conditioning.

    Args:
        root: a MAESTRO-layout folder, or a :class:`MaestroIndex` of one.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        sample_rate, hop_length: the model's; a feature config must agree with both.
        feature: ``MelConfig`` (cond = log-mel), ``PianoRollConfig`` (cond = piano roll) or ``None``.
        cache_dir: resample cache folder; default ``<root>/.waveforge-cache``.
        roll_cache_mb: per-worker memory bound for cached piece rolls (packed to uint8:
            a 10-minute piece at 22050/256 is 14 MB).
        target_mel: a ``MelConfig`` whose log-mel of the crop each item also carries as ``"mel"``
            ``(n_mels, F)``: the target of a notes-to-mel model, computed like mel conditioning.
    """

    def __init__(
        self,
        root: str | os.PathLike | MaestroIndex,
        split: str,
        sample_rate: int,
        hop_length: int,
        feature: FeatureConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        roll_cache_mb: float = 256.0,
        target_mel: MelConfig | None = None,
    ):
        index = root if isinstance(root, MaestroIndex) else MaestroIndex(root)
        if feature is not None and (feature.sample_rate != sample_rate or feature.hop_length != hop_length):
            raise ValueError(
                f"feature config has sample_rate={feature.sample_rate}, hop_length={feature.hop_length} "
                f"but the dataset has sample_rate={sample_rate}, hop_length={hop_length}; they must agree"
            )
        if feature is not None and not isinstance(feature, (MelConfig, PianoRollConfig)):
            raise TypeError(f"feature must be a MelConfig, a PianoRollConfig or None, got {type(feature).__name__}")
        if hop_length <= 0 or sample_rate <= 0:
            raise ValueError(f"sample_rate ({sample_rate}) and hop_length ({hop_length}) must be positive")
        self.pieces: list[MaestroRecord] = index.split(split)
        if not self.pieces:
            raise BadInputError(index.metadata_path, f"split {split!r} has no pieces")
        self.split = split
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.feature = feature
        self.cache = ResampleCache(cache_dir if cache_dir is not None else default_cache_dir(index.root), sample_rate, index.root)
        # Lengths at the model rate, from the headers: exactly what the resampled copy will hold.
        infos = [audio_info(r.audio_path) for r in self.pieces]
        self.lengths = np.array([resampled_length(i.frames, i.sample_rate, sample_rate) for i in infos], dtype=np.int64)
        self._mel = MelSpectrogram(feature) if isinstance(feature, MelConfig) else None
        if target_mel is not None and (target_mel.sample_rate != sample_rate or target_mel.hop_length != hop_length):
            raise ValueError(f"target_mel has sample_rate={target_mel.sample_rate}, hop_length={target_mel.hop_length}; the dataset has {sample_rate}, {hop_length}")
        self._target_mel = MelSpectrogram(target_mel) if target_mel is not None else None
        self._roll_cache_bytes = int(roll_cache_mb * 2**20)
        self._rolls: OrderedDict[int, torch.Tensor] = OrderedDict()  # piece -> packed roll, LRU
        self._paths: dict[int, Path] = {}  # piece -> file at the model rate

    # -- per-worker state is rebuilt, not shipped, when workers are spawned ---------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_rolls"], state["_paths"] = OrderedDict(), {}
        return state

    @property
    def cond_channels(self) -> int:
        return 0 if self.feature is None else self.feature.channels

    def prepare(self, progress: bool = False) -> None:
        """Create every missing resample-cache entry now (instead of lazily in the workers)."""
        for piece in progress_bar(range(len(self.pieces)), desc=f"resampling to {self.sample_rate} Hz", enabled=progress):
            self.audio_path(piece)

    def audio_path(self, piece: int) -> Path:
        """The file holding ``piece`` at the model rate (the source, or its cache entry)."""
        path = self._paths.get(piece)
        if path is None:
            path = self._paths[piece] = self.cache.ensure(self.pieces[piece].audio_path)
        return path

    def piece_roll(self, piece: int) -> torch.Tensor:
        """The whole piece's packed roll ``(264, lengths[piece] // hop)`` uint8, from the LRU."""
        packed = self._rolls.get(piece)
        if packed is not None:
            self._rolls.move_to_end(piece)
            return packed
        assert isinstance(self.feature, PianoRollConfig)
        n_frames = int(self.lengths[piece]) // self.hop_length
        packed = pack_roll(piano_roll(load_midi(self.pieces[piece].midi_path), self.feature, n_frames))
        self._rolls[piece] = packed
        while len(self._rolls) > 1 and sum(r.numel() for r in self._rolls.values()) > self._roll_cache_bytes:
            self._rolls.popitem(last=False)
        return packed

    def window(self, piece: int, offset: int, length: int) -> dict:
        """Samples ``[offset, offset + length)`` of ``piece`` (zero-padded past its end) and their cond."""
        if offset % self.hop_length or length % self.hop_length:
            raise ValueError(f"offset {offset} and length {length} must be multiples of hop_length {self.hop_length}")
        audio = load_audio(self.audio_path(piece), self.sample_rate, offset=offset, frames=length)  # (1, <= length)
        if audio.shape[-1] < length:
            audio = F.pad(audio, (0, length - audio.shape[-1]))  # (1, length)
        item = {"audio": audio, "piece": piece, "offset": offset}
        if self._mel is not None:
            with torch.no_grad():
                item["cond"] = self._mel(audio)  # (n_mels, length // hop)
        elif isinstance(self.feature, PianoRollConfig):
            first, n_frames = offset // self.hop_length, length // self.hop_length
            frames = unpack_roll(self.piece_roll(piece)[:, first : first + n_frames])  # (264, <= n_frames)
            item["cond"] = F.pad(frames, (0, n_frames - frames.shape[-1]))  # (264, n_frames)
        if self._target_mel is not None:
            with torch.no_grad():
                item["mel"] = self._target_mel(audio)  # (n_mels, length // hop)
        return item

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]


class SegmentDataset(_SplitDataset):
    """Random training crops of ``segment_length`` samples; see the module docstring for items.

    Index ``i`` picks a piece with probability proportional to its duration and an offset uniform
    over the hop-aligned places where a whole crop fits, from ``np.random.default_rng((seed, epoch, i))``.
    So a run is reproducible, distinct indices (hence distinct DDP ranks, which DistributedSampler
    gives distinct indices) see distinct crops, and :meth:`set_epoch` draws a new set. The epoch lives
    in shared memory so that persistent data-loader workers see ``set_epoch`` from the main process.

    Args (beyond :class:`_SplitDataset`'s):
        segment_length: samples per crop, a multiple of ``hop_length``.
        segments_per_epoch: the dataset's length.
        seed: a non-negative int.
    """

    def __init__(
        self,
        root: str | os.PathLike | MaestroIndex,
        split: str,
        sample_rate: int,
        hop_length: int,
        segment_length: int,
        feature: FeatureConfig | None = None,
        segments_per_epoch: int = 10_000,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        roll_cache_mb: float = 256.0,
        target_mel: MelConfig | None = None,
    ):
        check_segment_length(segment_length, hop_length)
        if segments_per_epoch <= 0:
            raise ValueError(f"segments_per_epoch must be positive, got {segments_per_epoch}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        super().__init__(root, split, sample_rate, hop_length, feature, cache_dir, roll_cache_mb, target_mel)
        self.segment_length = segment_length
        self.segments_per_epoch = segments_per_epoch
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cumulative = np.cumsum(self.lengths / self.lengths.sum())

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops of ``epoch``; visible to already-running (persistent) workers."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return self.segments_per_epoch

    def crop(self, index: int, epoch: int | None = None) -> tuple[int, int]:
        """``(piece, offset)`` of item ``index`` in ``epoch`` (default: the current epoch)."""
        if not 0 <= index < self.segments_per_epoch:
            raise IndexError(f"index {index} out of range for {self.segments_per_epoch} segments")
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, index])
        piece = min(int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(self.pieces) - 1)
        n_places = max(0, int(self.lengths[piece]) - self.segment_length) // self.hop_length + 1
        return piece, int(rng.integers(n_places)) * self.hop_length

    def __getitem__(self, index: int) -> dict:
        piece, offset = self.crop(index)
        return self.window(piece, offset, self.segment_length)


class FixedSegmentDataset(_SplitDataset):
    """Deterministic crops for validation and test: ``segments_per_piece`` evenly spaced crops of
    each of the first ``max_pieces`` pieces (the first at the start, the last ending at the piece
    end, hop-aligned); if that is more than ``max_segments``, that many of them, evenly spaced over
    the list. Independent of seed and epoch."""

    def __init__(
        self,
        root: str | os.PathLike | MaestroIndex,
        split: str,
        sample_rate: int,
        hop_length: int,
        segment_length: int,
        feature: FeatureConfig | None = None,
        segments_per_piece: int = 4,
        max_pieces: int | None = None,
        max_segments: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        roll_cache_mb: float = 256.0,
        target_mel: MelConfig | None = None,
    ):
        check_segment_length(segment_length, hop_length)
        if segments_per_piece <= 0:
            raise ValueError(f"segments_per_piece must be positive, got {segments_per_piece}")
        super().__init__(root, split, sample_rate, hop_length, feature, cache_dir, roll_cache_mb, target_mel)
        self.segment_length = segment_length
        crops: list[tuple[int, int]] = []
        for piece in range(len(self.pieces) if max_pieces is None else min(max_pieces, len(self.pieces))):
            last_place = max(0, int(self.lengths[piece]) - segment_length) // hop_length
            places = np.unique(np.round(np.linspace(0, last_place, segments_per_piece)).astype(np.int64))
            crops += [(piece, int(p) * hop_length) for p in places]
        if max_segments is not None and max_segments < len(crops):
            # Spread the kept crops over all the pieces rather than keeping the first pieces only.
            keep = np.unique(np.round(np.linspace(0, len(crops) - 1, max(1, max_segments))).astype(np.int64))
            crops = [crops[i] for i in keep]
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict:
        piece, offset = self.crops[index]
        return self.window(piece, offset, self.segment_length)


__all__ = [
    "FixedSegmentDataset",
    "SegmentDataset",
    "check_segment_length",
    "pack_roll",
    "unpack_roll",
]
