"""``waveforge bench``: speed figures, one JSON object per line.

Every figure carries the same run's matrix-multiply peak (``gemm_peak_gflops``: the faster of
PyTorch's and NumPy's BLAS, see :func:`gemm_rates_gflops`) so that figures from different machines
compare as ratios (``efficiency = gflops / gemm_peak_gflops``).

Timing: warm-up first, then the median of several runs. On glibc, large activation buffers are
otherwise mmap'd and unmapped on every call, which makes one process's timings differ from the
next by up to 40%; ``waveforge bench`` therefore re-executes itself once with
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` raised, and says so in each figure
(``"malloc_tuned": true``).
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch

#: modules under waveforge.benchmarks, imported lazily; each registers its functions
BENCH_MODULES = ("data", "melgan", "training", "autoregressive", "diffwave", "waveglow", "vqvae", "notes2mel")
_REGISTRY: dict[str, Callable[["BenchContext"], Iterable[dict]]] = {}
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


@dataclass(frozen=True)
class BenchContext:
    threads: int
    quick: bool
    gemm_peak_gflops: float
    gemm_rates: dict = field(default_factory=dict)  # BLAS name -> GFLOP/s (gemm_peak_gflops is the largest)

    @property
    def repeats(self) -> int:
        return 2 if self.quick else 5


def register(name: str):
    def wrap(fn: Callable[[BenchContext], Iterable[dict]]):
        _REGISTRY[name] = fn
        return fn

    return wrap


def time_median(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` warm runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_rates_gflops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best-of float32 square matmul throughput of each BLAS in the process, on the current thread
    setting: PyTorch's (``torch.mm``: MKL on x86 wheels) and NumPy's (OpenBLAS, whose SciPy twin the
    numba kernels' ``np.dot`` calls). They can differ by 2x: on AMD CPUs MKL runs its AVX2 code
    while OpenBLAS runs AVX-512 kernels where it knows the CPU or ``OPENBLAS_CORETYPE`` says so
    (see ``waveforge._openblas``)."""
    import numpy as np

    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    torch_best = min(_timed(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    a_np, b_np, out_np = a.numpy(), b.numpy(), out.numpy()
    np.dot(a_np, b_np, out=out_np)
    numpy_best = min(_timed(lambda: np.dot(a_np, b_np, out=out_np)) for _ in range(repeats))
    flop = 2 * n**3
    return {"torch": flop / torch_best / 1e9, "numpy": flop / numpy_best / 1e9}


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matmul peak as this process can reach it: the faster of its BLAS libraries
    (:func:`gemm_rates_gflops`), so that no efficiency is flattered by a slow library's rate."""
    return max(gemm_rates_gflops(n, repeats).values())


def read_bandwidth_gb_per_s(megabytes: float = 256.0, threads: int | None = None, repeats: int = 3) -> float:
    """Best-of memory read rate (GB/s): ``threads`` threads (default: PyTorch's count) each sum their
    share of one ``megabytes`` float32 buffer with a vectorised numba loop. 256 MB is well beyond a
    typical L3, so this is the DRAM rate a weight-streaming loop can hope for; a few MB measures a
    cache level instead. NaN when numba is missing."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from waveforge.kernels import primitives

    if not hasattr(primitives, "read_sum"):
        return float("nan")
    threads = threads or torch.get_num_threads()
    data = np.ones(int(megabytes * 1e6 / 4), np.float32)
    parts = np.array_split(data, threads)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(primitives.read_sum, parts))  # compile, and fault the pages in
        best = min(_timed(lambda: list(pool.map(primitives.read_sum, parts))) for _ in range(repeats))
    return data.nbytes / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@register("gemm")
def bench_gemm(ctx: BenchContext) -> Iterator[dict]:
    yield {"name": "gemm/fp32-2048", "gflops": ctx.gemm_peak_gflops, **{f"{k}_gflops": round(v, 1) for k, v in ctx.gemm_rates.items()},
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}


def run_benchmarks(only: list[str] | None = None, quick: bool = False, table: bool = True) -> list[dict]:
    from waveforge import _openblas

    _openblas.choose_core()  # for SciPy's OpenBLAS, loaded with the kernels; the re-executed process has it from the start
    if not all(os.environ.get(k) == v for k, v in _MALLOC_ENV.items()) and os.environ.get("WAVEFORGE_BENCH_NO_REEXEC") != "1":
        # re-run ourselves with the allocator settings in place (they must be set before start-up)
        env = {**os.environ, **_MALLOC_ENV, "WAVEFORGE_BENCH_NO_REEXEC": "1"}
        os.execve(sys.executable, [sys.executable, "-m", "waveforge", *sys.argv[1:]], env)
    malloc_tuned = all(os.environ.get(k) == v for k, v in _MALLOC_ENV.items())
    torch.set_grad_enabled(False)
    threads = torch.get_num_threads()
    rates = gemm_rates_gflops(repeats=3 if quick else 7)
    peak = max(rates.values())
    ctx = BenchContext(threads=threads, quick=quick, gemm_peak_gflops=peak, gemm_rates=rates)
    for module in BENCH_MODULES:
        try:
            importlib.import_module(f"waveforge.benchmarks.{module}")
        except ModuleNotFoundError as e:
            if not e.name or not e.name.startswith("waveforge.benchmarks"):
                raise
    results = []
    for name, fn in _REGISTRY.items():
        if only and not any(name.startswith(o) or o.startswith(name) for o in only):
            continue
        for figure in fn(ctx):
            if only and not any(figure["name"].startswith(o) or o.startswith(name) for o in only):
                continue
            figure = {**figure, "gemm_peak_gflops": round(peak, 1), "threads": threads, "malloc_tuned": malloc_tuned}
            if "gflops" in figure:
                figure["efficiency"] = round(figure["gflops"] / peak, 3)
                figure["gflops"] = round(figure["gflops"], 1)
            results.append(figure)
            print(json.dumps(figure), flush=True)
    if table and results:
        print(_table(results), file=sys.stderr)
    return results


def _table(results: list[dict]) -> str:
    keys = ["x_realtime", "samples_per_s", "speedup", "steps_per_s", "gflops", "efficiency"]
    lines = [f"{'figure':40s} " + " ".join(f"{k:>13s}" for k in keys)]
    for r in results:
        cells = [f"{r[k]:13.4g}" if isinstance(r.get(k), (int, float)) else f"{'':13s}" for k in keys]
        lines.append(f"{r['name']:40s} " + " ".join(cells))
    return "\n".join(lines)
