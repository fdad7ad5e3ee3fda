"""MelGAN vocoding speed: the paper generator (and the half-width one) at 22.05 kHz, hop 256.

``melgan-<size>/vocode`` times what ``waveforge vocode`` runs: the generator saved as a model file,
loaded with :func:`waveforge.load`, and ``Synthesizer.synthesize`` on a random 80-band mel (in the
adapter's chunks with their context). ``max_abs_diff`` is its largest difference from one
whole-input pass of the plain module. FLOPs are counted analytically
(:func:`melgan_generator_flops`). ``melgan-paper/vocode-compiled`` is the
same after ``Synthesizer.compile()`` (``waveforge vocode --compile``, opt-in).
``melgan-cpu-sines/vocode`` is the cpu recipe's generator (frame rate, sines head; its FLOPs count
the convolutions and the inverse FFTs, not the oscillators' lobes), also through the Synthesizer.

Besides wall-time figures (median of warm runs), each figure has ``core_efficiency``: FLOPs per
second of process CPU time (all threads) over one thread's GEMM peak measured in CPU time
(``core_gemm_peak_gflops``). On a machine shared with other jobs, wall time (and so the runner's
``gemm_peak_gflops``) includes time the process was not scheduled; CPU time does not, so
``core_efficiency`` is the figure that stays comparable on a busy machine. Threads that spin in a
barrier count as busy, as they should.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

import waveforge
from waveforge.audio.mel import MelConfig
from waveforge.bench import BenchContext, register, time_median
from waveforge.inference.modelfile import ModelFile, save_model_file
from waveforge.models.config import build_config
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig, transposed_conv_geometry

SAMPLE_RATE = 22050


def melgan_generator_flops(config: MelGANGeneratorConfig, n_frames: int) -> float:
    """Multiply-adds x 2 of the generator's convolutions for ``n_frames`` input frames (no bias/activation terms).

    A transposed conv with kernel ``k`` and stride ``r`` does ``C_in * C_out * k`` MACs per input
    sample, i.e. ``C_in * C_out * k / r`` per output sample; nearest-neighbour upsampling's width-3
    conv does ``3 C_in C_out`` per input sample.
    """
    c = config
    macs = c.cond_channels * c.initial_channels * c.input_kernel_size * n_frames
    channels, length = c.initial_channels, n_frames
    for factor in c.upsample_factors:
        k = 3 if c.upsampling == "nearest" else transposed_conv_geometry(factor)[0]
        out_channels = channels // 2
        macs += channels * out_channels * k * length
        length *= factor
        per_unit = out_channels * out_channels * (c.residual_kernel_size + 1 + 1)
        macs += len(c.residual_dilations) * per_unit * length
        channels = out_channels
    if c.output == "waveform":
        macs += channels * 1 * c.output_kernel_size * length
        return 2.0 * macs
    n_bins = c.n_fft // 2 + 1
    macs += channels * 2 * n_bins * c.output_kernel_size * length
    # mel_projection: per iteration, the spectrum's mel and the bins' gains (two filterbank products)
    macs += c.mel_projection * 2 * c.cond_channels * n_bins * length
    # the inverse real FFT per frame, at the usual 2.5 N log2 N real operations
    return 2.0 * macs + 2.5 * c.n_fft * math.log2(c.n_fft) * length


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


def _loaded(config: MelGANGeneratorConfig, folder: Path):
    """A freshly initialised generator (seed 0) as ``waveforge vocode`` sees it: saved, then loaded."""
    torch.manual_seed(0)
    generator = MelGANGenerator(config)
    path = save_model_file(folder / "melgan.safetensors", ModelFile("melgan", config.to_dict(), MelConfig(), SAMPLE_RATE, generator.state_dict()))
    return waveforge.load(path)


def _vocode_figure(name: str, synth, cond: torch.Tensor, flops: float, audio_seconds: float, ctx: BenchContext, core_peak: float) -> dict:
    with torch.inference_mode():
        expected = synth.model(cond)
        max_diff = float((synth.synthesize(cond) - expected.clamp(-1.0, 1.0)).abs().max())
    wall = time_median(lambda: synth.synthesize(cond), repeats=ctx.repeats, warmup=1)
    cpu = _cpu_seconds(lambda: synth.synthesize(cond), repeats=ctx.repeats)
    return {
        "name": name,
        "x_realtime": round(audio_seconds / wall, 2),
        "gflops": flops / wall / 1e9,
        "core_efficiency": round(flops / cpu / 1e9 / core_peak, 3),
        "core_gemm_peak_gflops": round(core_peak, 1),
        "audio_seconds": round(audio_seconds, 2),
        "gflop_per_audio_second": round(flops / audio_seconds / 1e9, 3),
        "chunk_frames": synth.chunk_frames,
        "max_abs_diff": max_diff,
    }


#: ``recipes/melgan/cpu.yaml``'s ``architecture`` (512 channels at the frame rate, then the sines head),
#: restated because the bench runs where the recipes are not installed; a test keeps the two equal
CPU_SINES_ARCHITECTURE = {"preset": "paper", "upsample_factors": [1, 1], "upsampling": "nearest", "output": "sines", "n_fft": 1024}


def cpu_sines_config(mel_channels: int = 80, hop_length: int = 256) -> MelGANGeneratorConfig:
    """The cpu recipe's generator for an 80-band mel at hop 256, as :class:`~waveforge.tasks.gan.GANVocoderTask` builds it."""
    return build_config(MelGANGeneratorConfig, CPU_SINES_ARCHITECTURE, "paper", {"cond_channels": mel_channels, "hop_length": hop_length})


