"""DiffWave-base as a mel vocoder (80 bands, hop 256, 22.05 kHz): x real time for 6 / 12 / 50 steps.

FLOPs are counted analytically (:meth:`DiffWave.flops_per_sample`: the matrix products of every
layer, conditioning projected once per call). The 6-step figure times the whole sampling call
(conditioning prepared once, then 6 DDIM steps); the 12- and 50-step figures are that call's
preparation time plus the measured per-step time, since sampling time is linear in the step count
(``"method"`` says which). The denoiser step is timed on the whole signal and with each layer cut
into 1024-, 2048- and 4096-sample time blocks (``DiffWave.inference_block_rows``); vocoding uses
the fastest. Random weights: speed does not depend on training.
"""

from __future__ import annotations

from typing import Iterator

import torch

from waveforge.bench import BenchContext, register, time_median
from waveforge.diffusion import DIFFWAVE_BETAS, Denoiser, get_sigmas_vp_linear, sample_ddim
from waveforge.models import DiffWave, DiffWaveConfig

SAMPLE_RATE = 22050
HOP = 256


@register("diffwave")
def bench_diffwave(ctx: BenchContext) -> Iterator[dict]:
    torch.manual_seed(0)
    model = DiffWave(DiffWaveConfig.paper(cond_channels=80, hop_length=HOP)).eval()
    denoiser = Denoiser(model, "eps").for_sampling()  # what generation runs: DiffWave.sampling_pass
    seconds = 0.5 if ctx.quick else 2.0
    n_frames = round(seconds * SAMPLE_RATE / HOP)
    n_samples = n_frames * HOP
    audio_seconds = n_samples / SAMPLE_RATE
    mel = torch.randn(1, 80, n_frames)
    step_flops = model.flops_per_sample(precomputed_cond=True) * n_samples

    def vocode(steps: int) -> torch.Tensor:
        sigmas = get_sigmas_vp_linear(steps, *DIFFWAVE_BETAS)
        cond = denoiser.prepare(mel)  # upsampler + all layers' condition projections, once per call
        x = torch.randn(1, 1, n_samples) * sigmas[0]
        return sample_ddim(denoiser, x, sigmas, cond)

    with torch.inference_mode():
        prepared = denoiser.prepare(mel)
        x = torch.randn(1, 1, n_samples)
        sigma = torch.ones(1)
        step_times = {}
        for block_rows in (None, 1024, 2048, 4096):
            model.inference_block_rows = block_rows
            t = step_times[block_rows] = time_median(lambda: denoiser(x, sigma, prepared), repeats=ctx.repeats)
            yield {
                "name": "diffwave-base/denoiser-step" + (f"-blocked{block_rows}" if block_rows else ""),
                "samples_per_s": n_samples / t,
                "gflops": step_flops / t / 1e9,
                "seconds": round(t, 4),
                "audio_seconds": round(audio_seconds, 3),
            }
        model.inference_block_rows = min(step_times, key=step_times.get)
        t_step = step_times[model.inference_block_rows]
        t_prepare = time_median(lambda: denoiser.prepare(mel), repeats=ctx.repeats)
        t6 = time_median(lambda: vocode(6), repeats=ctx.repeats)
        yield {
            "name": "diffwave-base/vocode-6steps",
            "x_realtime": audio_seconds / t6,
            "gflops": 6 * step_flops / t6 / 1e9,
            "seconds": round(t6, 4),
            "audio_seconds": round(audio_seconds, 3),
            "method": "measured",
            "inference_block_rows": model.inference_block_rows,
        }
        for steps in (12, 50):
            total = t_prepare + steps * t_step
            yield {
                "name": f"diffwave-base/vocode-{steps}steps",
                "x_realtime": audio_seconds / total,
                "gflops": steps * step_flops / total / 1e9,
                "seconds": round(total, 4),
                "audio_seconds": round(audio_seconds, 3),
                "method": "prepare + steps * measured step",
                "inference_block_rows": model.inference_block_rows,
            }
