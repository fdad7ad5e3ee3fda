"""What a piano recording has that a FluidSynth render lacks: a room, a level, a microphone's tilt, noise.

A render is dry, always at one level, with one soundfont's spectrum and digital silence between
notes. A model trained only on that meets unfamiliar audio the first time it hears a recording.
:class:`Acoustics` describes one recording situation; :func:`draw_acoustics` draws one from a seeded
generator and :func:`apply_acoustics` applies it to a mono signal:

1. a room: the signal convolved with a synthetic impulse response (sparse early reflections, then
   exponentially decaying noise whose decay is faster at high frequencies, as air and walls absorb
   them), mixed with the direct sound at a direct-to-reverberant ratio;
2. a gentle EQ tilt, in dB per octave about 1 kHz (a darker or brighter microphone and piano);
3. a level change;
4. a little pink noise (a real room and preamplifier are never silent).

Everything is a pure function of the signal, the :class:`Acoustics` and (for the impulse response
and the noise) a seed, so a corpus built with them is byte-identical for a seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

#: Room sizes drawn from, as (name, RT60 range in seconds at mid frequencies).
ROOM_SIZES = (("small", 0.25, 0.45), ("medium", 0.5, 0.9), ("hall", 1.0, 1.8))
#: RT60 scale per octave band (centres 125 Hz ... 8 kHz): highs decay faster than lows.
BAND_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
BAND_RT60_SCALE = (1.15, 1.1, 1.0, 1.0, 0.85, 0.65, 0.45)
MAX_TILT_DB = 9.0  # the tilt's gain is clamped to +-9 dB at the ends of the spectrum
PEAK_CEILING = 0.95  # as the renderer's: nothing clips


@dataclass(frozen=True)
class Acoustics:
    """One recording situation; all fields are recorded with each corpus piece.

    Args:
        room: a name from :data:`ROOM_SIZES`, or ``"dry"`` for no room.
        rt60: reverberation time at mid frequencies, seconds (60 dB of decay).
        drr_db: direct-to-reverberant energy ratio in dB (higher: drier, a closer microphone).
        tilt_db_per_octave: spectral tilt about 1 kHz (negative: darker).
        gain_db: level change (applied before the peak guard).
        noise_dbfs: RMS of the added pink noise relative to full scale; ``-inf`` for none.
        seed: seeds the impulse response's and the noise's random draws.
    """

    room: str = "dry"
    rt60: float = 0.0
    drr_db: float = 0.0
    tilt_db_per_octave: float = 0.0
    gain_db: float = 0.0
    noise_dbfs: float = -math.inf
    seed: int = 0

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in asdict(self).items()}


def draw_acoustics(rng: np.random.Generator) -> Acoustics:
    """A recording situation: one of the room sizes, a 0-12 dB direct-to-reverberant ratio,
    a tilt within +-1 dB per octave, a level from -12 to 0 dB and noise at -78 to -62 dBFS."""
    name, low, high = ROOM_SIZES[int(rng.integers(len(ROOM_SIZES)))]
    return Acoustics(
        room=name,
        rt60=float(rng.uniform(low, high)),
        drr_db=float(rng.uniform(0.0, 12.0)),
        tilt_db_per_octave=float(rng.uniform(-1.0, 1.0)),
        gain_db=float(rng.uniform(-12.0, 0.0)),
        noise_dbfs=float(rng.uniform(-78.0, -62.0)),
        seed=int(rng.integers(2**31)),
    )


def room_impulse_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response without the direct sound, unit energy: ``(L,)`` float64.

    Early reflections: 6-12 sparse taps in the first 5-40 ms (scaled with the room). Late tail:
    Gaussian noise from 20 ms on, split into octave bands, each decaying at
    ``exp(-6.91 t / (rt60 * scale))`` (60 dB per band RT60), summed. Length: the longest band's RT60.
    """
    if not rt60 > 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    length = int(math.ceil(rt60 * max(BAND_RT60_SCALE) * sample_rate))
    t = np.arange(length) / sample_rate
    noise = rng.standard_normal(length)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
    # each frequency belongs to the band whose centre is nearest in octaves
    band = np.abs(np.log2(np.maximum(freqs, 1.0)[:, None] / np.array(BAND_CENTRES_HZ)[None, :])).argmin(axis=1)
    tail = np.zeros(length)
    for b, scale in enumerate(BAND_RT60_SCALE):
        band_noise = np.fft.irfft(np.where(band == b, spectrum, 0.0), n=length)
        tail += band_noise * np.exp(-6.91 * t / (rt60 * scale))
    onset = int(0.02 * sample_rate)
    tail[:onset] *= np.linspace(0.0, 1.0, onset)  # the tail builds up after the first reflections
    early = np.zeros(length)
    span = min(0.04, 0.005 + 0.02 * rt60)
    for _ in range(int(rng.integers(6, 13))):
        k = int(rng.uniform(0.005, span) * sample_rate)
        early[k] += rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 1.0) * math.exp(-6.91 * k / sample_rate / rt60)
    early *= math.sqrt(tail.var() * length) / max(np.sqrt((early**2).sum()), 1e-12) * 0.5
    ir = early + tail
    return ir / np.sqrt((ir**2).sum())


