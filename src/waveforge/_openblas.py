"""Pick OpenBLAS's AVX-512 kernels on AMD CPUs that its run-time dispatch does not know yet.

The fused generation loops (:mod:`waveforge.kernels`) do their matrix products through numba's
``np.dot``, which calls the OpenBLAS that ships with SciPy. OpenBLAS chooses its kernels once, when
the library loads, from the CPU's family and model; OpenBLAS 0.3.30 does not know AMD's family 26
(Zen 5) and falls back to its AVX2 ("Haswell") kernels, which on such a CPU reach about half the
GEMM rate of its AVX-512 ("SkylakeX") kernels (``docs/benchmarks.md``).

OpenBLAS reads ``OPENBLAS_CORETYPE`` when it loads, so :func:`choose_core` must run before NumPy or
SciPy is imported. Importing waveforge changes no environment variable: the ``waveforge`` command
(``cli.main``) and ``waveforge bench`` (``bench.run_benchmarks``) call it first. It never overrides a value the user set,
and it sets "SkylakeX" only where the CPU has every AVX-512 subset that those kernels use (forcing
them elsewhere would stop the process with an illegal instruction). Intel CPUs are left alone:
OpenBLAS recognises them, and picks newer kernels than SkylakeX where they exist.
"""

from __future__ import annotations

import os

#: the AVX-512 subsets OpenBLAS's SkylakeX kernels need
_SKYLAKEX_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def _cpu_vendor_and_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """The first CPU's vendor id and feature flags from ``/proc/cpuinfo`` (Linux); empty elsewhere."""
    vendor, flags = "", frozenset()
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return vendor, flags


def choose_core(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """Set ``OPENBLAS_CORETYPE=SkylakeX`` on AVX-512 AMD CPUs unless already set; returns what it set."""
    if environ.get("OPENBLAS_CORETYPE"):
        return None
    vendor, flags = _cpu_vendor_and_flags(cpuinfo)
    if vendor == "AuthenticAMD" and _SKYLAKEX_FLAGS <= flags:
        environ["OPENBLAS_CORETYPE"] = "SkylakeX"
        return "SkylakeX"
    return None
