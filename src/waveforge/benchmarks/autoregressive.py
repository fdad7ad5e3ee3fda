"""Generation speed of WaveNet and SampleRNN (``waveforge bench --only wavenet,samplernn``).

FLOPs are counted analytically (multiply-adds x 2 of every matrix product a generated sample
needs; element-wise activations, sampling and the condition upsampler are not counted), so
``gflops`` is the useful arithmetic rate and ``efficiency`` its share of the same run's GEMM peak.
"""

from __future__ import annotations

import time

import torch

from waveforge.bench import BenchContext, gemm_peak_gflops, register, time_median
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig


def wavenet_flops_per_sample(c: WaveNetConfig) -> float:
    """Matrix FLOPs of one cached step: dilated conv, [residual|skip] 1x1, conditioning projections, head."""
    per_layer = 2 * c.kernel_size * c.residual_channels * c.gate_channels + 2 * (c.gate_channels // 2) * (c.residual_channels + c.skip_channels)
    if c.cond_channels:
        per_layer += 2 * (c.upsample_channels or c.cond_channels) * c.gate_channels
    head = 2 * c.skip_channels * c.skip_channels + 2 * c.skip_channels * c.out_channels
    return c.layers * per_layer + head


def samplernn_flops_per_sample(c: SampleRNNConfig) -> float:
    """Top tier every FS1 samples, middle tier every FS2 samples, the MLP every sample (GRU: 3 gates x (W_i, W_h))."""
    r1 = c.top_frame_size // c.frame_size
    top = 2 * c.top_frame_size * c.top_hidden + c.rnn_layers * 2 * 3 * 2 * c.top_hidden**2 + 2 * c.top_hidden * r1 * c.mid_hidden
    mid = 2 * c.frame_size * c.mid_hidden + c.rnn_layers * 2 * 3 * 2 * c.mid_hidden**2 + 2 * c.mid_hidden * c.frame_size * c.mlp_hidden
    mlp = 2 * c.frame_size * c.embedding_dim * c.mlp_hidden + 2 * 2 * c.mlp_hidden**2 + 2 * c.mlp_hidden * c.n_classes
    return top / c.top_frame_size + mid / c.frame_size + mlp


def _figure(name: str, n_samples: int, seconds: float, flops_per_sample: float, **extra) -> dict:
    """One figure, with the GEMM peak re-measured right after it: on a shared machine the run-wide peak
    can be minutes old, so ``local_efficiency`` compares like with like."""
    gflops = n_samples * flops_per_sample / seconds / 1e9
    local_peak = gemm_peak_gflops(n=1024, repeats=3)
    return {
        "name": name,
        "samples_per_s": round(n_samples / seconds, 1),
        "gflops": gflops,
        "local_gemm_peak_gflops": round(local_peak, 1),
        "local_efficiency": round(gflops / local_peak, 3),
        **extra,
    }


def _naive_wavenet_seconds_per_sample(model: WaveNet, n: int) -> float:
    """Generation without caches: every new sample re-runs the full pass over the last receptive field."""
    rf = model.config.receptive_field
    window = torch.full((1, rf), int(model.silence), dtype=torch.long)
    start = time.perf_counter()
    for _ in range(n):
        logits = model(window)[:, :, -1]
        x = model.sample_output(logits)
        window = torch.cat([window[:, 1:], x[:, None]], dim=1)
    return (time.perf_counter() - start) / n


@register("wavenet")
def bench_wavenet(ctx: BenchContext):
    torch.manual_seed(0)
    repeats = 2 if ctx.quick else 3
    # ---- WaveNet small: unconditional, mu-law 256, receptive field 8191
    small = WaveNet(WaveNetConfig.small()).eval()
    flops = wavenet_flops_per_sample(small.config)
    n1 = 4000 if ctx.quick else 16000
    t_b1 = time_median(lambda: small.generate(n1, backend="fast"), repeats=repeats)
    yield _figure("wavenet-small/generate-b1", n1, t_b1, flops, backend="numba")
    n32 = 500 if ctx.quick else 2000
    t_b32 = time_median(lambda: small.generate(n32, batch_size=32, backend="fast"), repeats=repeats)
    yield _figure("wavenet-small/generate-b32", 32 * n32, t_b32, flops, backend="numba")
    n_ref = 200 if ctx.quick else 1000
    t_ref = time_median(lambda: small.generate(n_ref, backend="reference"), repeats=1)
    yield _figure("wavenet-small/reference-b1", n_ref, t_ref, flops, backend="pytorch-eager")
    with torch.no_grad():
        naive = _naive_wavenet_seconds_per_sample(small, 2 if ctx.quick else 5)
    yield {
        "name": "wavenet-small/cached-vs-naive",
        "receptive_field": small.config.receptive_field,
        "naive_samples_per_s": round(1.0 / naive, 2),
        "cached_samples_per_s": round(n1 / t_b1, 1),
        "speedup": round(naive / (t_b1 / n1), 1),
        "speedup_reference_cache": round(naive / (t_ref / n_ref), 1),
    }
    # ---- WaveNet paper size: mel-conditioned (80 bands, hop 256), mixture of logistics
    paper = WaveNet(WaveNetConfig.paper()).eval()
    flops = wavenet_flops_per_sample(paper.config)
    frames = 4 if ctx.quick else 16
    mel = torch.randn(1, 80, frames)
    t = time_median(lambda: paper.generate(cond=mel, backend="fast"), repeats=repeats)
    yield _figure("wavenet-paper/generate-b1", frames * 256, t, flops, backend="numba")
    frames32 = 1 if ctx.quick else 2
    mel32 = torch.randn(32, 80, frames32)
    t = time_median(lambda: paper.generate(cond=mel32, backend="fast"), repeats=repeats)
    yield _figure("wavenet-paper/generate-b32", 32 * frames32 * 256, t, flops, backend="numba")


@register("samplernn")
def bench_samplernn(ctx: BenchContext):
    torch.manual_seed(0)
    repeats = 2 if ctx.quick else 3
    # ---- SampleRNN paper size (2-layer GRU 1024 in both frame tiers)
    srnn = SampleRNN(SampleRNNConfig.paper()).eval()
    flops = samplernn_flops_per_sample(srnn.config)
    weight_mb = sum(p.numel() for p in srnn.parameters()) * 4 / 1e6
    n = 256 if ctx.quick else 1024
    t = time_median(lambda: srnn.generate(n, backend="fast"), repeats=repeats)
    # every FS2 = 4 samples the middle GRU reads its weights (and every 16 the top GRU): bytes per sample
    c = srnn.config
    gru_bytes = c.rnn_layers * 3 * 2 * c.mid_hidden**2 * 4
    bytes_per_sample = gru_bytes / c.frame_size + gru_bytes / c.top_frame_size
    yield _figure("samplernn-paper/generate-b1", n, t, flops, weights_mb=round(weight_mb, 1),
                  weight_gb_per_s=round(n * bytes_per_sample / t / 1e9, 2), backend="numba")
    n_ref = 64 if ctx.quick else 256
    t_ref = time_median(lambda: srnn.generate(n_ref, backend="reference"), repeats=1)
    yield _figure("samplernn-paper/reference-b1", n_ref, t_ref, flops, backend="pytorch-eager")
    n = 128 if ctx.quick else 512
    t = time_median(lambda: srnn.generate(n, batch_size=32, backend="fast"), repeats=repeats)
    yield _figure("samplernn-paper/generate-b32", 32 * n, t, flops, weights_mb=round(weight_mb, 1),
                  weight_gb_per_s=round(n * bytes_per_sample / t / 1e9, 2), backend="numba")