@register("melgan")
def bench_melgan(ctx: BenchContext) -> Iterator[dict]:
    seconds = 2.0 if ctx.quick else 5.0
    core_peak = _core_gemm_peak_gflops()
    cpu_sines = cpu_sines_config()
    with tempfile.TemporaryDirectory() as folder:
        for size, config in (("paper", MelGANGeneratorConfig.paper()), ("small", MelGANGeneratorConfig.small()), ("cpu-sines", cpu_sines)):
            synth = _loaded(config, Path(folder))
            n_frames = round(seconds * SAMPLE_RATE / config.hop_length)
            audio_seconds = n_frames * config.hop_length / SAMPLE_RATE
            cond = torch.randn(1, config.cond_channels, n_frames) - 5  # about a log-mel's level
            flops = melgan_generator_flops(config, n_frames)
            yield _vocode_figure(f"melgan-{size}/vocode", synth, cond, flops, audio_seconds, ctx, core_peak)
            if size == "paper":
                yield _compiled_figure(synth, cond, flops, audio_seconds, ctx)


def _compiled_figure(synth, cond, flops: float, audio_seconds: float, ctx: BenchContext) -> dict:
    """``melgan-paper/vocode-compiled``: ``Synthesizer.compile()`` then ``synthesize`` (``waveforge vocode
    --compile``); compile time reported apart, outputs checked against eager."""
    from waveforge.inference.synthesizer import cxx_compiler_available

    name = "melgan-paper/vocode-compiled"
    if not cxx_compiler_available():
        return {"name": name, "skipped": "no C++ compiler for torch.compile"}
    with torch.inference_mode():
        eager = synth.synthesize(cond)
    synth.compile()
    t0 = time.perf_counter()
    out = synth.synthesize(cond)
    compile_seconds = time.perf_counter() - t0
    max_diff = float((out - eager).abs().max())
    wall = time_median(lambda: synth.synthesize(cond), repeats=ctx.repeats, warmup=1)
    return {
        "name": name,
        "x_realtime": round(audio_seconds / wall, 2),
        "gflops": flops / wall / 1e9,
        "compile_seconds": round(compile_seconds, 1),
        "audio_seconds": round(audio_seconds, 2),
        "max_abs_diff": max_diff,
    }
