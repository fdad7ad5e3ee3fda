"""``WaveformDataModule``: MAESTRO-layout segments for Lightning, on one device or many.

In a recipe (``batch_size`` is per device; the global batch is ``batch_size x devices x nodes``)::

    data:
      root: corpus
      sample_rate: 22050
      hop_length: 256
      conditioning: mel            # mel | piano_roll | none
      mel: {n_fft: 1024, win_length: 1024, n_mels: 80, f_min: 0.0, f_max: 8000.0}
      segment_length: 8192
      batch_size: 16

Tasks take their conditioning from ``data.feature`` (and ``data.cond_channels``), linked by
``waveforge fit`` with ``apply_on="instantiate"``, so rate, hop and mel settings are stated once.

Distributed training. Nothing here is distribution-specific: Lightning swaps in a
``DistributedSampler`` (``use_distributed_sampler=True``, its default), which gives each rank
different indices, and :class:`~waveforge.data.segments.SegmentDataset` seeds each crop by
``(seed, epoch, index)``, so ranks draw different crops. New epochs draw new crops through
:class:`SegmentEpochCallback`: ``LightningDataModule`` has no per-epoch hook, and Lightning's own
``set_epoch`` reaches the sampler, not the dataset; so a Callback calls ``dataset.set_epoch(
trainer.current_epoch)`` at every training-epoch start (on every rank, and correct after a resume).
The module attaches that callback itself in ``setup("fit")`` if the trainer does not have one, so a
recipe cannot forget it. The epoch is held in shared memory, so persistent workers see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from waveforge.audio.mel import MelConfig
from waveforge.data.cache import ResampleCache, default_cache_dir
from waveforge.data.maestro import MaestroIndex
from waveforge.data.segments import FixedSegmentDataset, SegmentDataset, check_segment_length
from waveforge.features import FeatureConfig
from waveforge.midi.roll import PianoRollConfig
from waveforge.utils.progress import progress

Conditioning = Literal["mel", "piano_roll", "none"]


@dataclass(frozen=True)
class MelSettings:
    """The mel settings a recipe chooses; sample rate and hop come from the data module."""

    n_fft: int = 1024
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = 8000.0
    log_floor: float = 1e-5


class SegmentEpochCallback(Callback):
    """At each training-epoch start, ``set_epoch(trainer.current_epoch)`` on every training dataset
    that has a ``set_epoch`` (Lightning itself only calls it on samplers)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for loader in _flatten(trainer.train_dataloader):
            set_epoch = getattr(getattr(loader, "dataset", None), "set_epoch", None)
            if callable(set_epoch):
                set_epoch(trainer.current_epoch)


def _flatten(loaders: Any) -> Iterable[Any]:
    if loaders is None:
        return []
    if hasattr(loaders, "flattened"):  # CombinedLoader
        return loaders.flattened
    if isinstance(loaders, dict):
        return [x for v in loaders.values() for x in _flatten(v)]
    if isinstance(loaders, (list, tuple)):
        return [x for v in loaders for x in _flatten(v)]
    return [loaders]


