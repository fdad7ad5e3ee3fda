"""WaveGlow inference speed: x real time at 22.05 kHz for the paper-size and the small model.

FLOPs are counted analytically (:func:`waveglow_flops_per_sample`: every convolution's multiply-adds,
2 FLOPs each; the paper model needs ~1,440 GFLOP per second of audio). The timed call is
``WaveGlow.infer`` under ``inference_mode`` with weight norm removed, conditioning upsampled once per
call, on a whole clip (batch 1), which runs the time-major GEMM path.
"""

from __future__ import annotations

from typing import Iterator

import torch

from waveforge.bench import BenchContext, gemm_peak_gflops, register, time_median
from waveforge.models.waveglow import WaveGlow, WaveGlowConfig, waveglow_flops_per_sample

SAMPLE_RATE = 22050


def _figure(name: str, config: WaveGlowConfig, seconds: float, ctx: BenchContext) -> dict:
    torch.manual_seed(0)
    model = WaveGlow(config).remove_weight_norm().eval()
    n_frames = max(1, round(seconds * SAMPLE_RATE / config.hop_length))
    n_samples = n_frames * config.hop_length
    cond = torch.randn(1, config.cond_channels, n_frames) - 4.0  # log-mel-like levels
    with torch.inference_mode():
        seconds_taken = time_median(lambda: model.infer(cond, sigma=0.6), repeats=ctx.repeats, warmup=1)
    # on a shared machine the run-start peak can be stale by minutes: measure one right after the timing too
    local_peak = gemm_peak_gflops(repeats=3)
    audio_seconds = n_samples / SAMPLE_RATE
    flops = waveglow_flops_per_sample(config) * n_samples
    return {
        "name": name,
        "x_realtime": round(audio_seconds / seconds_taken, 4),
        "samples_per_s": round(n_samples / seconds_taken, 1),
        "gflops": flops / seconds_taken / 1e9,
        "gflop_per_audio_second": round(waveglow_flops_per_sample(config) * SAMPLE_RATE / 1e9, 2),
        "audio_seconds": round(audio_seconds, 3),
        "gemm_peak_local_gflops": round(local_peak, 1),
        "efficiency_local": round(flops / seconds_taken / 1e9 / local_peak, 3),
    }


@register("waveglow")
def bench_waveglow(ctx: BenchContext) -> Iterator[dict]:
    yield _figure("waveglow-small/infer-b1", WaveGlowConfig.small(), 2.0 if ctx.quick else 5.0, ctx)
    yield _figure("waveglow-paper/infer-b1", WaveGlowConfig.paper(), 0.25 if ctx.quick else 0.5, ctx)
