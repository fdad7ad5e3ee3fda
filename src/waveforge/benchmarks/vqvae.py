"""Hierarchical VQ-VAE speed (``waveforge bench --only vqvae``).

Per level: encode (encoder + nearest-code search) and feed-forward decode, as x real time on one
clip; then top-down sampling (top prior -> upsamplers -> level-0 decoder). FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` on one warm run (matrix products and convolutions;
element-wise work not counted), so ``efficiency`` is the useful share of the run's GEMM peak.

Sizes: ``vqvae-cpu`` is recipes/vqvae/cpu.yaml's hierarchy; ``vqvae-jukebox`` the paper-size
autoencoders (priors excluded: at Jukebox scale they are GPU work).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from waveforge.bench import BenchContext, register, time_median
from waveforge.models.prior import PriorConfig
from waveforge.models.vqvae import VQVAEConfig, VQVAEHierarchy, VQVAELevelConfig

SAMPLE_RATE = 22050


def cpu_config() -> VQVAEConfig:
    """The hierarchy of recipes/vqvae/cpu.yaml."""
    levels = [VQVAELevelConfig(hop_length=h, codebook_size=512, code_dim=32, width=32, depth=3) for h in (8, 32, 128)]
    return VQVAEConfig(
        levels=levels,
        top_prior=PriorConfig(context=256, width=192, layers=4, heads=4),
        upsampler=PriorConfig(context=512, width=192, layers=4, heads=4),
    )


def count_flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _figure(name: str, audio_seconds: float, seconds: float, flops: float, **extra) -> dict:
    return {"name": name, "x_realtime": round(audio_seconds / seconds, 3), "gflops": flops / seconds / 1e9, **extra}


def _codec_figures(tag: str, model: VQVAEHierarchy, ctx: BenchContext, clip_seconds: float):
    n = int(clip_seconds * SAMPLE_RATE) // model.hop_multiple * model.hop_multiple
    audio = torch.randn(1, 1, n) * 0.1
    for index, level in enumerate(model.levels):
        hop = level.config.hop_length
        codes = level.encode(audio)
        seconds = time_median(lambda: level.encode(audio), repeats=ctx.repeats)
        yield _figure(f"{tag}/encode-level{index}-hop{hop}", n / SAMPLE_RATE, seconds, count_flops(lambda: level.encode(audio)))
        seconds = time_median(lambda: level.decode(codes), repeats=ctx.repeats)
        yield _figure(f"{tag}/decode-level{index}-hop{hop}", n / SAMPLE_RATE, seconds, count_flops(lambda: level.decode(codes)))


@register("vqvae")
def bench_vqvae(ctx: BenchContext):
    torch.manual_seed(0)
    model = VQVAEHierarchy(cpu_config()).eval()
    yield from _codec_figures("vqvae-cpu", model, ctx, 1.0 if ctx.quick else 4.0)
    seconds_out = 0.25 if ctx.quick else 1.0
    n = int(seconds_out * SAMPLE_RATE)
    elapsed = time_median(lambda: model.sample(n), repeats=1 if ctx.quick else 3)
    yield _figure("vqvae-cpu/sample-top-down-b1", n / SAMPLE_RATE, elapsed, count_flops(lambda: model.sample(n)),
                  codes_per_s=round(sum(n // h for h in model.config.hops) / elapsed, 1))
    if not ctx.quick:
        jukebox = VQVAEConfig.paper()
        jukebox.top_prior = jukebox.upsampler = PriorConfig(context=64, width=32, layers=1, heads=1)  # priors unused here
        yield from _codec_figures("vqvae-jukebox", VQVAEHierarchy(jukebox).eval(), ctx, 4.0)
