"""Resample-once cache: recordings at another rate are converted to mono at the model rate one time.

Real MAESTRO is 44.1-48 kHz stereo; reading a random crop from it and resampling every time would
cost far more than the model step it feeds. So each such recording is converted once, in bounded
memory (blocks with sinc context, see :func:`resample_file`), into

    <cache_dir>/<rate>/<path relative to the dataset root, without suffix>.<key>.wav

where ``key`` hashes the source's resolved path, size, modification time and the target rate: a
re-recorded or edited source gets a new key, so a stale copy is never read. The file is written
through :func:`~waveforge.utils.atomic.atomic_path`, so data-loader workers or DDP ranks that race
to create the same entry each write their own temporary file and the last rename wins, whole.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from waveforge.audio.io import audio_info, resample
from waveforge.errors import BadInputError
from waveforge.utils.atomic import atomic_path

CACHE_FOLDER = ".waveforge-cache"
# 16-bit PCM, like MAESTRO's own WAVs: half the disk of float32 at the same fidelity as the source.
CACHE_SUBTYPE = "PCM_16"
_KEY_CHARS = 16


def default_cache_dir(root: str | os.PathLike) -> Path:
    return Path(root) / CACHE_FOLDER


def resampled_length(n_frames: int, orig_rate: int, new_rate: int) -> int:
    """Samples that :func:`waveforge.audio.resample` returns for ``n_frames`` input samples."""
    if orig_rate == new_rate:
        return n_frames
    g = math.gcd(orig_rate, new_rate)
    return math.ceil((new_rate // g) * n_frames / (orig_rate // g))


def _sinc_context(orig_rate: int, new_rate: int) -> int:
    """Input samples of context either side of a block so its output equals the whole-signal output.

    torchaudio's windowed-sinc kernel (``lowpass_filter_width=6``, ``rolloff=0.99``) reaches
    ``width = ceil(6 * L / (0.99 * min(L, M)))`` input samples either side, with ``L/M`` the reduced
    rate ratio; the context is rounded up to whole strides of ``L`` so output phases line up.
    """
    g = math.gcd(orig_rate, new_rate)
    stride_in = orig_rate // g
    width = math.ceil(6 * stride_in / (min(stride_in, new_rate // g) * 0.99))
    return stride_in * (math.ceil(width / stride_in) + 1)


def resample_file(source: Path, target: Path, sample_rate: int, block_frames: int = 1 << 20) -> None:
    """Write ``source`` as mono ``sample_rate`` audio to ``target`` (atomically), block by block.

    Each block of ``block_frames`` input samples is read with ``context`` extra samples either side,
    resampled, and trimmed, so the result equals resampling the whole recording at once (up to
    float rounding) while memory stays ``O(block_frames)``, not ``O(piece)``.
    """
    info = audio_info(source)  # raises BadInputError for truncated / unreadable files
    orig_rate = info.sample_rate
    g = math.gcd(orig_rate, sample_rate)
    stride_in, stride_out = orig_rate // g, sample_rate // g
    context = _sinc_context(orig_rate, sample_rate)
    # Whole strides, so output phases line up; at least the context, so only the first block lacks it.
    block = max(context, block_frames // stride_in * stride_in)
    total_out = resampled_length(info.frames, orig_rate, sample_rate)
    written = 0
    with atomic_path(target) as tmp, sf.SoundFile(str(source)) as src, sf.SoundFile(
        str(tmp), "w", samplerate=sample_rate, channels=1, subtype=CACHE_SUBTYPE, format="WAV"
    ) as dst:
        for start in range(0, info.frames, block):
            left = min(context, start)  # at the file start torchaudio's own zero padding is the context
            src.seek(start - left)
            data = src.read(left + block + context, dtype="float32", always_2d=True)
            if data.shape[0] < min(left + block + context, info.frames - start + left):
                raise BadInputError(source, f"truncated: could not read past frame {start - left + data.shape[0]}")
            if not np.isfinite(data).all():
                raise BadInputError(source, "audio holds NaN or infinite samples")
            mono = torch.from_numpy(data.mean(axis=1, dtype=np.float32)).unsqueeze(0)  # (1, left + block + context)
            out = resample(mono, orig_rate, sample_rate)[0]
            first = left // stride_in * stride_out
            keep = min(block // stride_in * stride_out, total_out - written)
            chunk = out[first : first + keep].numpy()
            dst.write(np.clip(chunk, -1.0, 1.0))  # int16 conversion would wrap, not clip, sinc overshoot
            written += chunk.shape[0]
    if written != total_out:
        raise RuntimeError(f"{source}: resampled {written} samples, expected {total_out}")


class ResampleCache:
    """Where each recording's copy at ``sample_rate`` lives, created on first use.

    Args:
        cache_dir: the cache folder; entries go under ``<cache_dir>/<sample_rate>/``.
        sample_rate: the model's rate.
        root: the dataset root; cache entries mirror source paths relative to it.
    """

    def __init__(self, cache_dir: str | os.PathLike, sample_rate: int, root: str | os.PathLike | None = None):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.cache_dir = Path(cache_dir)
        self.sample_rate = int(sample_rate)
        self.root = Path(root).resolve() if root is not None else None

    @property
    def folder(self) -> Path:
        return self.cache_dir / str(self.sample_rate)

    def key(self, source: Path) -> str:
        """Hash of (resolved path, size, mtime in ns, target rate)."""
        resolved = Path(source).resolve()
        st = resolved.stat()
        text = f"{resolved}\0{st.st_size}\0{st.st_mtime_ns}\0{self.sample_rate}"
        return hashlib.sha256(text.encode()).hexdigest()[:_KEY_CHARS]

    def path_for(self, source: str | os.PathLike) -> Path:
        """The cache entry for ``source`` (which may not exist yet)."""
        resolved = Path(source).resolve()
        if self.root is not None and resolved.is_relative_to(self.root):
            rel = resolved.relative_to(self.root)
        else:
            rel = Path("_external", *resolved.parts[1:])
        return self.folder / rel.parent / f"{rel.stem}.{self.key(resolved)}.wav"

    def needs_resampling(self, source: str | os.PathLike) -> bool:
        return audio_info(source).sample_rate != self.sample_rate

    def ensure(self, source: str | os.PathLike) -> Path:
        """A file holding ``source`` at ``sample_rate``: the source itself when its rate already
        matches (channels are mixed down on read), else the cache entry, created if missing."""
        source = Path(source)
        if not self.needs_resampling(source):
            return source
        target = self.path_for(source)
        if not target.is_file():
            resample_file(source, target, self.sample_rate)
            self._remove_stale(target)
        return target

    def _remove_stale(self, current: Path) -> None:
        """Delete entries of the same source under older keys (it was edited or replaced)."""
        stem = current.name[: -len(f".{_KEY_CHARS * 'x'}.wav")]
        pattern = re.compile(re.escape(stem) + r"\.[0-9a-f]{%d}\.wav" % _KEY_CHARS)
        for old in current.parent.glob(glob.escape(stem) + ".*.wav"):
            if old != current and pattern.fullmatch(old.name):
                old.unlink(missing_ok=True)
