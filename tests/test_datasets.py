"""Segment datasets and the DataModule on a tiny MAESTRO-layout corpus written by a fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, DistributedSampler

import waveforge.data.cache as cache_module
from waveforge.audio.io import audio_info, load_audio, resample
from waveforge.audio.mel import MelConfig, MelSpectrogram
from waveforge.data.cache import ResampleCache, resample_file
from waveforge.data.maestro import write_metadata
from waveforge.data.module import MelSettings, SegmentEpochCallback, WaveformDataModule
from waveforge.data.segments import FixedSegmentDataset, SegmentDataset, pack_roll, unpack_roll
from waveforge.errors import BadInputError
from waveforge.midi.roll import PianoRollConfig, load_midi, piano_roll

SR, HOP, SEG = 22050, 256, 4096  # model rate, hop, training crop (16 frames)
MEL = MelConfig(sample_rate=SR, hop_length=HOP)
ROLL = PianoRollConfig(sample_rate=SR, hop_length=HOP)

# (stem, split, seconds, file rate, channels): mostly 44.1 kHz stereo like MAESTRO, one file already
# at the model rate, and a test piece shorter than a crop.
PIECES = [
    ("piece_a", "train", 1.5, 44100, 2),
    ("piece_b", "train", 2.0, 44100, 2),
    ("piece_c", "train", 3.0, 44100, 2),
    ("piece_d", "train", 1.0, SR, 1),
    ("piece_e", "validation", 2.0, 44100, 2),
    ("piece_f", "test", 0.15, 44100, 2),
]


def _write_piece(folder: Path, stem: str, seconds: float, rate: int, channels: int, seed: int) -> None:
    """Random notes with the sustain pedal, and sine tones at those notes (plus a little noise)."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.003 * rng.standard_normal(t.shape)
    for _ in range(max(3, int(seconds * 6))):
        pitch, start = int(rng.integers(36, 96)), float(rng.uniform(0, seconds * 0.9))
        end, velocity = min(seconds, start + float(rng.uniform(0.05, 0.5))), int(rng.integers(20, 127))
        piano.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=start, end=end))
        hz = 440.0 * 2 ** ((pitch - 69) / 12)
        on = t >= start
        audio += on * 0.1 * velocity / 127 * np.sin(2 * np.pi * hz * (t - start)) * np.exp(-3 * np.maximum(t - start, 0))
    piano.control_changes += [pretty_midi.ControlChange(64, 100, seconds * 0.3), pretty_midi.ControlChange(64, 0, seconds * 0.6)]
    midi.instruments.append(piano)
    midi.write(str(folder / f"{stem}.midi"))
    stereo = np.stack([audio * (0.9 + 0.2 * c) for c in range(channels)], axis=1)
    sf.write(str(folder / f"{stem}.wav"), np.clip(stereo, -1, 1), rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("maestro")
    (root / "2018").mkdir()
    rows = []
    for i, (stem, split, seconds, rate, channels) in enumerate(PIECES):
        _write_piece(root / "2018", stem, seconds, rate, channels, seed=i)
        rows.append(
            dict(canonical_composer="Synth", canonical_title=stem, split=split, year=2018,
                 midi_filename=f"2018/{stem}.midi", audio_filename=f"2018/{stem}.wav", duration=seconds)
        )
    write_metadata(root, rows)
    return root


def _train(corpus: Path, tmp_path: Path, feature=MEL, **kw) -> SegmentDataset:
    return SegmentDataset(corpus, "train", SR, HOP, SEG, feature=feature, cache_dir=tmp_path / "cache", **kw)


# -- crops and alignment ----------------------------------------------------------------------
def test_mel_crop_is_aligned_slice_of_piece_mel(corpus, tmp_path):
    ds = _train(corpus, tmp_path, segments_per_epoch=12)
    mel = MelSpectrogram(MEL)
    edge = -(-(MEL.n_fft - HOP) // 2 // HOP)  # frames that see the crop's own padding differ
    interior_checked = 0
    for i in range(len(ds)):
        item = ds[i]
        piece, offset = item["piece"], item["offset"]
        assert (piece, offset) == ds.crop(i)
        assert item["audio"].shape == (1, SEG) and item["audio"].dtype == torch.float32
        assert item["cond"].shape == (MEL.n_mels, SEG // HOP) and item["cond"].dtype == torch.float32
        assert offset % HOP == 0 and offset + SEG <= ds.lengths[piece]
        whole = load_audio(ds.audio_path(piece))  # (1, n) at the model rate
        assert torch.equal(item["audio"], whole[:, offset : offset + SEG])
        whole_mel = mel(whole)  # (n_mels, n // hop)
        f0 = offset // HOP
        expected = whole_mel[:, f0 + edge : f0 + SEG // HOP - edge]
        torch.testing.assert_close(item["cond"][:, edge:-edge], expected, atol=1e-4, rtol=1e-4)
        interior_checked += expected.shape[-1]
    assert interior_checked >= 12 * 8


def test_roll_crop_is_exact_slice_of_piece_roll(corpus, tmp_path):
    ds = _train(corpus, tmp_path, feature=ROLL, segments_per_epoch=16)
    notes_seen = 0.0
    for i in range(len(ds)):
        item = ds[i]
        piece, offset = item["piece"], item["offset"]
        n_frames = int(ds.lengths[piece]) // HOP
        whole = piano_roll(load_midi(ds.pieces[piece].midi_path), ROLL, n_frames)  # (264, n_frames)
        assert item["cond"].shape == (264, SEG // HOP)
        assert torch.equal(item["cond"], whole[:, offset // HOP : offset // HOP + SEG // HOP])
        notes_seen += float(item["cond"].sum())
    assert notes_seen > 0  # the crops hold notes, so the equality is not between empty rolls


def test_pack_roll_round_trip_is_exact(corpus):
    roll = piano_roll(load_midi(corpus / "2018" / "piece_c.midi"), ROLL)
    packed = pack_roll(roll)
    assert packed.dtype == torch.uint8 and packed.numel() == roll.numel()
    assert torch.equal(unpack_roll(packed), roll)


def test_unconditional_items_have_no_cond(corpus, tmp_path):
    item = _train(corpus, tmp_path, feature=None, segments_per_epoch=2)[1]
    assert set(item) == {"audio", "piece", "offset"} and item["audio"].shape == (1, SEG)


@pytest.mark.parametrize("bad", [4000, 0, -256])
def test_segment_length_must_be_multiple_of_hop(corpus, tmp_path, bad):
    with pytest.raises(BadInputError, match="segment_length: .* multiple of hop_length 256"):
        SegmentDataset(corpus, "train", SR, HOP, bad, feature=MEL, cache_dir=tmp_path)
    with pytest.raises(BadInputError, match="multiple of hop_length"):
        WaveformDataModule(str(corpus), segment_length=bad)


def test_feature_must_share_rate_and_hop(corpus, tmp_path):
    with pytest.raises(ValueError, match="must agree"):
        SegmentDataset(corpus, "train", SR, 128, SEG, feature=MEL, cache_dir=tmp_path)


class CropRecorder(L.LightningModule):
    """Records the (piece, offset) pairs it trains on per epoch; writes ``<out>/rank<r>.json`` at the end."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list] = {}

    def training_step(self, batch, batch_idx):
        pairs = [(int(p), int(o)) for p, o in zip(batch["piece"], batch["offset"])]
        self.seen.setdefault(self.current_epoch, []).extend(pairs)
        return (self.weight * batch["audio"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_end(self):
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))


# -- resample cache and seek reading ----------------------------------------------------------
def test_resample_cache_created_once_and_reused(corpus, tmp_path, monkeypatch):
    ds = _train(corpus, tmp_path)
    ds.prepare()
    entries = sorted((tmp_path / "cache" / str(SR)).rglob("*.wav"))
    assert len(entries) == 3  # the three 44.1 kHz train pieces; piece_d is already at 22050 Hz
    for piece, record in enumerate(ds.pieces):
        path = ds.audio_path(piece)
        info = audio_info(path)
        assert info.sample_rate == SR and info.channels == 1 and info.frames == ds.lengths[piece]
        assert (path == record.audio_path) == (record.stem == "piece_d")
    mtimes = {p: p.stat().st_mtime_ns for p in entries}

    def no_resampling(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(cache_module, "resample_file", no_resampling)
    again = _train(corpus, tmp_path, segments_per_epoch=8)
    again.prepare()
    for item in again:
        assert item["audio"].shape == (1, SEG)
    assert {p: p.stat().st_mtime_ns for p in entries} == mtimes
    assert sorted((tmp_path / "cache" / str(SR)).rglob("*.wav")) == entries


def test_resample_cache_renews_entry_when_source_changes(corpus, tmp_path):
    cache = ResampleCache(tmp_path / "cache", SR, root=tmp_path)
    source = tmp_path / "copy.wav"
    source.write_bytes((corpus / "2018" / "piece_a.wav").read_bytes())
    first = cache.ensure(source)
    assert first.parent == tmp_path / "cache" / str(SR) and first.name.startswith("copy.") and first.is_file()
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    second = cache.ensure(source)
    assert second != first and second.is_file() and not first.exists()  # new key, stale entry removed


def test_default_cache_lives_under_root(corpus):
    ds = SegmentDataset(corpus, "validation", SR, HOP, SEG, feature=None, segments_per_epoch=1)
    path = ds.audio_path(0)
    assert path.is_relative_to(corpus / ".waveforge-cache" / str(SR) / "2018")


@pytest.mark.parametrize("orig_rate", [44100, 48000])
def test_blockwise_resampling_equals_whole_signal(tmp_path, orig_rate):
    rng = np.random.default_rng(1)
    n = orig_rate // 2 + 123
    t = np.arange(n) / orig_rate
    stereo = np.stack([0.4 * np.sin(2 * np.pi * 1234.5 * t), 0.2 * rng.standard_normal(n)], axis=1)
    source = tmp_path / "src.wav"
    sf.write(str(source), stereo, orig_rate, subtype="FLOAT")
    resample_file(source, tmp_path / "out.wav", SR, block_frames=3000)  # many blocks, each with context
    got, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    whole = resample(load_audio(source), orig_rate, SR)[0].clamp(-1, 1).numpy()
    assert rate == SR and got.shape == whole.shape
    np.testing.assert_allclose(got, whole, atol=1.01 / 32768)  # 16-bit cache: within one LSB


def test_items_are_read_with_seek(corpus, tmp_path, monkeypatch):
    ds = _train(corpus, tmp_path, segments_per_epoch=6)
    ds.prepare()
    calls = []
    real_read = sf.read

    def spy(path, *args, **kwargs):
        calls.append((Path(path), kwargs.get("start"), kwargs.get("frames")))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(sf, "read", spy)
    items = [ds[i] for i in range(len(ds))]
    assert len(calls) == len(items)
    for (path, start, frames), item in zip(calls, items):
        assert frames == SEG and start == item["offset"] and path == ds.audio_path(item["piece"])


# -- randomness: seed, index, epoch, ranks ----------------------------------------------------
def test_crops_reproducible_for_a_seed(corpus, tmp_path):
    a, b = _train(corpus, tmp_path, seed=3), _train(corpus, tmp_path, seed=3)
    other = _train(corpus, tmp_path, seed=4)
    crops = [a.crop(i) for i in range(len(a))]
    assert crops == [b.crop(i) for i in range(len(b))]
    assert crops != [other.crop(i) for i in range(len(other))]
    assert torch.equal(a[5]["audio"], b[5]["audio"]) and torch.equal(a[5]["cond"], b[5]["cond"])


def test_different_indices_give_different_crops(corpus, tmp_path):
    ds = _train(corpus, tmp_path, segments_per_epoch=64)
    crops = [ds.crop(i) for i in range(len(ds))]
    assert len(set(crops)) >= 56  # ~500 hop-aligned places in all: a few birthday collisions at most


def test_pieces_are_drawn_in_proportion_to_duration(corpus, tmp_path):
    ds = _train(corpus, tmp_path, segments_per_epoch=6000)
    counts = np.bincount([ds.crop(i)[0] for i in range(len(ds))], minlength=len(ds.pieces))
    expected = ds.lengths / ds.lengths.sum() * len(ds)
    assert np.all(np.abs(counts - expected) < 0.1 * expected), (counts, expected)


def test_set_epoch_draws_new_crops(corpus, tmp_path):
    ds = _train(corpus, tmp_path, segments_per_epoch=40)
    epoch0 = [ds.crop(i) for i in range(len(ds))]
    ds.set_epoch(1)
    epoch1 = [ds.crop(i) for i in range(len(ds))]
    assert sum(x == y for x, y in zip(epoch0, epoch1)) <= 4
    assert epoch1 == [ds.crop(i, epoch=1) for i in range(len(ds))]
    ds.set_epoch(0)
    assert [ds.crop(i) for i in range(len(ds))] == epoch0


def test_set_epoch_reaches_persistent_workers(corpus, tmp_path):
    ds = _train(corpus, tmp_path, feature=None, segments_per_epoch=8)
    ds.prepare()
    loader = DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True)

    def epoch_crops():
        return [(int(p), int(o)) for batch in loader for p, o in zip(batch["piece"], batch["offset"])]

    first = epoch_crops()
    ds.set_epoch(1)
    second = epoch_crops()  # same worker process as before
    assert first == [ds.crop(i, epoch=0) for i in range(8)]
    assert second == [ds.crop(i, epoch=1) for i in range(8)] and second != first


def test_ddp_ranks_draw_different_crops(corpus, tmp_path):
    ds = _train(corpus, tmp_path, segments_per_epoch=40)
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(0)
        per_rank.append([ds.crop(i) for i in sampler])
    assert len(per_rank[0]) == len(per_rank[1]) == 20
    assert len(set(per_rank[0]) | set(per_rank[1])) >= 36  # each rank's crops are its own


# -- validation / evaluation datasets ---------------------------------------------------------
def test_fixed_segments_are_deterministic_and_evenly_spaced(corpus, tmp_path):
    val = FixedSegmentDataset(corpus, "validation", SR, HOP, SEG, feature=MEL, segments_per_piece=3, cache_dir=tmp_path)
    again = FixedSegmentDataset(corpus, "validation", SR, HOP, SEG, feature=MEL, segments_per_piece=3, cache_dir=tmp_path)
    last = (int(val.lengths[0]) - SEG) // HOP * HOP
    assert val.crops == again.crops and [o for _, o in val.crops] == [0, last // HOP // 2 * HOP, last]
    assert torch.equal(val[2]["cond"], again[2]["cond"])
    capped = FixedSegmentDataset(corpus, "train", SR, HOP, SEG, segments_per_piece=3, max_segments=2, cache_dir=tmp_path)
    assert capped.crops == [(0, 0), (3, (int(capped.lengths[3]) - SEG) // HOP * HOP)]  # spread: first and last
    short = FixedSegmentDataset(corpus, "test", SR, HOP, SEG, feature=ROLL, cache_dir=tmp_path)
    item = short[0]  # piece_f (0.15 s) is shorter than a crop: zero-padded to full length
    n = int(short.lengths[0])
    assert short.crops == [(0, 0)] and item["audio"].shape == (1, SEG) and item["cond"].shape == (264, SEG // HOP)
    assert torch.all(item["audio"][:, n:] == 0) and item["audio"][:, :n].abs().sum() > 0


# -- DataModule -------------------------------------------------------------------------------
@pytest.mark.parametrize("conditioning, channels", [("mel", 40), ("piano_roll", 264), ("none", 0)])
def test_datamodule_loaders(corpus, tmp_path, conditioning, channels):
    dm = WaveformDataModule(
        str(corpus), sample_rate=SR, hop_length=HOP, conditioning=conditioning, mel=MelSettings(n_mels=40),
        segment_length=SEG, val_segment_length=2 * SEG, batch_size=3, num_workers=0, segments_per_epoch=7,
        val_segments_per_piece=2, cache_dir=str(tmp_path / "cache"),
    )
    assert dm.cond_channels == channels
    expected_feature = {"mel": MelConfig(SR, hop_length=HOP, n_mels=40), "piano_roll": ROLL, "none": None}[conditioning]
    assert dm.feature == expected_feature
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    train, val, test = dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()
    assert len(train) == 2  # 7 crops, 3 per device batch, last partial batch dropped
    for loader, n, t in ((train, 3, SEG), (val, 2, 2 * SEG), (test, 1, 2 * SEG)):
        batch = next(iter(loader))
        assert batch["audio"].shape == (n, 1, t) and batch["piece"].shape == batch["offset"].shape == (n,)
        if channels:
            assert batch["cond"].shape == (n, channels, t // HOP) and batch["cond"].dtype == torch.float32
        else:
            assert "cond" not in batch


def test_datamodule_from_yaml(corpus):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(WaveformDataModule, "data")
    cfg = parser.parse_string(
        f"data:\n  root: {corpus}\n  conditioning: mel\n  mel: {{n_fft: 2048, win_length: 2048, n_mels: 128, f_max: null}}\n"
        "  sample_rate: 24000\n  hop_length: 300\n  segment_length: 9000\n"
    )
    dm = parser.instantiate_classes(cfg)["data"]
    assert dm.feature == MelConfig(24000, 2048, 300, 2048, 128, 0.0, None)
    assert dm.cond_channels == 128 and dm.batch_size == 16  # the per-device default


def test_fit_sees_new_crops_each_epoch(corpus, tmp_path):
    """Through Lightning with a persistent worker: the module attaches the epoch callback itself."""
    dm = WaveformDataModule(
        str(corpus), sample_rate=SR, hop_length=HOP, conditioning="none", segment_length=SEG, batch_size=2,
        num_workers=1, segments_per_epoch=6, cache_dir=str(tmp_path / "cache"), seed=7,
    )
    model = CropRecorder(str(tmp_path))
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    assert any(isinstance(c, SegmentEpochCallback) for c in trainer.callbacks)
    ds = dm.train_set
    assert model.seen[0] == [ds.crop(i, epoch=0) for i in range(6)]
    assert model.seen[1] == [ds.crop(i, epoch=1) for i in range(6)]
    assert model.seen[0] != model.seen[1]
    assert json.loads((tmp_path / "rank0.json").read_text())["1"] == [list(c) for c in model.seen[1]]


def test_paper_size_datamodule_defaults(corpus):
    dm = WaveformDataModule(str(corpus))
    assert dm.feature == MelConfig(22050, 1024, 256, 1024, 80, 0.0, 8000.0)
    assert (dm.segment_length, dm.batch_size, dm.num_workers) == (8192, 16, 2) and dm.segment_length % dm.hop_length == 0



@pytest.mark.slow
def test_real_ddp_ranks_and_epochs_draw_different_crops(corpus, tmp_path):
    """Two CPU processes under Lightning's DDP: its DistributedSampler splits the indices, the
    ranks' crops differ, and each epoch's crops are the dataset's crops of that epoch."""
    dm = WaveformDataModule(
        str(corpus), sample_rate=SR, hop_length=HOP, conditioning="none", segment_length=SEG, batch_size=2,
        num_workers=0, segments_per_epoch=8, cache_dir=str(tmp_path / "cache"), seed=5,
    )
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
    )
    trainer.fit(CropRecorder(str(tmp_path)), datamodule=dm)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    reference = SegmentDataset(corpus, "train", SR, HOP, SEG, segments_per_epoch=8, seed=5, cache_dir=tmp_path / "cache")
    for epoch in ("0", "1"):
        ranks = [[tuple(x) for x in s[epoch]] for s in seen]
        assert len(ranks[0]) == len(ranks[1]) == 4 and ranks[0] != ranks[1]
        assert sorted(ranks[0] + ranks[1]) == sorted(reference.crop(i, epoch=int(epoch)) for i in range(8))
    assert seen[0]["0"] != seen[0]["1"]


@pytest.mark.slow
def test_data_benchmark_runs():
    import waveforge.benchmarks.data as data_bench
    from waveforge.bench import BenchContext

    figures = list(data_bench.bench_data(BenchContext(threads=torch.get_num_threads(), quick=True, gemm_peak_gflops=1.0)))
    assert [f["name"] for f in figures] == [
        "data/resample-cache-44k1-stereo-to-22k05", "data/segments-mel-8192", "data/segments-piano_roll-8192", "data/segments-none-8192",
    ]
    assert all(f["x_realtime"] > 0 and f["samples_per_s"] > 0 for f in figures)
