"""``waveforge demo``: the main job on embedded data, with no downloads, in under 5 minutes on 2 cores.

1. synthesise a small MAESTRO-like corpus (FluidSynth, offline);
2. the shipped models (:mod:`waveforge.pretrained`), when this install has them: render a held-out
   piece's MIDI with ``piano`` and vocode its audio with ``piano-vocoder``, beside Griffin-Lim and
   FluidSynth, into ``shipped/`` (WAVs, spectrogram picture, metrics with note-onset F1 when the
   ``notes`` extra is installed); without them, one line says so;
3. a short training demo: a small MelGAN mel vocoder and a small MelGAN MIDI renderer, each for a
   fixed wall-clock budget, from the packaged recipe ``demo.yaml`` through ``waveforge fit``'s code;
4. vocode a held-out piece with them, render its MIDI, and compare with Griffin-Lim;
5. write WAVs, a spectrogram comparison PNG and the metrics JSON, and say where they are.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path


DEMO_SAMPLE_RATE = 22050
DEMO_SECONDS = 10.0
#: the shipped models' clip: short, because the note transcriber is slow on CPU
SHIPPED_SECONDS = 8.0
#: Griffin-Lim iterations of the shipped vocoder's baseline (the issue's target compares against 32)
SHIPPED_GRIFFIN_LIM_ITERS = 32
#: minutes of the training demo: shorter after the shipped models have had their turn (transcribing
#: their four clips for the onset F1 is most of that turn), so the whole demo stays under 5 minutes
TRAIN_MINUTES, TRAIN_MINUTES_AFTER_SHIPPED = 3.0, 1.5


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


def shipped_demo(out: str | Path, piece, notes: bool | None = None, seconds: float = SHIPPED_SECONDS) -> dict | None:
    """The shipped ``piano`` and ``piano-vocoder`` on ``piece`` (a held-out :class:`MaestroRecord`).

    Writes to ``out``: ``reference.wav`` (the recording's first ``seconds``), ``piano.wav`` (its
    MIDI rendered by ``piano``), ``piano-vocoder.wav`` (the recording's mel through
    ``piano-vocoder``), ``griffin-lim.wav`` (the same mel, Griffin-Lim), ``fluidsynth.wav`` (the MIDI
    through FluidSynth with pretty_midi's soundfont), ``spectrograms.png`` and ``metrics.json``.
    With ``notes`` (default: when the ``notes`` extra is installed) every clip is also transcribed
    and its note-onset F1 against the MIDI is reported. Returns the metrics, or ``None`` (after
    one line) when this install lacks a shipped file.
    """
    import torch

    import waveforge
    from waveforge.audio.griffinlim import griffin_lim
    from waveforge.audio.io import load_audio, save_audio
    from waveforge.audio.mel import MelConfig
    from waveforge.metrics import all_metrics
    from waveforge.midi.render import default_soundfont, render_midi
    from waveforge.plots import spectrogram_png
    from waveforge.pretrained import DEFAULT_RENDERER, DEFAULT_VOCODER, SHIPPED, folder
    from waveforge.utils.atomic import atomic_write_text

    missing = [SHIPPED[n].filename for n in (DEFAULT_RENDERER, DEFAULT_VOCODER) if not (folder() / SHIPPED[n].filename).is_file()]
    if missing:
        print(f"      no shipped models in this install ({', '.join(missing)} absent in {folder()}): on to the training demo", flush=True)
        return None
    if notes is None:
        from waveforge.notes import notes_available

        notes = notes_available()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    renderer, vocoder = waveforge.load(DEFAULT_RENDERER), waveforge.load(DEFAULT_VOCODER)
    rate, hop = vocoder.sample_rate, vocoder.hop_length
    reference = load_audio(piece.audio_path, rate)[..., : int(seconds * rate)]
    n = reference.shape[-1] // hop * hop
    reference = reference[..., :n]

    def fit(audio: torch.Tensor) -> torch.Tensor:  # (1, n): cut or zero-padded to the reference
        audio = audio.reshape(1, -1)[..., :n]
        return torch.nn.functional.pad(audio, (0, n - audio.shape[-1]))

    t0 = time.perf_counter()
    rendered = fit(renderer.render(piece.midi_path)[0])
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vocoded = fit(vocoder.vocode(reference)[0])
    vocode_s = time.perf_counter() - t0
    clips = {
        "reference": reference,
        "piano": rendered,
        "piano-vocoder": vocoded,
        "griffin-lim": fit(griffin_lim(vocoder.mel(reference)[0], vocoder.feature, n_iter=SHIPPED_GRIFFIN_LIM_ITERS)),
        "fluidsynth": fit(render_midi(piece.midi_path, rate)),
    }
    for name, audio in clips.items():
        save_audio(out / f"{name}.wav", audio, rate)
    spectrogram_png(out / "spectrograms.png", [
        ("reference recording", reference), ("piano: rendered from the MIDI", rendered),
        ("piano-vocoder: from the reference's mel", vocoded), (f"Griffin-Lim ({SHIPPED_GRIFFIN_LIM_ITERS} it.) from the mel", clips["griffin-lim"]),
        ("FluidSynth from the MIDI", clips["fluidsynth"]),
    ], rate)
    metric_mel = MelConfig(sample_rate=rate, f_max=min(8000.0, rate / 2))
    metrics = {
        "piece": piece.stem, "seconds": round(n / rate, 2), "sample_rate": rate,
        "fluidsynth_soundfont": default_soundfont().name,
        "against_reference": {name: all_metrics(reference, audio, metric_mel) for name, audio in clips.items() if name != "reference"},
        "real_time": {"piano": round(n / rate / render_s, 1), "piano-vocoder": round(n / rate / vocode_s, 1)},
    }
    if notes:
        from waveforge.notes import Transcriber, midi_notes, note_scores

        transcriber = Transcriber()
        midi = midi_notes(piece.midi_path, seconds=n / rate)
        metrics["onset_f1"] = {name: round(note_scores(midi, transcriber.transcribe(clips[name].reshape(-1), rate))["onset_f1"], 3)
                               for name in ("reference", "piano", "piano-vocoder", "fluidsynth")}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(shipped_summary(metrics, out), flush=True)
    return metrics


def shipped_summary(metrics: dict, out: Path) -> str:
    """What the user is hearing, in a few lines."""
    m = metrics["against_reference"]
    lines = [
        f"      {out}/piano.wav: the MIDI alone rendered by the shipped renderer (no audio in); "
        f"{out}/piano-vocoder.wav: the recording's mel-spectrogram turned back into sound; compare both with reference.wav.",
        f"      vocoder MR-STFT {m['piano-vocoder']['mr_stft']:.3f}, LSD {m['piano-vocoder']['lsd_db']:.2f} dB "
        f"(Griffin-Lim {m['griffin-lim']['mr_stft']:.3f}, {m['griffin-lim']['lsd_db']:.2f} dB); "
        f"renderer mel L1 {m['piano']['mel_l1']:.3f} (FluidSynth {m['fluidsynth']['mel_l1']:.3f}); "
        f"{metrics['real_time']['piano']:.0f}x / {metrics['real_time']['piano-vocoder']:.0f}x real time",
    ]
    if "onset_f1" in metrics:
        f1 = metrics["onset_f1"]
        lines.append(f"      note-onset F1: piano {f1['piano']:.2f}, piano-vocoder {f1['piano-vocoder']:.2f}, "
                     f"FluidSynth {f1['fluidsynth']:.2f}, the reference itself {f1['reference']:.2f}")
    return "\n".join(lines)


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
    t0 = time.perf_counter()

    corpus = out / "corpus"
    print(f"[1/5] synthesising a MAESTRO-like corpus in {corpus} ...", flush=True)
    if not (corpus / "maestro-v3.0.0.csv").is_file():
        build_corpus(corpus, SynthConfig(minutes=2.5, seed=0, sample_rate=DEMO_SAMPLE_RATE, min_piece_seconds=12, max_piece_seconds=25))
    index = MaestroIndex(corpus)
    print(f"      {len(index)} pieces, {index.hours() * 60:.1f} min of audio", flush=True)

    print(f"[2/5] the shipped models (waveforge models) on a held-out piece ({SHIPPED_SECONDS:.0f} s) ...", flush=True)
    shipped = shipped_demo(out / "shipped", index.split("test")[0])
    default_minutes = TRAIN_MINUTES if shipped is None else TRAIN_MINUTES_AFTER_SHIPPED
    train_seconds = 60 * (minutes if minutes is not None else default_minutes)

    print(f"[3/5] a short training demo: a MelGAN vocoder and a MelGAN MIDI renderer from scratch ({train_seconds / 60:.1f} min in all) ...", flush=True)
    models = {}
    for conditioning, share in (("mel", 0.55), ("piano_roll", 0.45)):
        task, steps = _train(corpus, out / "runs", conditioning, train_seconds * share)
        path = save_model_file(out / f"melgan-{conditioning.replace('_', '-')}.safetensors", task.model_file())
        models[conditioning] = path
        print(f"      {conditioning}: {steps} steps -> {path}", flush=True)

    print("[4/5] vocoding and rendering a held-out piece with the models just trained ...", flush=True)
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

    print("[5/5] measuring the short training demo against the baselines on the test split ...", flush=True)
    metrics = {
        "shipped": shipped,
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
        f"{verdict} after a {train_seconds / 60:.1f}-minute training demo (the shipped models come from recipes/piano/)."
    )
    if shipped is not None:
        print(f"wrote to {out}/shipped/: the shipped models' " + ", ".join(f"{n}.wav" for n in ("reference", "piano", "piano-vocoder", "griffin-lim", "fluidsynth"))
              + ", spectrograms.png, metrics.json")
    print(f"wrote to {out}/ (training demo): " + ", ".join(f"{n}.wav" for n in wavs) + ", spectrograms.png, metrics.json, melgan-*.safetensors, runs/ (TensorBoard)")
    print(f"done in {metrics['demo_seconds']:.0f} s")
    return metrics
