"""The GPU check: mixed-precision training of every family's paper-size recipe, and GPU inference.

Run by ``scripts/gpu-check.sh`` (``python -m waveforge.benchmarks.gpu``). For each family's
``recipes/<family>/maestro.yaml`` it trains about 50 batches through ``waveforge fit``'s own
LightningCLI with ``--trainer.accelerator gpu --trainer.precision bf16-mixed`` on a small
procedural corpus it builds itself (``waveforge data synth --no-real``), and prints one JSON object
per figure, as ``waveforge bench`` does:

* ``gpu/train/<family>``: training batches per second (``steps_per_s``; SampleRNN and the GAN take
  several optimiser steps per batch, ``optimizer_steps_per_s`` counts those), seconds of audio
  trained per second (``audio_seconds_per_s``), peak GPU memory (``torch.cuda.max_memory_allocated``),
  the task's training loss averaged over the first and the last few batches (``loss_start``,
  ``loss_end``: they must be finite and, except for the GAN's adversarial loss, must fall), and
  whether the task's ``synthesize`` (validation audio) ran on the device afterwards;
* ``gpu/infer/...``: 60 s vocoded by MelGAN, WaveGlow and DiffWave (6 and 50 steps), 60 s of MIDI
  rendered by the piano-roll recipes (``maestro-midi.yaml``), and WaveNet / SampleRNN generation of
  1 and 32 streams (samples per second, all streams together), each through the exported model and
  :class:`~waveforge.inference.Synthesizer`, as ``waveforge vocode / render / sample`` run them.
  Weights are random: speed does not depend on training.

Each case runs in its own process (``--case``), so one that fails (out of memory, a device
mismatch, NaN) is reported with its error and the others still run. ``--dry-run`` runs every case
on the CPU with tiny models, two or three batches and a one-second input: it checks that the whole
script still works, not speed (CI runs it: ``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


@dataclass(frozen=True)
class TrainCase:
    """One family's paper-size recipe. ``tiny`` are the ``waveforge fit`` overrides of a dry run
    (a model small enough for seconds on a CPU, short crops, batch 2)."""

    family: str
    loss_key: str  # what the task logs as its training objective
    adversarial: bool = False  # a GAN's generator loss need not fall in 50 batches
    tiny: tuple[str, ...] = ()
    recipe: str = "maestro.yaml"


def _tiny_data(segment: int = 2048) -> tuple[str, ...]:
    return ("--data.segment_length", str(segment), "--data.val_segment_length", str(segment), "--data.batch_size", "2")

TRAIN_CASES: dict[str, TrainCase] = {
    c.family: c
    for c in [
        TrainCase("wavenet", "train/nll", tiny=("--model.init_args.architecture", "{preset: tiny}", *_tiny_data())),
        TrainCase("samplernn", "train/nll", tiny=("--model.init_args.architecture", "{preset: tiny}", *_tiny_data(1024))),
        TrainCase("vqvae", "train/loss", tiny=(
            "--model.init_args.architecture", "{levels: [" + ", ".join(
                f"{{hop_length: {hop}, codebook_size: 64, code_dim: 16, width: 16, depth: 2}}" for hop in (8, 32, 128)) + "]}",
            "--model.init_args.warmup_steps", "2",
            "--model.init_args.top_prior", "{preset: tiny}", "--model.init_args.upsampler", "{preset: tiny}", *_tiny_data(4096),
        )),
        TrainCase("waveglow", "train/nll", tiny=(
            "--model.init_args.architecture", "{preset: tiny, n_group: 8, n_channels: 16}", *_tiny_data(),
        )),
        TrainCase("melgan", "train/generator", adversarial=True, tiny=(
            "--model.init_args.architecture", "{preset: paper, initial_channels: 32}", "--model.init_args.discriminator_size", "tiny",
            *_tiny_data(),
        )),
        TrainCase("diffwave", "train/loss", tiny=(
            "--model.init_args.architecture", "{preset: paper, residual_channels: 8, n_layers: 4, dilation_cycle: 2}", *_tiny_data(),
        )),
    ]
}


@dataclass(frozen=True)
class InferCase:
    """Inference figures of one recipe's model, built the way ``waveforge export`` writes it."""

    name: str
    family: str
    recipe: str
    run: Callable[["InferContext"], Iterator[dict]]