class WaveformDataModule(L.LightningDataModule):
    """Train / validation / test loaders of aligned ``(audio, cond)`` segments from the split column.

    Batches: ``{"audio": (B, 1, T), "cond": (B, C, T // hop_length), "piece": (B,), "offset": (B,)}``;
    ``"cond"`` is absent when ``conditioning="none"``.

    Args:
        root: MAESTRO-layout folder.
        sample_rate, hop_length: the model's; shared with the mel / piano-roll config.
        conditioning: ``"mel"`` (vocoder), ``"piano_roll"`` (MIDI renderer) or ``"none"``.
        mel: mel settings other than rate and hop (used when ``conditioning="mel"``).
        sustain: apply the sustain pedal in the piano roll.
        segment_length: training crop length in samples, a multiple of ``hop_length``.
        val_segment_length: validation / test crop length (default: ``segment_length``).
        batch_size: per device. val_batch_size: per device (default: ``batch_size``).
        num_workers: loader worker processes per device (persistent when > 0).
        segments_per_epoch: training crops per epoch, over all devices together.
        val_pieces: validation / test pieces used (first N of the split; default all).
        val_segments_per_piece: evenly spaced crops per validation / test piece.
        max_val_segments: cap on validation / test crops in all (kept crops are spread over the pieces).
        cache_dir: resample cache (default ``<root>/.waveforge-cache``).
        seed: crop seed.
        target_mel: each batch also carries ``"mel": (B, n_mels, F)``, the log-mel of the crop in
            :attr:`target_feature` (``mel`` settings at this rate and hop): the target of a
            notes-to-mel model, whose input is the piano roll (``conditioning: piano_roll``).
    """

    def __init__(
        self,
        root: str,
        sample_rate: int = 22050,
        hop_length: int = 256,
        conditioning: Conditioning = "mel",
        mel: MelSettings = MelSettings(),
        sustain: bool = True,
        segment_length: int = 8192,
        val_segment_length: int | None = None,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        segments_per_epoch: int = 16_000,
        val_pieces: int | None = None,
        val_segments_per_piece: int = 4,
        max_val_segments: int | None = 256,
        cache_dir: str | None = None,
        seed: int = 0,
        target_mel: bool = False,
    ):
        super().__init__()
        if conditioning not in ("mel", "piano_roll", "none"):
            raise ValueError(f"conditioning must be 'mel', 'piano_roll' or 'none', got {conditioning!r}")
        if isinstance(mel, dict):  # plain dict from code that bypasses the CLI's type conversion
            mel = MelSettings(**mel)
        check_segment_length(segment_length, hop_length)
        check_segment_length(val_segment_length or segment_length, hop_length, "val_segment_length")
        for name, value in (("batch_size", batch_size), ("segments_per_epoch", segments_per_epoch)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.root = root
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.conditioning = conditioning
        self.mel = mel
        self.sustain = sustain
        self.segment_length = segment_length
        self.val_segment_length = val_segment_length or segment_length
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.segments_per_epoch = segments_per_epoch
        self.val_pieces = val_pieces
        self.val_segments_per_piece = val_segments_per_piece
        self.max_val_segments = max_val_segments
        self.cache_dir = cache_dir
        self.seed = seed
        self.target_mel = target_mel
        self._feature = self._make_feature()  # built now: bad mel settings fail at construction
        self.save_hyperparameters()
        self.train_set: SegmentDataset | None = None
        self.val_set: FixedSegmentDataset | None = None
        self.test_set: FixedSegmentDataset | None = None

    def _mel_config(self) -> MelConfig:
        m = self.mel
        return MelConfig(self.sample_rate, m.n_fft, self.hop_length, m.win_length, m.n_mels, m.f_min, m.f_max, m.log_floor)

    def _make_feature(self) -> FeatureConfig | None:
        if self.target_mel:
            self._mel_config()  # bad mel settings fail at construction here too
        if self.conditioning == "mel":
            return self._mel_config()
        if self.conditioning == "piano_roll":
            return PianoRollConfig(self.sample_rate, self.hop_length, self.sustain)
        return None

    @property
    def feature(self) -> FeatureConfig | None:
        """The feature config a model trained on this data must record (``None``: unconditional)."""
        return self._feature

    @property
    def target_feature(self) -> MelConfig | None:
        """The ``MelConfig`` of the batches' ``"mel"`` target (``None`` unless ``target_mel``)."""
        return self._mel_config() if self.target_mel else None

    @property
    def cond_channels(self) -> int:
        """C of ``cond: (B, C, F)``: n_mels, 264 for the piano roll, 0 when unconditional."""
        return 0 if self._feature is None else self._feature.channels

    # -- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Fill the resample cache once (Lightning runs this on one process per node)."""
        index = MaestroIndex(self.root)
        cache = ResampleCache(self.cache_dir or default_cache_dir(index.root), self.sample_rate, index.root)
        todo = [r for r in index if cache.needs_resampling(r.audio_path)]
        for record in progress(todo, desc=f"resampling to {self.sample_rate} Hz", unit="piece", enabled=bool(todo)):
            cache.ensure(record.audio_path)

    def setup(self, stage: str) -> None:
        index = MaestroIndex(self.root)
        common = dict(sample_rate=self.sample_rate, hop_length=self.hop_length, feature=self._feature, cache_dir=self.cache_dir,
                      target_mel=self.target_feature)
        if stage == "fit" and self.train_set is None:
            self.train_set = SegmentDataset(
                index, "train", segment_length=self.segment_length, segments_per_epoch=self.segments_per_epoch, seed=self.seed, **common
            )
            trainer = self.trainer
            if trainer is not None and not any(isinstance(c, SegmentEpochCallback) for c in trainer.callbacks):
                trainer.callbacks.append(SegmentEpochCallback())
        if stage in ("fit", "validate") and self.val_set is None:
            self.val_set = self._fixed(index, "validation", common)
        if stage == "test" and self.test_set is None:
            self.test_set = self._fixed(index, "test", common)

    def _fixed(self, index: MaestroIndex, split: str, common: dict) -> FixedSegmentDataset:
        return FixedSegmentDataset(
            index,
            split,
            segment_length=self.val_segment_length,
            segments_per_piece=self.val_segments_per_piece,
            max_pieces=self.val_pieces,
            max_segments=self.max_val_segments,
            **common,
        )

    def _loader(self, dataset, batch_size: int, drop_last: bool) -> DataLoader:
        # shuffle=False: SegmentDataset is already random per index, so index order gives a
        # reproducible stream without the global RNG; under DDP the DistributedSampler Lightning
        # injects still hands each rank a disjoint share of the indices.
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    @property
    def pin_memory(self) -> bool:
        """Page-locked batches, only when the attached trainer copies them to a CUDA device: a
        machine with a GPU that trains on its CPU (or on another accelerator) would page-lock every
        batch for nothing, and Lightning's CPU runs warn about it."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return self._loader(self.train_set, self.batch_size, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return self._loader(self.val_set, self.val_batch_size, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            self.setup("test")
        return self._loader(self.test_set, self.val_batch_size, drop_last=False)
