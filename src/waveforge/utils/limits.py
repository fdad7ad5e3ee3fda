"""Size limits on what a file declares, checked before memory is allocated for it.

A file's header can promise far more than its bytes hold (a 52-byte MIDI at 1 tick per beat
lasting for years, a WAV header saying 1 Hz, a 229-byte ``.npy`` header asking for tens of
GiB), so every size that decides an allocation is compared with a limit first. Each limit has a
generous default and can be raised for one run with the environment variable named below (the
CLI's ``--max-seconds`` sets ``WAVEFORGE_MAX_SECONDS``).
"""

from __future__ import annotations

import os

from waveforge.errors import BadInputError

#: longest input or output, in seconds, that one call renders or vocodes (default 4 hours)
MAX_SECONDS_ENV = "WAVEFORGE_MAX_SECONDS"
DEFAULT_MAX_SECONDS = 4 * 3600.0
#: sample rates a file or model may declare, in Hz
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
#: most elements an input array (a ``.npy`` mel) may hold
MAX_ARRAY_ELEMENTS_ENV = "WAVEFORGE_MAX_ARRAY_ELEMENTS"
DEFAULT_MAX_ARRAY_ELEMENTS = 2**31
#: most parameters a model file's config may ask for
MAX_PARAMETERS_ENV = "WAVEFORGE_MAX_PARAMETERS"
DEFAULT_MAX_PARAMETERS = 4_000_000_000


def _limit(env: str, default: float) -> float:
    value = os.environ.get(env)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise BadInputError(None, f"{env}={value!r} is not a number") from None


def max_seconds() -> float:
    return _limit(MAX_SECONDS_ENV, DEFAULT_MAX_SECONDS)


def check_seconds(where, seconds: float, what: str = "duration") -> None:
    limit = max_seconds()
    if not seconds <= limit:  # also refuses NaN
        raise BadInputError(
            where, f"{what} of {seconds:,.0f} s is over the limit of {limit:,.0f} s (raise it with --max-seconds or {MAX_SECONDS_ENV})"
        )


def check_sample_rate(where, rate: float) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadInputError(where, f"sample rate {rate:g} Hz is outside {MIN_SAMPLE_RATE:,}-{MAX_SAMPLE_RATE:,} Hz")


def check_array_elements(where, shape: tuple[int, ...]) -> None:
    n = 1
    for d in shape:
        n *= int(d)
    limit = _limit(MAX_ARRAY_ELEMENTS_ENV, DEFAULT_MAX_ARRAY_ELEMENTS)
    if n > limit:
        raise BadInputError(where, f"array of shape {tuple(shape)} holds {n:,} values, over the limit of {limit:,.0f} ({MAX_ARRAY_ELEMENTS_ENV})")


def check_parameters(where, n: int) -> None:
    limit = _limit(MAX_PARAMETERS_ENV, DEFAULT_MAX_PARAMETERS)
    if n > limit:
        raise BadInputError(where, f"model config asks for {n:,} parameters, over the limit of {limit:,.0f} ({MAX_PARAMETERS_ENV})")
