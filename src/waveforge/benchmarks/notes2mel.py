"""Two-stage MIDI rendering speed: the cpu recipes' notes-to-mel models, then the cpu MelGAN vocoder.

``notes2mel-regression/render`` and ``notes2mel-diffusion8/render`` time the whole render path
(``NotesToMelSynthesizer.synthesize(roll, vocoder=...)``: the chunked mel stage, then the vocoder's
chunked synthesis) on a random piano roll, for the regression model and for the diffusion model at
8 DPM-Solver++(2M) steps; ``.../mel`` times the mel stage alone. Untrained weights: the cost does not
depend on them. The vocoder is the cpu MelGAN recipe's generator (frame rate, sines head).

The roll is music, not noise: two procedural performances (``waveforge.data.synth``) played at
once, denser in onsets than MAESTRO's average piece, because the note prior's cost grows with the
number of onsets (a random roll strikes every key every few frames, which no piece does).
"""

from __future__ import annotations

from typing import Iterator

import torch

from waveforge.audio.mel import MelConfig
from waveforge.bench import BenchContext, register, time_median
from waveforge.diffusion import Denoiser, SamplingConfig
from waveforge.inference.families import SynthesisOptions, get_adapter
from waveforge.inference.families.notes2mel import ADAPTER, Notes2MelStage
from waveforge.inference.modelfile import ModelFile
from waveforge.inference.synthesizer import Synthesizer
from waveforge.inference.twostage import NotesToMelSynthesizer
from waveforge.midi.roll import PianoRollConfig
from waveforge.benchmarks.melgan import cpu_sines_config
from waveforge.models.melgan import MelGANGenerator
from waveforge.models.notes2mel import Notes2Mel, Notes2MelConfig, Notes2MelDenoiser

MEL = MelConfig()
ROLL = PianoRollConfig()
#: the cpu recipes' note prior (recipes/notes2mel/cpu.yaml, cpu-diffusion.yaml)
NOTE_PRIOR = dict(note_frames=128, release_frames=24)


def _vocoder() -> Synthesizer:
    torch.manual_seed(0)
    config = cpu_sines_config(MEL.n_mels, MEL.hop_length)
    model = MelGANGenerator(config).eval().remove_weight_norm()
    return Synthesizer(model, get_adapter("melgan"), ModelFile("melgan", config.to_dict(), MEL, MEL.sample_rate, {}))


def _notes(objective: str) -> NotesToMelSynthesizer:
    torch.manual_seed(0)
    config = Notes2MelConfig.small(**NOTE_PRIOR)
    if objective == "regression":
        stage = Notes2MelStage("regression", Notes2Mel(config).eval(), MEL)
    else:
        model = Notes2MelDenoiser(config).eval()
        stage = Notes2MelStage("diffusion", model, MEL, Denoiser(model, "v", 1.0), SamplingConfig(sampler="dpmpp_2m", steps=8))
    return NotesToMelSynthesizer(stage.eval(), ADAPTER, ModelFile("notes2mel", {}, ROLL, MEL.sample_rate, {}))


def bench_roll(n_frames: int) -> torch.Tensor:
    """``(1, 264, n_frames)``: two seeded procedural performances overlaid."""
    import numpy as np

    from waveforge.data.synth import perform, procedural_score
    from waveforge.midi.roll import piano_roll

    seconds = n_frames / ROLL.frame_rate + 1.0
    rolls = []
    for seed in (2, 3):
        rng = np.random.default_rng(seed)
        rolls.append(piano_roll(perform(procedural_score(rng, seconds), rng), ROLL, n_frames))
    return torch.maximum(rolls[0], rolls[1]).unsqueeze(0)


@register("notes2mel")
def bench_notes2mel(ctx: BenchContext) -> Iterator[dict]:
    seconds = 5.0 if ctx.quick else 20.0
    n_frames = round(seconds * ROLL.frame_rate)
    audio_seconds = n_frames * ROLL.hop_length / ROLL.sample_rate
    roll = bench_roll(n_frames)
    vocoder = _vocoder()
    options = SynthesisOptions(seed=0)
    for name, objective in (("notes2mel-regression", "regression"), ("notes2mel-diffusion8", "diffusion")):
        notes = _notes(objective)
        with torch.inference_mode():
            mel_wall = time_median(lambda: notes.mel_from_roll(roll, options), repeats=ctx.repeats, warmup=1)
            render_wall = time_median(lambda: notes.synthesize(roll, options, vocoder=vocoder), repeats=ctx.repeats, warmup=1)
        common = {"audio_seconds": round(audio_seconds, 2), "onsets_per_s": round(float(roll[:, :88].sum()) / audio_seconds, 1),
                  "notes_model": "Notes2MelConfig.small(note_frames=128)"}
        yield {"name": f"{name}/mel", "x_realtime": round(audio_seconds / mel_wall, 2), **common}
        yield {"name": f"{name}/render", "x_realtime": round(audio_seconds / render_wall, 2), "vocoder": "melgan cpu recipe (sines head)", **common}
