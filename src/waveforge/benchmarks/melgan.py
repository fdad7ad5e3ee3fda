"""MelGAN vocoding speed: the paper generator (and the half-width one) at 22.05 kHz, hop 256.

``melgan-<size>/vocode`` times :func:`waveforge.models.melgan_fast.prepare_for_inference` (what a
deployed model should run) on a random 80-band mel; ``melgan-<size>/vocode-reference`` times the plain
module with weight norm removed (the public reference implementation's inference path), on the same
input, so the two compare directly. FLOPs are counted analytically
(:func:`waveforge.models.melgan.melgan_generator_flops`: 7.78 GFLOP per second of audio for the paper
generator). ``max_abs_diff`` is the largest difference between the two outputs.
``melgan-paper/vocode-compiled`` times the plain module through ``torch.compile`` (opt-in:
``waveforge vocode --compile``). ``melgan-cpu-sines/vocode`` times the cpu recipe's generator (frame rate, sines head; its FLOPs count
the convolutions and the inverse FFTs, not the oscillators' lobes).

Besides wall-time figures (median of warm runs), each figure has ``core_efficiency``: FLOPs per
second of process CPU time (all threads) over one thread's GEMM peak measured in CPU time
(``core_gemm_peak_gflops``). On a machine shared with other jobs, wall time (and so the runner's
``gemm_peak_gflops``) includes time the process was not scheduled; CPU time does not, so
``core_efficiency`` is the figure that stays comparable on a busy machine. Threads that spin in a
barrier count as busy, as they should.
"""

from __future__ import annotations

import time
from typing import Iterator

import torch

from waveforge.bench import BenchContext, register, time_median
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig, melgan_generator_flops
from waveforge.models.melgan_fast import prepare_for_inference

SAMPLE_RATE = 22050


def _core_gemm_peak_gflops(n: int = 1024, repeats: int = 7) -> float:
    """One thread's float32 GEMM throughput, timed in thread CPU time (best of ``repeats``), the faster
    of PyTorch's and NumPy's BLAS (as for the runner's peak, :func:`waveforge.bench.gemm_rates_gflops`)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        a_np, b_np, out_np = a.numpy(), b.numpy(), out.numpy()
        best = float("inf")
        with threadpool_limits(limits=1, user_api="blas"):
            for product in (lambda: torch.mm(a, b, out=out), lambda: np.dot(a_np, b_np, out=out_np)):
                product()
                for _ in range(repeats):
                    t0 = time.thread_time()
                    product()
                    best = min(best, time.thread_time() - t0)
    finally:
        torch.set_num_threads(threads)
    return 2 * n**3 / best / 1e9


def _cpu_seconds(fn, repeats: int) -> float:
    """Median process CPU time (all threads) of ``fn()``."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return sorted(times)[len(times) // 2]


@register("melgan")
def bench_melgan(ctx: BenchContext) -> Iterator[dict]:
    seconds = 2.0 if ctx.quick else 5.0
    core_peak = _core_gemm_peak_gflops()
    for size in ("paper", "small"):
        torch.manual_seed(0)
        config = getattr(MelGANGeneratorConfig, size)()
        reference = MelGANGenerator(config).eval().remove_weight_norm()
        fast = prepare_for_inference(reference)
        n_frames = round(seconds * SAMPLE_RATE / config.hop_length)
        audio_seconds = n_frames * config.hop_length / SAMPLE_RATE
        cond = torch.randn(1, config.cond_channels, n_frames)
        flops = melgan_generator_flops(config, n_frames)
        with torch.inference_mode():
            max_diff = float((fast(cond) - reference(cond)).abs().max())
        for suffix, model in (("vocode", fast), ("vocode-reference", reference)):
            with torch.inference_mode():
                wall = time_median(lambda: model(cond), repeats=ctx.repeats, warmup=1)
                cpu = _cpu_seconds(lambda: model(cond), repeats=ctx.repeats)
            yield {
                "name": f"melgan-{size}/{suffix}",
                "x_realtime": round(audio_seconds / wall, 2),
                "gflops": flops / wall / 1e9,
                "core_efficiency": round(flops / cpu / 1e9 / core_peak, 3),
                "core_gemm_peak_gflops": round(core_peak, 1),
                "audio_seconds": round(audio_seconds, 2),
                "gflop_per_audio_second": round(flops / audio_seconds / 1e9, 2),
                "max_abs_diff": max_diff,
            }
        if size == "paper":
            yield _compiled_figure(reference, cond, flops, audio_seconds, ctx)
    # the cpu recipe's generator: 512 channels at the frame rate, then the sines head (what
    # `waveforge vocode` runs for that recipe's model file: the plain module, weight norm removed)
    torch.manual_seed(0)
    config = MelGANGeneratorConfig(initial_channels=512, upsample_factors=[1, 1], upsampling="nearest", output="sines", n_fft=1024)
    model = MelGANGenerator(config).eval().remove_weight_norm()
    n_frames = round(seconds * SAMPLE_RATE / config.hop_length)
    audio_seconds = n_frames * config.hop_length / SAMPLE_RATE
    cond = torch.randn(1, config.cond_channels, n_frames) - 5
    flops = melgan_generator_flops(config, n_frames)
    with torch.inference_mode():
        wall = time_median(lambda: model(cond), repeats=ctx.repeats, warmup=1)
    yield {
        "name": "melgan-cpu-sines/vocode",
        "x_realtime": round(audio_seconds / wall, 2),
        "gflops": flops / wall / 1e9,
        "audio_seconds": round(audio_seconds, 2),
        "gflop_per_audio_second": round(flops / audio_seconds / 1e9, 3),
    }


def _compiled_figure(reference, cond, flops: float, audio_seconds: float, ctx: BenchContext) -> dict:
    """``melgan-paper/vocode-compiled``: the plain module through ``torch.compile`` (``Synthesizer.compile``,
    ``waveforge vocode --compile``); compile time reported apart, outputs checked against eager."""
    from waveforge.inference.synthesizer import cxx_compiler_available

    name = "melgan-paper/vocode-compiled"
    if not cxx_compiler_available():
        return {"name": name, "skipped": "no C++ compiler for torch.compile"}
    compiled = torch.compile(reference)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = compiled(cond)
        compile_seconds = time.perf_counter() - t0
        max_diff = float((out - reference(cond)).abs().max())
        wall = time_median(lambda: compiled(cond), repeats=ctx.repeats, warmup=1)
    return {
        "name": name,
        "x_realtime": round(audio_seconds / wall, 2),
        "gflops": flops / wall / 1e9,
        "compile_seconds": round(compile_seconds, 1),
        "audio_seconds": round(audio_seconds, 2),
        "max_abs_diff": max_diff,
    }
