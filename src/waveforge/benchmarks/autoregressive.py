"""Generation speed of WaveNet and SampleRNN (``waveforge bench --only wavenet,samplernn``).

FLOPs are counted analytically (multiply-adds x 2 of every matrix product a generated sample
needs; element-wise activations, sampling and the condition upsampler are not counted), so
``gflops`` is the useful arithmetic rate and ``efficiency`` its share of the same run's GEMM peak.
SampleRNN's fused loop replaces the MLP's input product by table lookups, and its figures count
only the products it runs.

A single SampleRNN stream is bound by memory, not arithmetic: its figures carry the weight bytes
read per second (``weight_gb_per_s``, every weight byte the loop reads, at the stored precision)
beside this run's measured read rate of a 256 MB buffer (``memory_read_gb_per_s``, beyond L3) and
of a 16 MB one (``cache_read_gb_per_s``), and ``bound`` names the larger of the two shares:
``weight_gb_per_s / memory_read_gb_per_s`` against ``local_efficiency``. Weights used every sample
can stay in cache, so the bandwidth share can pass 1.
"""

from __future__ import annotations

import time

import torch

from waveforge.bench import BenchContext, gemm_peak_gflops, read_bandwidth_gb_per_s, register, time_median
from waveforge.kernels import samplernn as samplernn_kernel
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig


