"""``waveforge demo``: the main job on embedded data, with no downloads, in about 5 minutes on 2 cores.

1. synthesise a small MAESTRO-like corpus (FluidSynth, offline);
2. train a small MelGAN mel vocoder and a small MelGAN MIDI renderer on it, each for a fixed
   wall-clock budget, from the packaged recipe ``demo.yaml`` through ``waveforge fit``'s code;
3. vocode a held-out piece, render its MIDI, and compare with Griffin-Lim;
4. write WAVs, a spectrogram comparison PNG and the metrics JSON, and say where they are.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path


DEMO_SAMPLE_RATE = 22050
DEMO_SECONDS = 10.0


#: the demo's training recipe (package data), run through the same LightningCLI code as ``waveforge fit``
DEMO_RECIPE = Path(__file__).with_name("demo.yaml")


def _train(corpus: Path, runs: Path, conditioning: str, seconds: float):
    """Fit :data:`DEMO_RECIPE` on ``corpus`` for ``seconds`` of wall-clock time; -> (task, generator steps)."""
    from waveforge.tasks.cli import make_cli

    whole = max(1, round(seconds))
    cli = make_cli([
        "--config", str(DEMO_RECIPE), "--data.root", str(corpus), "--data.conditioning", conditioning,
        "--trainer.default_root_dir", str(runs / f"melgan-{conditioning}"),
        "--trainer.max_time", f"00:{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}",
    ])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # always afresh: no resuming from an earlier demo
    return cli.model, int(cli.model.generator_steps)


def run_demo(out: str | Path = "demo-out", minutes: float | None = None) -> dict:
    from waveforge.audio.griffinlim import griffin_lim
    from waveforge.audio.io import load_audio, save_audio
    from waveforge.data.maestro import MaestroIndex
    from waveforge.data.synth import SynthConfig, build_corpus
    from waveforge.evaluate import evaluate_model
    from waveforge.inference.modelfile import save_model_file
    from waveforge.inference.synthesizer import Synthesizer
    from waveforge.plots import spectrogram_png
    from waveforge.utils.atomic import atomic_write_text

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_seconds = 60 * (minutes if minutes is not None else 3.0)
    t0 = time.perf_counter()

    corpus = out / "corpus"
    print(f"[1/4] synthesising a MAESTRO-like corpus in {corpus} ...", flush=True)
    if not (corpus / "maestro-v3.0.0.csv").is_file():
        build_corpus(corpus, SynthConfig(minutes=2.5, seed=0, sample_rate=DEMO_SAMPLE_RATE, min_piece_seconds=12, max_piece_seconds=25))
    index = MaestroIndex(corpus)
    print(f"      {len(index)} pieces, {index.hours() * 60:.1f} min of audio", flush=True)

    print(f"[2/4] training a MelGAN vocoder and a MelGAN MIDI renderer ({train_seconds / 60:.1f} min in all) ...", flush=True)
    models = {}
    for conditioning, share in (("mel", 0.55), ("piano_roll", 0.45)):
        task, steps = _train(corpus, out / "runs", conditioning, train_seconds * share)
        path = save_model_file(out / f"melgan-{conditioning.replace('_', '-')}.safetensors", task.model_file())
        models[conditioning] = path
        print(f"      {conditioning}: {steps} steps -> {path}", flush=True)

    print("[3/4] vocoding and rendering a held-out piece ...", flush=True)
    piece = index.split("test")[0]
    vocoder, renderer = Synthesizer.load(models["mel"]), Synthesizer.load(models["piano_roll"])
    reference = load_audio(piece.audio_path, DEMO_SAMPLE_RATE)[..., : int(DEMO_SECONDS * DEMO_SAMPLE_RATE)]
    reference = reference[..., : reference.shape[-1] // 256 * 256]
    vocoded = vocoder.vocode(reference)[0]
    baseline = griffin_lim(vocoder.mel(reference)[0], vocoder.feature).unsqueeze(0)
    rendered = renderer.render(piece.midi_path)[0][..., : reference.shape[-1]]
    wavs = {"reference": reference, "griffin-lim": baseline, "melgan-vocoded": vocoded, "melgan-rendered": rendered}
    for name, audio in wavs.items():
        save_audio(out / f"{name}.wav", audio, DEMO_SAMPLE_RATE)
    spectrogram_png(
        out / "spectrograms.png",
        [("reference (FluidSynth)", reference), ("Griffin-Lim from the mel", baseline), ("MelGAN vocoder from the mel", vocoded), ("MelGAN renderer from the MIDI", rendered)],
        DEMO_SAMPLE_RATE,
    )

    print("[4/4] measuring against the baselines on the test split ...", flush=True)
    metrics = {
        "vocoder": evaluate_model(models["mel"], corpus, split="test", seconds=DEMO_SECONDS),
        "renderer": evaluate_model(models["piano_roll"], corpus, split="test", seconds=DEMO_SECONDS),
        "demo_seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    v = metrics["vocoder"]["metrics"]
    ahead = [name for name in ("mr_stft", "lsd_db") if v["model"][name] < v["griffin_lim"][name]]
    verdict = {2: "ahead of Griffin-Lim on both", 1: "ahead of Griffin-Lim on one of the two", 0: "behind Griffin-Lim on both"}[len(ahead)]
    print(
        f"\nvocoder MR-STFT {v['model']['mr_stft']:.3f} (Griffin-Lim {v['griffin_lim']['mr_stft']:.3f}), "
        f"LSD {v['model']['lsd_db']:.2f} dB (Griffin-Lim {v['griffin_lim']['lsd_db']:.2f} dB): "
        f"{verdict} after a {train_seconds / 60:.1f}-minute demo budget (recipes/melgan/README.md has the 25-minute recipe)."
    )
    print(f"wrote to {out}/: " + ", ".join(f"{n}.wav" for n in wavs) + ", spectrograms.png, metrics.json, melgan-*.safetensors, runs/ (TensorBoard)")
    print(f"done in {metrics['demo_seconds']:.0f} s")
    return metrics