def tilt_gains(n_fft: int, sample_rate: int, db_per_octave: float) -> np.ndarray:
    """Linear gains for ``np.fft.rfft`` bins: ``db_per_octave * log2(f / 1 kHz)`` dB, clamped to
    +-:data:`MAX_TILT_DB`, flat below 20 Hz."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    db = np.clip(db_per_octave * np.log2(np.maximum(freqs, 20.0) / 1000.0), -MAX_TILT_DB, MAX_TILT_DB)
    return 10.0 ** (db / 20.0)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` noise with a 1/f power spectrum above 20 Hz, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    spectrum /= np.sqrt(np.maximum(freqs * n, 1.0))  # 1/f power from the lowest bin up
    noise = np.fft.irfft(spectrum, n=n)
    return noise / max(float(np.sqrt((noise**2).mean())), 1e-12)


def apply_acoustics(audio: torch.Tensor, sample_rate: int, acoustics: Acoustics) -> torch.Tensor:
    """``audio (..., T)`` mono float in [-1, 1] -> the same shape, as recorded in ``acoustics``.

    The length is kept: the renderer already leaves a second of tail after the last event, and a
    recording ends where the file ends. A result whose peak would exceed :data:`PEAK_CEILING` is
    scaled down as a whole.
    """
    x = audio.detach().cpu().double().numpy()
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    n = shape[-1]
    rng = np.random.default_rng(acoustics.seed)
    if acoustics.room != "dry":
        from scipy.signal import fftconvolve

        ir = room_impulse_response(acoustics.rt60, sample_rate, rng)
        direct_rms = np.sqrt((x**2).mean(axis=-1, keepdims=True))
        wet = fftconvolve(x, ir[None, :], axes=-1)[:, :n]
        wet_rms = np.sqrt((wet**2).mean(axis=-1, keepdims=True))
        # scale the reverberant part so that direct / reverberant energy is drr_db
        wet *= np.where(wet_rms > 0, direct_rms / np.maximum(wet_rms, 1e-20), 0.0) * 10.0 ** (-acoustics.drr_db / 20.0)
        x = x + wet
    if acoustics.tilt_db_per_octave != 0.0:
        x = np.fft.irfft(np.fft.rfft(x, axis=-1) * tilt_gains(n, sample_rate, acoustics.tilt_db_per_octave), n=n, axis=-1)
    x = x * 10.0 ** (acoustics.gain_db / 20.0)
    if math.isfinite(acoustics.noise_dbfs):
        x = x + pink_noise(n, rng)[None, :] * 10.0 ** (acoustics.noise_dbfs / 20.0)
    peak = float(np.abs(x).max(initial=0.0))
    if peak > PEAK_CEILING:
        x *= PEAK_CEILING / peak
    return torch.from_numpy(x.reshape(shape).astype(np.float32))


def decay_time(audio: torch.Tensor | np.ndarray, sample_rate: int, drop_db: float = 40.0, frame: int = 256) -> float:
    """Seconds from the loudest frame until the frame energy (RMS per ``frame`` samples) stays
    ``drop_db`` below it; the length of the rest of the signal if it never does."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n = len(x) // frame
    level = 10 * np.log10(np.maximum((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1), 1e-20))
    peak = int(level.argmax())
    above = np.nonzero(level[peak:] > level[peak] - drop_db)[0]
    return float((above[-1] + 1) * frame / sample_rate)
