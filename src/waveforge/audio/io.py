"""Audio file I/O with soundfile: mono float32 ``[1, T]`` tensors at the model's rate."""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from waveforge.errors import BadInputError
from waveforge.utils.atomic import atomic_path, check_output_path
from waveforge.utils.limits import check_sample_rate, check_seconds


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _check_riff_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's ``data`` chunk promises more bytes than the file holds.

    libsndfile reads such files without complaint and returns fewer frames, which would
    silently train on (or vocode) a cut-off recording.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            return  # not RIFF/WAVE: leave it to libsndfile
        if header[:4] == b"RF64":
            return  # 64-bit sizes live in a ds64 chunk; libsndfile checks those
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if pos + 8 + chunk_size > size:
                    missing = pos + 8 + chunk_size - size
                    raise BadInputError(path, f"truncated WAV: the data chunk is {missing} bytes short")
                return
            pos += 8 + chunk_size + (chunk_size & 1)
        raise BadInputError(path, "truncated WAV: no data chunk")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, frame count and channels, read from the header; raises BadInputError."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "no such file")
    if path.suffix.lower() == ".wav":
        _check_riff_complete(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise BadInputError(path, f"not a readable audio file ({_short(e)})") from None
    if info.frames <= 0:
        raise BadInputError(path, "audio file holds no samples")
    check_sample_rate(path, info.samplerate)
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    offset: int = 0,
    frames: int = -1,
) -> torch.Tensor:
    """Read ``path`` as mono float32 in [-1, 1], resampled to ``sample_rate``.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG, AIFF, ...), any channel count.
        sample_rate: the rate wanted; ``None`` keeps the file's rate.
        offset, frames: a window in the file's own samples, read with a seek (no whole-file load).

    Returns:
        ``(1, n_samples)`` tensor.
    """
    path = Path(path)
    info = audio_info(path)
    wanted = info.frames - offset if frames < 0 else frames
    check_seconds(path, wanted / info.sample_rate, "audio duration")
    try:
        data, file_rate = sf.read(str(path), start=offset, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise BadInputError(path, f"not a readable audio file ({_short(e)})") from None
    if frames < 0 and data.shape[0] < info.frames - offset:
        raise BadInputError(path, f"truncated: header says {info.frames} frames, read {data.shape[0] + offset}")
    if not np.isfinite(data).all():
        raise BadInputError(path, "audio holds NaN or infinite samples")
    audio = torch.from_numpy(data.mean(axis=1, dtype=np.float32)).unsqueeze(0)  # (1, T)
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
    return audio


#: torchaudio's polyphase kernel holds (new / gcd) x (orig / gcd)-ish taps: past this reduced ratio
#: (a prime rate such as 7,919 Hz) it would take gigabytes, and soxr's streaming resampler is used
MAX_POLYPHASE_RATIO = 2000


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc; soxr for ratios
    whose reduced form is too large for a polyphase kernel in memory)."""
    if orig_rate == new_rate:
        return audio
    g = math.gcd(int(orig_rate), int(new_rate))
    if max(orig_rate, new_rate) // g <= MAX_POLYPHASE_RATIO:
        return AF.resample(audio, orig_rate, new_rate)
    import soxr

    flat = audio.reshape(-1, audio.shape[-1]).to(torch.float32).cpu().numpy()
    out = soxr.resample(flat.T, orig_rate, new_rate, quality="HQ").T  # soxr wants (T, C)
    length = -(-flat.shape[-1] * new_rate // orig_rate)  # torchaudio's ceil(T * new / orig), which callers rely on
    out = np.pad(out, ((0, 0), (0, max(0, length - out.shape[-1]))))[:, :length]
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).reshape(*audio.shape[:-1], -1).to(audio.device)


def audio_format(path: str | os.PathLike) -> str:
    """The soundfile format a path's suffix names (``.wav`` -> ``"WAV"``); BadInputError if none."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        known = ", ".join("." + f.lower() for f in ("WAV", "FLAC", "OGG", "AIFF"))
        raise BadInputError(path, f"unknown audio suffix {path.suffix or '(none)'!r} (e.g. {known})")
    return fmt


def check_audio_output(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Check an output audio path before the work: a known suffix and a writable place."""
    audio_format(path)
    return check_output_path(path, overwrite=overwrite)


def save_audio(
    path: str | os.PathLike, audio: torch.Tensor | np.ndarray, sample_rate: int, subtype: str | None = None, overwrite: bool = True
) -> Path:
    """Write ``audio`` (``(T,)``, ``(1, T)`` or ``(C, T)``) atomically: a temporary file, then a rename.

    Samples are clipped to [-1, 1]; non-finite samples are refused (clipping would turn NaN into
    full-scale DC). The format follows the suffix (``.wav`` is 16-bit PCM unless ``subtype`` says
    otherwise). With ``overwrite=False`` an existing file is never replaced (BadInputError).
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"save_audio wants (T,) or (C, T), got shape {audio.shape}")
    path = Path(path)
    if not np.isfinite(audio).all():
        raise BadInputError(path, "not written: the synthesised audio holds NaN or infinite samples (a diverged model or an extreme input)")
    audio = np.clip(audio, -1.0, 1.0).T  # soundfile wants (T, C)
    fmt = audio_format(path)
    if subtype is None and fmt == "WAV":
        subtype = "PCM_16"
    with atomic_path(path, overwrite=overwrite) as tmp:
        try:
            sf.write(str(tmp), audio, sample_rate, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise BadInputError(path, f"writing failed ({_short(e)})") from None
    return path


def save_audio_stream(
    path: str | os.PathLike, pieces, sample_rate: int, subtype: str | None = None, overwrite: bool = True
) -> tuple[Path, int]:
    """Write mono audio that arrives as consecutive ``(..., n)`` pieces (``(1, 1, n)`` tensors),
    each written as it comes, atomically; memory holds one piece. Returns the path and the
    number of samples written. A non-finite piece aborts the write and leaves no file."""
    path = Path(path)
    fmt = audio_format(path)
    if subtype is None and fmt == "WAV":
        subtype = "PCM_16"
    written = 0
    with atomic_path(path, overwrite=overwrite) as tmp:
        try:
            f = sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise BadInputError(path, f"writing failed ({_short(e)})") from None
        with f:
            for piece in pieces:  # synthesis runs here, between writes
                if isinstance(piece, torch.Tensor):
                    piece = piece.detach().to("cpu", torch.float32).numpy()
                piece = np.asarray(piece, dtype=np.float32).reshape(-1)
                if not np.isfinite(piece).all():
                    raise BadInputError(path, "not written: the synthesised audio holds NaN or infinite samples")
                try:
                    f.write(np.clip(piece, -1.0, 1.0))
                except (sf.LibsndfileError, RuntimeError) as e:
                    raise BadInputError(path, f"writing failed ({_short(e)})") from None
                written += piece.size
    return path, written


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160]