@dataclass
class RunSettings:
    """Where and how big: the device (``cpu`` in a dry run), the work folder and corpus, the training
    batches (timed after ``warmup_batches``) and the loss window at each end."""

    device: str
    dry_run: bool
    work: Path
    corpus: Path
    batches: int = 50
    warmup_batches: int = 5
    loss_window: int = 5

    @classmethod
    def make(cls, device: str, dry_run: bool, work: Path, batches: int | None = None) -> "RunSettings":
        if dry_run:
            return cls(device="cpu", dry_run=True, work=work, corpus=work / "corpus", batches=batches or 3, warmup_batches=1, loss_window=1)
        return cls(device=device, dry_run=False, work=work, corpus=work / "corpus", batches=batches or 50)

    @property
    def accelerator(self) -> str:
        return "cpu" if self.device == "cpu" else "gpu"

    @property
    def infer_seconds(self) -> float:
        return 1.0 if self.dry_run else 60.0

    @property
    def repeats(self) -> int:
        return 1 if self.dry_run else 3


# -- helpers ---------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: str, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls of ``fn`` (after one warm call), and the last output."""
    out = fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def loss_summary(losses: list[float], window: int, adversarial: bool, require_fall: bool = True) -> dict:
    """``loss_start`` / ``loss_end`` (means of the first and the last ``window`` batches), whether
    every value is finite, whether the loss fell, and ``ok``: finite, and fell unless adversarial
    or not ``require_fall`` (a dry run's two or three batches say nothing about learning)."""
    if not losses:
        return {"loss_start": None, "loss_end": None, "loss_finite": False, "loss_fell": False, "ok": False}
    window = max(1, min(window, len(losses) // 2 or 1))
    start, end = statistics.fmean(losses[:window]), statistics.fmean(losses[-window:])
    finite = all(math.isfinite(v) for v in losses)
    fell = finite and end < start
    return {"loss_start": _round(start), "loss_end": _round(end), "loss_finite": finite, "loss_fell": fell,
            "ok": finite and (fell or adversarial or not require_fall)}


def _round(x: float) -> float | None:
    return round(x, 5) if math.isfinite(x) else None


def fit_argv(case: TrainCase, settings: RunSettings, recipe: Path | None = None) -> list[str]:
    """``waveforge fit`` arguments: the recipe on one device in bf16 mixed precision, on the
    check's corpus, no validation, logging or checkpoints (the figures are the training step's)."""
    import yaml

    recipe = recipe or RECIPES / case.family / case.recipe
    workers = 0 if settings.dry_run else min(yaml.safe_load(recipe.read_text())["data"].get("num_workers", 2), os.cpu_count() or 1)
    argv = [
        "--config", str(recipe),
        "--trainer.accelerator", settings.accelerator, "--trainer.devices", "1", "--trainer.num_nodes", "1",
        "--trainer.strategy", "auto", "--trainer.precision", "bf16-mixed",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(settings.work / "runs" / case.family),
        "--no_resume", "true", "--checkpoint_every", "100000000",
        "--data.root", str(settings.corpus), "--data.num_workers", str(workers),
    ]
    return argv + list(case.tiny if settings.dry_run else ())


# -- training --------------------------------------------------------------------------------------


def run_training(case: TrainCase, settings: RunSettings) -> dict:
    import lightning as L
    import torch

    from waveforge.tasks.cli import make_cli

    cuda = settings.device.startswith("cuda")
    cli = make_cli(fit_argv(case, settings))
    task, data, trainer = cli.model, cli.datamodule, cli.trainer
    n_batches, warmup = settings.batches, min(settings.warmup_batches, settings.batches - 1)
    probe: dict = {"losses": [], "batches": 0}

    class Probe(L.Callback):
        """Reads the logged loss after each batch; times batches ``warmup`` to ``n_batches``; stops there."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            value = trainer.callback_metrics.get(case.loss_key)
            probe["losses"].append(float(value) if value is not None else math.nan)
            probe["batches"] += 1
            if probe["batches"] in (warmup, n_batches):
                _sync(settings.device)
                probe[probe["batches"]] = (time.perf_counter(), trainer.global_step)
            if probe["batches"] >= n_batches:
                trainer.should_stop = True

    trainer.callbacks.append(Probe())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.fit(task, datamodule=data)
    wall = time.perf_counter() - started
    if probe["batches"] < n_batches:
        raise RuntimeError(f"training stopped after {probe['batches']} of {n_batches} batches")
    (t0, step0), (t1, step1) = probe[warmup], probe[n_batches]
    seconds_per_batch = (t1 - t0) / (n_batches - warmup)
    audio_seconds = data.batch_size * data.segment_length / data.sample_rate
    figure = {
        "name": f"gpu/train/{case.family}",
        "recipe": f"recipes/{case.family}/{case.recipe}",
        "precision": trainer.precision,
        "steps_per_s": round(1.0 / seconds_per_batch, 3),
        "optimizer_steps_per_s": round((step1 - step0) / (t1 - t0), 3),
        "audio_seconds_per_s": round(audio_seconds / seconds_per_batch, 3),
        "batch": data.batch_size,
        "segment_length": data.segment_length,
        "batches": n_batches,
        "timed_batches": n_batches - warmup,
        "wall_s": round(wall, 1),
        "trained_parameters_m": round(sum(p.numel() for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]) / 1e6, 2),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "loss_key": case.loss_key,
        **loss_summary(probe["losses"], settings.loss_window, case.adversarial, require_fall=not settings.dry_run),
    }
    figure["synthesize_ok"] = _synthesize_check(task, settings.device)
    figure["ok"] = figure["ok"] and figure["synthesize_ok"]
    return figure


def _synthesize_check(task, device: str) -> bool:
    """The task's ``synthesize`` (what the validation audio logger calls) on a short input on the
    training device: finite audio of the asked length."""
    import torch

    task.eval()
    with torch.no_grad():
        frames = 8  # MelGAN's reflection padding needs a few
        hop = task.hop_length or 64
        cond = None
        if task.cond_channels:
            cond = torch.randn(1, task.cond_channels, frames, device=task.device) - 4.0
        audio = task.synthesize(cond, frames * hop)
    return bool(audio.shape[-1] == frames * hop and torch.isfinite(audio).all())


# -- inference -------------------------------------------------------------------------------------


@dataclass
class InferContext:
    settings: RunSettings
    case: InferCase

    def synthesizer(self):
        """The recipe's model (tiny in a dry run), exported and rebuilt by its family adapter on the device."""
        from waveforge.inference import Synthesizer
        from waveforge.inference.families import get_adapter
        from waveforge.tasks.cli import make_cli

        train_case = TRAIN_CASES[self.case.family]
        settings = self.settings
        path = RECIPES / self.case.family / self.case.recipe
        argv = fit_argv(train_case, settings, path)
        argv[argv.index("--trainer.accelerator") + 1] = "cpu"  # the task is only built here, not trained
        argv[argv.index("--trainer.precision") + 1] = "32-true"
        model_file = make_cli(argv).model.model_file()
        adapter = get_adapter(model_file.family)
        model = adapter.build(model_file.model_config, model_file.state_dict).to(settings.device).eval()
        return Synthesizer(model, adapter, model_file)

    def figure(self, suffix: str, seconds: float, audio, **extra) -> dict:
        import torch

        return {"name": f"gpu/infer/{self.case.name}/{suffix}", "seconds": round(seconds, 4),
                "finite": bool(torch.isfinite(audio).all()), **extra}


def _vocode(steps: tuple[int | None, ...] = (None,), compiled: bool = False):
    """x real time for a 60 s mel (``steps``: diffusion step counts). ``compiled``: through
    ``Synthesizer.compile()`` (``waveforge vocode --compile``); the warm call compiles, once per
    chunk length."""

    def run(ctx: InferContext) -> Iterator[dict]:
        import torch

        from waveforge.inference.families import SynthesisOptions

        synth = ctx.synthesizer()
        if compiled:
            synth.compile()
        s = ctx.settings
        frames = round(s.infer_seconds * synth.sample_rate / synth.hop_length)
        mel = torch.randn(synth.feature.n_mels, frames, generator=torch.Generator().manual_seed(0)) - 5.0
        for n in steps:
            options = SynthesisOptions(seed=0, steps=None if n is None else (2 if s.dry_run else n))
            t0 = time.perf_counter()
            t, audio = _timed(lambda: synth.vocode(mel, options), s.device, s.repeats if (n or 0) < 50 else 1)
            audio_seconds = audio.shape[-1] / synth.sample_rate
            extra = {"first_call_s": round(time.perf_counter() - t0 - t * (s.repeats if (n or 0) < 50 else 1), 2)} if compiled else {}
            yield ctx.figure(f"vocode-{s.infer_seconds:g}s" + (f"-{n}steps" if n else ""), t, audio,
                             x_realtime=round(audio_seconds / t, 2), audio_seconds=round(audio_seconds, 2), **extra)

    return run


def _render(ctx: InferContext) -> Iterator[dict]:
    import numpy as np

    from waveforge.data.synth import perform, procedural_score
    from waveforge.inference.families import SynthesisOptions

    synth = ctx.synthesizer()
    s = ctx.settings
    rng = np.random.default_rng(0)
    midi = perform(procedural_score(rng, s.infer_seconds), rng)
    midi.instruments[0].notes = [n for n in midi.instruments[0].notes if n.start < s.infer_seconds]
    options = SynthesisOptions(seed=0, steps=2 if s.dry_run else 6)
    t, audio = _timed(lambda: synth.render(midi, options), s.device, s.repeats)
    audio_seconds = audio.shape[-1] / synth.sample_rate
    yield ctx.figure(f"render-{s.infer_seconds:g}s", t, audio, x_realtime=round(audio_seconds / t, 2), audio_seconds=round(audio_seconds, 2))


def _generate(batches: tuple[int, ...]):
    """Batched autoregressive generation: ``B`` streams of ``n`` samples; conditioned models get a
    random mel of ``n / hop`` frames per stream. On a GPU this is the PyTorch loop (the numba loops
    run on the CPU only); a dry run takes that path too, by telling the models the CPU is not one
    the loops run on."""

    def run(ctx: InferContext) -> Iterator[dict]:
        import contextlib
        import warnings
        from unittest import mock

        from waveforge import kernels

        synth = ctx.synthesizer()
        with contextlib.ExitStack() as stack:
            if ctx.settings.dry_run:
                stack.enter_context(mock.patch.object(kernels, "runs_on", lambda device: False))
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", message=".*fused generation loop runs on the CPU only")
            yield from _generate_figures(ctx, synth, batches)

    return run


def _generate_figures(ctx: InferContext, synth, batches: tuple[int, ...]) -> Iterator[dict]:
    import torch

    from waveforge.inference.families import SynthesisOptions

    s = ctx.settings
    n = 64 if s.dry_run else 1024
    for batch in batches:
        batch = min(batch, 2) if s.dry_run else batch
        options = SynthesisOptions(seed=0, batch_size=batch)
        if synth.feature is None:
            fn = lambda: synth.sample(n / synth.sample_rate, batch_size=batch, options=options)  # noqa: E731
        else:
            frames = max(1, n // synth.hop_length)
            mel = torch.randn(batch, synth.feature.n_mels, frames, generator=torch.Generator().manual_seed(0)) - 5.0
            fn = lambda: synth.synthesize(mel, options)  # noqa: E731
        t, audio = _timed(fn, s.device, 1)
        yield ctx.figure(f"generate-b{batch}", t, audio, samples_per_s=round(audio.numel() / t, 1), streams=batch,
                         samples_per_stream=audio.shape[-1], backend="pytorch")


INFER_CASES: dict[str, InferCase] = {
    c.name: c
    for c in [
        InferCase("melgan", "melgan", "maestro.yaml", _vocode()),
        InferCase("melgan-midi", "melgan", "maestro-midi.yaml", _render),
        InferCase("waveglow", "waveglow", "maestro.yaml", _vocode()),
        InferCase("waveglow-midi", "waveglow", "maestro-midi.yaml", _render),
        InferCase("diffwave", "diffwave", "maestro.yaml", _vocode((6, 50))),
        InferCase("diffwave-midi", "diffwave", "maestro-midi.yaml", _render),
        InferCase("wavenet", "wavenet", "maestro.yaml", _generate((1, 32))),
        InferCase("samplernn", "samplernn", "maestro.yaml", _generate((1, 32))),
        # last: compiling takes the longest, and the time budget skips what is left
        InferCase("melgan-compiled", "melgan", "maestro.yaml", _vocode(compiled=True)),
    ]
}

CASES = [f"train:{f}" for f in TRAIN_CASES] + [f"infer:{n}" for n in INFER_CASES]
#: left out of a dry run unless ``--only`` names them: compiling on the CPU takes about a minute and
#: says nothing of the GPU (``tests/test_gan_task.py`` holds compiled vocoding equal to eager)
DRY_RUN_SKIPS = ("infer:melgan-compiled",)


def run_case(case: str, settings: RunSettings) -> list[dict]:
    """One case in this process: its figures (a training case has one)."""
    import warnings

    import torch

    # make_cli is given its arguments, not sys.argv: LightningCLI warns when the process has others
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    torch.manual_seed(0)
    kind, _, name = case.partition(":")
    if kind == "train":
        return [run_training(TRAIN_CASES[name], settings)]
    if kind == "infer":  # Synthesizer calls enter inference mode themselves, as for a user
        ic = INFER_CASES[name]
        return list(ic.run(InferContext(settings, ic)))
    raise ValueError(f"unknown case {case!r} (known: {', '.join(CASES)})")


# -- the driver ------------------------------------------------------------------------------------


def device_figure(settings: RunSettings) -> dict:
    import torch

    import waveforge

    figure = {"name": "gpu/device", "device": settings.device, "dry_run": settings.dry_run, "torch": torch.__version__,
              "waveforge": waveforge.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if settings.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(settings.device))
        figure.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                      bf16_supported=torch.cuda.is_bf16_supported())
    return figure


CORPUS_RATE = 22050


def ensure_corpus(settings: RunSettings) -> str:
    """A procedural MAESTRO-layout corpus at 22.05 kHz (SampleRNN's 16 kHz is resampled once into the
    cache), unless one is there already; returns how its audio was made. FluidSynth renders it
    (``waveforge data synth --no-real``); where the FluidSynth library is missing (a GPU machine's
    image may have none, and nothing can be installed there), the same performances are rendered as
    sines by :func:`sine_corpus`, so the check still runs."""
    from waveforge.data.synth import SynthConfig, build_corpus
    from waveforge.errors import BadInputError
    from waveforge.midi.render import _fluidsynth

    if (settings.corpus / "maestro-v3.0.0.csv").is_file():
        return "existing"
    minutes = 0.5 if settings.dry_run else 4.0
    try:
        _fluidsynth()
    except BadInputError as e:
        print(f"gpu-check: {e}; rendering the corpus as sines instead", file=sys.stderr)
        sine_corpus(settings.corpus, minutes)
        return "sines (no FluidSynth)"
    build_corpus(settings.corpus, SynthConfig(minutes=minutes, seed=0, sample_rate=CORPUS_RATE, use_real=False), progress=False)
    return "fluidsynth"


def sine_corpus(out: Path, minutes: float, seed: int = 0) -> None:
    """The procedural pieces of ``waveforge data synth`` in the MAESTRO layout, rendered by
    pretty_midi's additive synthesis (a sine per note) instead of FluidSynth."""
    import numpy as np

    from waveforge.audio.io import save_audio
    from waveforge.data.maestro import write_metadata
    from waveforge.data.synth import assign_splits, perform, procedural_score
    from waveforge.utils.atomic import atomic_path

    rows, pieces, total = [], [], 0.0
    while total < minutes * 60 or len(pieces) < 3:
        rng = np.random.default_rng((seed, len(pieces)))
        midi = perform(procedural_score(rng, float(rng.uniform(20.0, 40.0))), rng)
        audio = midi.synthesize(fs=CORPUS_RATE).astype(np.float32)
        audio *= 0.5 / max(float(np.abs(audio).max()), 1e-6)
        pieces.append((midi, audio))
        total += len(audio) / CORPUS_RATE
    splits = assign_splits(len(pieces), np.random.default_rng((seed, 2**31 - 1)))
    for index, ((midi, audio), split) in enumerate(zip(pieces, splits)):
        stem = f"2018/WF-SINES_seed{seed}_{index:04d}"
        (out / "2018").mkdir(parents=True, exist_ok=True)
        with atomic_path(out / f"{stem}.midi") as tmp:
            midi.write(str(tmp))
        save_audio(out / f"{stem}.wav", audio[None], CORPUS_RATE)
        rows.append(dict(canonical_composer="waveforge", canonical_title=f"sines {index}", split=split, year=2018,
                         midi_filename=f"{stem}.midi", audio_filename=f"{stem}.wav", duration=round(len(audio) / CORPUS_RATE, 6)))
    write_metadata(out, rows)


def _in_process(case: str, settings: RunSettings) -> tuple[list[dict], str | None]:
    try:
        return run_case(case, settings), None
    except Exception as e:  # reported as the case's figure; the other cases still run
        return [], f"{type(e).__name__}: {e}".splitlines()[0][:500]


def _child(case: str, settings: RunSettings, timeout: float) -> tuple[list[dict], str | None]:
    """Run ``case`` in a fresh process; its figures, or an error line."""
    cmd = [sys.executable, "-m", "waveforge.benchmarks.gpu", "--case", case, "--device", settings.device, "--work", str(settings.work),
           "--corpus", str(settings.corpus), "--batches", str(settings.batches)] + (["--dry-run"] if settings.dry_run else [])
    log = settings.work / "logs" / f"{case.replace(':', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        log.write_text((e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""))
        return [], f"timed out after {timeout:.0f} s (log: {log})"
    log.write_text(proc.stderr)
    figures = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return figures, f"exit status {proc.returncode}: {lines[-1] if lines else 'no output'} (log: {log})"
    return figures, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m waveforge.benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="cuda (default; the first visible GPU: choose with CUDA_VISIBLE_DEVICES) or cpu")
    p.add_argument("--dry-run", action="store_true", help="every case on the CPU with tiny models and a few batches (CI)")
    p.add_argument("--work", type=Path, default=None, help="corpus, run folders and logs (default: a folder under /tmp)")
    p.add_argument("--corpus", type=Path, default=None, help="a MAESTRO-layout corpus to train on (default: WORK/corpus, built if absent)")
    p.add_argument("--only", default=None, help="comma-separated case prefixes, e.g. train:wavenet,infer")
    p.add_argument("--batches", type=int, default=None, help="training batches per family (default 50; 3 in a dry run)")
    p.add_argument("--budget-s", type=float, default=480.0, help="skip the cases left once this much time has passed (default 480)")
    p.add_argument("--case-timeout-s", type=float, default=240.0, help="stop an isolated case after this long (default 240)")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="each case in its own process (default on a GPU: a crash or a poisoned CUDA context stays in its case; "
                        "in a dry run all cases share one process, which saves a start-up per case)")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # one case, in this process (the driver's child)
    args = p.parse_args(argv)
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "waveforge-gpu-check"
    if args.batches is not None and args.batches < 2:
        p.error("--batches must be at least 2 (the first is not timed)")
    settings = RunSettings.make(args.device, args.dry_run, work, args.batches)
    if args.corpus is not None:
        settings.corpus = args.corpus.resolve()
    if not settings.dry_run and settings.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"gpu-check: no CUDA device is visible (torch {torch.__version__}); use --dry-run to check the script on the CPU",
                  file=sys.stderr)
            return 2
    if args.case:
        for figure in run_case(args.case, settings):
            print(json.dumps(figure), flush=True)
        return 0

    isolate = (not settings.dry_run) if args.isolate is None else args.isolate
    settings.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    figure = device_figure(settings)
    figure["corpus"] = ensure_corpus(settings)
    print(json.dumps(figure), flush=True)
    if args.only:
        cases = [c for c in CASES if any(c.startswith(o) for o in args.only.split(","))]
    else:
        cases = [c for c in CASES if not (settings.dry_run and c in DRY_RUN_SKIPS)]
    failed = 0
    for case in cases:
        left = args.budget_s - (time.monotonic() - started)
        if left <= 0:
            print(json.dumps({"name": f"gpu/{case}", "skipped": f"time budget of {args.budget_s:g} s spent"}), flush=True)
            failed += 1
            continue
        if isolate:
            figures, error = _child(case, settings, timeout=max(min(left, args.case_timeout_s), 30.0))
        else:
            figures, error = _in_process(case, settings)
        for figure in figures:
            print(json.dumps(figure), flush=True)
            failed += not figure.get("ok", figure.get("finite", True))
        if error:
            print(json.dumps({"name": f"gpu/{case}", "error": error}), flush=True)
            failed += 1
    print(json.dumps({"name": "gpu/summary", "cases": len(cases), "failed": failed, "wall_s": round(time.monotonic() - started, 1)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