def wavenet_flops_per_sample(c: WaveNetConfig) -> float:
    """Matrix FLOPs of one cached step: dilated conv, [residual|skip] 1x1, conditioning projections, head."""
    per_layer = 2 * c.kernel_size * c.residual_channels * c.gate_channels + 2 * (c.gate_channels // 2) * (c.residual_channels + c.skip_channels)
    if c.cond_channels:
        per_layer += 2 * (c.upsample_channels or c.cond_channels) * c.gate_channels
    head = 2 * c.skip_channels * c.skip_channels + 2 * c.skip_channels * c.out_channels
    return c.layers * per_layer + head


def samplernn_flops_per_sample(c: SampleRNNConfig, input_table: bool = False) -> float:
    """Top tier every FS1 samples, middle tier every FS2 samples, the MLP every sample (GRU: 3 gates x (W_i, W_h)).

    ``input_table``: the MLP's input layer is table lookups (the fused loop), not a product."""
    r1 = c.top_frame_size // c.frame_size
    top = 2 * c.top_frame_size * c.top_hidden + c.rnn_layers * 2 * 3 * 2 * c.top_hidden**2 + 2 * c.top_hidden * r1 * c.mid_hidden
    mid = 2 * c.frame_size * c.mid_hidden + c.rnn_layers * 2 * 3 * 2 * c.mid_hidden**2 + 2 * c.mid_hidden * c.frame_size * c.mlp_hidden
    mlp_input = 0 if input_table else 2 * c.frame_size * c.embedding_dim * c.mlp_hidden
    mlp = mlp_input + 2 * 2 * c.mlp_hidden**2 + 2 * c.mlp_hidden * c.n_classes
    return top / c.top_frame_size + mid / c.frame_size + mlp


def samplernn_weight_bytes_per_step(
    c: SampleRNNConfig, batch: int = 1, bytes_per_weight: int = 4, folded: bool = False, conditioned: bool = False
) -> float:
    """Weight bytes the fused loop reads per generated step of ``batch`` streams: each tier's input,
    GRU and upsampling matrices every FS1 / FS2 steps and the MLP's three every step (read once for
    the whole batch; ``bytes_per_weight`` is their stored size), plus float32 biases, small input
    matrices and FS2 rows of the MLP's input table per stream. ``folded`` (what the loop does without
    a packed GEMM: one stream, or no MKL): the middle tier's layer-0 input matrix is read once per FS1
    steps, with a float32 ``(FS2 + 1, 3 H)`` fold instead of ``mid_input``; unless ``conditioned``,
    the top tier's layer-0 input matrix is not read at all, a ``(FS1 + 1, 3 H)`` fold replacing it
    and ``top_input``."""
    r1 = c.top_frame_size // c.frame_size

    def tier(frame: int, hidden: int, up: int) -> tuple[int, int]:  # (large-matrix elements, float32 elements)
        large = c.rnn_layers * 2 * 3 * hidden**2 + hidden * up
        small = frame * hidden + hidden + c.rnn_layers * 2 * 3 * hidden + up
        return large, small

    top_large, top_small = tier(c.top_frame_size, c.top_hidden, r1 * c.mid_hidden)
    mid_large, mid_small = tier(c.frame_size, c.mid_hidden, c.frame_size * c.mlp_hidden)
    mlp_large = 2 * c.mlp_hidden**2 + c.mlp_hidden * c.n_classes
    mlp_small = 2 * c.mlp_hidden + c.n_classes + batch * c.frame_size * c.mlp_hidden
    large = top_large / c.top_frame_size + mid_large / c.frame_size + mlp_large
    small = top_small / c.top_frame_size + mid_small / c.frame_size + mlp_small
    if folded:
        mid_w_ih0 = 3 * c.mid_hidden**2
        large += mid_w_ih0 / c.top_frame_size - mid_w_ih0 / c.frame_size
        small += ((c.frame_size + 1) * 3 * c.mid_hidden - (c.frame_size + 1) * c.mid_hidden) / c.frame_size
        if not conditioned:
            large -= 3 * c.top_hidden**2 / c.top_frame_size
            small += ((c.top_frame_size + 1) * 3 * c.top_hidden - (c.top_frame_size + 1) * c.top_hidden) / c.top_frame_size
    return large * bytes_per_weight + small * 4


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
    c = srnn.config
    weight_mb = sum(p.numel() for p in srnn.parameters()) * 4 / 1e6
    memory = {
        "memory_read_gb_per_s": round(read_bandwidth_gb_per_s(256.0), 1),
        "cache_read_gb_per_s": round(read_bandwidth_gb_per_s(16.0), 1),
    }

    def fast(name: str, batch: int, n: int, weights: str) -> dict:
        # compile (or load) the kernel on a tiny model of the same types, so that the first call's time
        # is laying out (and caching) the weights plus the run: the old loop paid that on every call
        SampleRNN(SampleRNNConfig.tiny()).generate(16, batch_size=batch, backend="fast", weights=weights)
        first = time.perf_counter()
        srnn.generate(n, batch_size=batch, backend="fast", weights=weights)
        first = time.perf_counter() - first
        t = time_median(lambda: srnn.generate(n, batch_size=batch, backend="fast", weights=weights), repeats=repeats, warmup=0)
        folded = not samplernn_kernel.uses_packed_gemm(weights, batch)
        bytes_per_step = samplernn_weight_bytes_per_step(c, batch, 2 if weights == "float16" else 4, folded, c.cond_channels > 0)
        weight_gb_per_s = n * bytes_per_step / t / 1e9
        figure = _figure(name, batch * n, t, samplernn_flops_per_sample(c, input_table=True), backend="numba",
                         weights=weights, weights_mb=round(weight_mb, 1), first_call_s=round(first, 2),
                         weight_mb_per_step=round(bytes_per_step / 1e6, 1), weight_gb_per_s=round(weight_gb_per_s, 2), **memory)
        bandwidth_share = weight_gb_per_s / memory["memory_read_gb_per_s"]
        figure["bandwidth_share"] = round(bandwidth_share, 2)
        figure["bound"] = "memory bandwidth" if bandwidth_share >= figure["local_efficiency"] else "arithmetic"
        return figure

    n = 256 if ctx.quick else 1024
    yield fast("samplernn-paper/generate-b1", 1, n, "float32")
    yield fast("samplernn-paper/generate-b1-float16", 1, n, "float16")
    n_ref = 64 if ctx.quick else 256
    t_ref = time_median(lambda: srnn.generate(n_ref, backend="reference"), repeats=1)
    yield _figure("samplernn-paper/reference-b1", n_ref, t_ref, samplernn_flops_per_sample(c), backend="pytorch-eager")
    yield fast("samplernn-paper/generate-b32", 32, 128 if ctx.quick else 512, "float32")
