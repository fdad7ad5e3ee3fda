"""The ``waveforge`` command.

Each subcommand parses its arguments here and calls library code; bad input anywhere surfaces as
:class:`~waveforge.errors.BadInputError`, printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from waveforge.errors import BadInputError


MODEL_HELP = "a model file (.safetensors) or a shipped model's name (waveforge models lists them)"
#: inputs that are never a model: MIDI for render, audio and mels for vocode
MIDI_SUFFIXES = (".mid", ".midi")
VOCODE_INPUT_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".npy")


def _add_threads_option(p) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op CPU threads (default: the cores not already busy, from the load average; "
                        "env WAVEFORGE_THREADS; an explicit OMP_NUM_THREADS is respected)")


def _add_synthesis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--temperature", type=float, default=1.0, help="AR sampling temperature (default 1.0)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass for AR models (default 1.0: off)")
    g.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    g.add_argument("--sampler", default=None, help="diffusion sampler: ddpm, ddim, euler, heun, dpmpp-2m")
    g.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = off)")
    g.add_argument("--sigma", type=float, default=None, help="WaveGlow prior temperature (default: the model's)")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--weights", choices=("auto", "float32", "float16"), default="auto",
                   help="SampleRNN's generation weights: auto (default) stores them in float16 where memory "
                        "bandwidth bounds the speed (one stream), float32 otherwise")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    _add_threads_option(g)
    g.add_argument("--max-seconds", type=float, default=None,
                   help="refuse inputs or outputs longer than this (default 4 hours; env WAVEFORGE_MAX_SECONDS)")


def _options(args: argparse.Namespace, **overrides):
    from waveforge.inference.families import SynthesisOptions

    return SynthesisOptions(
        temperature=args.temperature,
        top_p=args.top_p,
        steps=args.steps,
        sampler=args.sampler,
        guidance=args.guidance,
        sigma=args.sigma,
        seed=args.seed,
        weights=args.weights,
        progress=True,
        **overrides,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waveforge", description="Waveform-domain music generation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="the models shipped in the package (usable by name wherever a model file goes)")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("demo", help="the shipped models on a held-out piece, then a short training run; no downloads")
    p.add_argument("-o", "--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    p.add_argument("--minutes", type=float, default=None, help="training budget in minutes (default: the demo's)")
    p.set_defaults(func=_cmd_demo)

    data = sub.add_parser("data", help="datasets in the MAESTRO layout").add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data.add_parser("synth", help="build a MAESTRO-like corpus offline")
    p.add_argument("out", type=Path)
    p.add_argument("--minutes", type=float, default=10.0, help="total audio to make (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--soundfont", type=Path, action="append", default=None,
                   help=".sf2/.sf3 file; repeat it to spread the pieces across several pianos (default: the one pretty_midi ships)")
    p.add_argument("--holdout-soundfont", default=None, metavar="NAME",
                   help="put every piece of this soundfont (file name or stem) in the test split, and no other piece")
    p.add_argument("--acoustics", action="store_true",
                   help="record each piece in a drawn room (reverberation), level, EQ tilt and noise, as real recordings differ")
    p.add_argument("--no-real", action="store_true", help="procedural pieces only (skip the music21 corpus)")
    p.set_defaults(func=_cmd_data_synth)
    p = data.add_parser("check", help="validate a MAESTRO-layout folder")
    p.add_argument("root", type=Path)
    p.add_argument("--tolerance", type=float, default=1.0, help="allowed duration mismatch in seconds (default 1)")
    p.add_argument("--decode", action="store_true", help="also read every sample and refuse NaN or infinite ones (slower: decodes all audio)")
    p.set_defaults(func=_cmd_data_check)
    p = data.add_parser("list", help="print a split's audio (or MIDI) paths, one per line")
    p.add_argument("root", type=Path)
    p.add_argument("--split", default="test", choices=("train", "validation", "test"), help="default test")
    p.add_argument("--midi", action="store_true", help="the MIDI files instead of the audio")
    p.set_defaults(func=_cmd_data_list)

    p = sub.add_parser("fit", help="train with a recipe (LightningCLI; --help lists every option)", add_help=False)
    p.set_defaults(func=None)

    p = sub.add_parser("export", help="Lightning checkpoint -> .safetensors model",
                       description="Lightning checkpoint -> .safetensors model. A checkpoint is pickle, and a pickle from "
                                   "elsewhere is code: it is read with weights_only=True and an allowlist, and only task "
                                   "classes from waveforge.tasks are accepted, but export only checkpoints you trust. "
                                   "Share exported models (.safetensors: no code), not checkpoints.")
    p.add_argument("checkpoint", type=Path, nargs="+",
                   help="one checkpoint; or several VQ-VAE stages trained in parallel, each part from the last that trained it; "
                        "or an exported .safetensors model (or a shipped model's name) to rewrite with --dtype")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--vocoder", type=Path, default=None,
                   help="a mel vocoder (.safetensors or a shipped name) to store with a notes-to-mel model: one file that "
                        "renders MIDI (the notes model may be a checkpoint or an exported .safetensors)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="storage of the floating-point weights (default float32); float16 halves the file and loads as float32")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("vocode", help="wav (analysed to mel) or .npy mel -> wav")
    p.add_argument("inputs", type=Path, nargs="+", metavar="[MODEL] INPUT",
                   help="the vocoder (a .safetensors file or a shipped model's name; default: the shipped piano-vocoder), "
                        "then audio files or .npy mels; a first argument that is audio or .npy starts the inputs")
    p.add_argument("-o", "--out-dir", type=Path, required=True,
                   help="output folder: <stem>.wav per input (<stem>-000.wav, ... for a batch of mels); never an input's own file")
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist (default: refuse)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (MelGAN; needs a C++ compiler; the first call per input length compiles)")
    _add_synthesis_options(p)
    p.set_defaults(func=_cmd_vocode)

    p = sub.add_parser("render", help="MIDI -> wav with a piano-roll-conditioned model, or a notes-to-mel model + --vocoder")
    p.add_argument("inputs", type=Path, nargs="+", metavar="[MODEL] MIDI",
                   help="the renderer (a .safetensors file or a shipped model's name; default: the shipped piano), then the MIDI file")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--vocoder", type=Path, default=None,
                   help="the mel vocoder that turns a notes-to-mel model's mel into audio (sampling options apply to the notes model)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (MelGAN; needs a C++ compiler; the first call per input length compiles)")
    _add_synthesis_options(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("sample", help="unconditional / hierarchical sampling")
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("-n", "--num", type=int, default=1, help="how many samples (default 1)")
    p.add_argument("-o", "--output", type=Path, default=Path("sample.wav"), help="output wav; with -n > 1, numbered")
    _add_synthesis_options(p)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("encode", help="wav -> hierarchical VQ-VAE codes (.npz)")
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="codes file (.npz)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    _add_threads_option(p)
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("decode", help="VQ-VAE codes (.npz) -> wav")
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument("codes", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--level", type=int, default=None, help="decode this level's codes (default: the finest in the file)")
    _add_synthesis_options(p)
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("spectrogram", help="log-mel pictures of wav files, stacked in one PNG")
    p.add_argument("inputs", type=Path, nargs="+", help="audio files (each a row; read at --sample-rate)")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG file")
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--seconds", type=float, default=None, help="only the first S seconds of each file")
    p.add_argument("--title", action="append", default=None, help="a row title, once per file in order (default: the file names)")
    p.set_defaults(func=_cmd_spectrogram)

    p = sub.add_parser("eval", help="metrics on a split, as JSON")
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--max-pieces", type=int, default=None)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per piece (default 10)")
    p.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--notes", action="store_true",
                   help="also transcribe every output and score its notes against the MIDI (onset and offset F1), "
                        "beside the reference audio and FluidSynth's render; needs pip install 'waveforge[notes]'")
    p.add_argument("--fluidsynth-soundfont", type=Path, default=None,
                   help="soundfont of the FluidSynth baseline render (default: the one pretty_midi ships)")
    p.add_argument("--griffin-lim-iters", type=int, default=64, help="iterations of the Griffin-Lim baseline (default 64)")
    _add_synthesis_options(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("bench", help="speed figures, one JSON object per line")
    p.add_argument("--json", action="store_true", help="JSON lines only (no table)")
    p.add_argument("--only", default=None, help="comma-separated name prefixes to run")
    p.add_argument("--quick", action="store_true", help="fewer repeats (for smoke-testing the benchmark)")
    p.set_defaults(func=_cmd_bench)
    return parser


# -- handlers -------------------------------------------------------------------------------------


def _cmd_models(args) -> int:
    from waveforge.pretrained import SHIPPED, describe, format_models

    rows = [describe(model) for model in SHIPPED.values()]
    print("\n".join(json.dumps(row) for row in rows) if args.json else format_models(rows))
    return 0


def _split_model(command: str, paths: list[Path], default: str, input_suffixes: tuple[str, ...]) -> tuple[Path, list[Path]]:
    """``[MODEL] INPUT...`` -> (model, inputs): the first argument is the model unless it is the only
    one or its suffix marks an input; then the shipped ``default`` is the model."""
    from waveforge.pretrained import SHIPPED, resolve

    first = paths[0]
    if len(paths) == 1 or first.suffix.lower() in input_suffixes:
        if len(paths) == 1 and (first.suffix.lower() == ".safetensors" or str(first) in SHIPPED):
            raise BadInputError(first, f"is a model; {command} needs an input file after it")
        model, inputs = Path(default), paths
    else:
        model, inputs = first, paths[1:]
    resolve(model)  # an absent shipped model is refused before any output folder is made
    return model, inputs


def _cmd_demo(args) -> int:
    from waveforge.demo import run_demo

    run_demo(args.out, minutes=args.minutes)
    return 0


def _cmd_data_synth(args) -> int:
    from waveforge.data.synth import SynthConfig, build_corpus

    pieces = build_corpus(
        args.out,
        SynthConfig(
            minutes=args.minutes, seed=args.seed, sample_rate=args.sample_rate, soundfonts=tuple(args.soundfont or ()),
            holdout_soundfont=args.holdout_soundfont, acoustics=args.acoustics, use_real=not args.no_real,
        ),
        progress=True,
    )
    print(f"{args.out}: {len(pieces)} pieces, {sum(p.duration for p in pieces) / 60:.1f} min of audio")
    return 0


def _cmd_data_check(args) -> int:
    from waveforge.data.check import check_dataset

    summary = check_dataset(args.root, tolerance=args.tolerance, progress=True, decode=args.decode)
    print(summary.format())
    return 0


def _cmd_data_list(args) -> int:
    from waveforge.data.maestro import MaestroIndex

    records = MaestroIndex(args.root).split(args.split)
    if not records:
        raise BadInputError(args.root, f"split {args.split!r} has no pieces")
    for record in records:
        print(record.midi_path if args.midi else record.audio_path)
    return 0


def _cmd_export(args) -> int:
    from waveforge.pretrained import is_shipped_name
    from waveforge.tasks.export import export_checkpoint

    if args.vocoder is not None:
        from waveforge.inference.twostage import compose_checkpoint

        if len(args.checkpoint) != 1:
            raise BadInputError(args.output, "--vocoder composes one notes-to-mel model with a vocoder")
        path = compose_checkpoint(args.checkpoint[0], args.vocoder, args.output, dtype=args.dtype)
        print(f"wrote {path}")
        return 0
    first = args.checkpoint[0]
    if len(args.checkpoint) == 1 and (first.suffix == ".safetensors" or is_shipped_name(first)):  # already exported: convert
        from waveforge.inference.modelfile import convert_model_file

        print(f"wrote {convert_model_file(first, args.output, args.dtype)}")
        return 0
    path = export_checkpoint(args.checkpoint, args.output, dtype=args.dtype)
    print(f"wrote {path}")
    return 0


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise BadInputError(None, f"--device {device!r}: {str(e).splitlines()[0][:120]}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(None, f"--device {device}: no CUDA GPU is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BadInputError(None, f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def _apply_limits(args) -> None:
    """``--max-seconds`` for this call only (main restores the environment)."""
    import os

    from waveforge.utils.limits import MAX_SECONDS_ENV

    if getattr(args, "max_seconds", None) is not None:
        os.environ[MAX_SECONDS_ENV] = str(args.max_seconds)


def _vocode_outputs(inputs: list[Path], out_dir: Path, overwrite: bool) -> list[list[Path]]:
    """Each input's output paths (several for a batch of mels), all checked before any work:
    never an input, no two alike, none existing unless ``overwrite``."""
    from waveforge.audio.io import check_audio_output
    from waveforge.inference.inputs import npy_batch_size

    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(out_dir, "is a file; -o names the output folder")
    plan, owner = [], {}
    resolved_inputs = {p.resolve(): p for p in inputs if p.exists()}
    for path in inputs:
        batch = npy_batch_size(path) if path.suffix.lower() == ".npy" else 1
        names = [out_dir / f"{path.stem}.wav"] if batch == 1 else [out_dir / f"{path.stem}-{i:03d}.wav" for i in range(batch)]
        for out in names:
            key = out.resolve()
            if key in resolved_inputs:
                raise BadInputError(out, f"would overwrite the input {resolved_inputs[key]}; choose another -o folder")
            if key in owner:
                raise BadInputError(out, f"both {owner[key]} and {path} would be written here; vocode them in separate calls or folders")
            owner[key] = path
            check_audio_output(out, overwrite=overwrite)
        plan.append(names)
    return plan


def _cmd_vocode(args) -> int:
    import waveforge
    from waveforge.audio.io import save_audio
    from waveforge.utils.progress import progress

    from waveforge.pretrained import DEFAULT_VOCODER

    args.model, args.inputs = _split_model("vocode", args.inputs, DEFAULT_VOCODER, VOCODE_INPUT_SUFFIXES)
    _check_device(args.device)
    plan = _vocode_outputs(args.inputs, args.out_dir, args.overwrite)
    synth = waveforge.load(args.model)
    synth.model.to(args.device)
    if args.compile:
        synth.compile()
    options = _options(args)
    written = []
    for path, outs in progress(list(zip(args.inputs, plan)), desc="vocode", unit="file"):
        audio = synth.vocode(path, options)
        if audio.shape[0] != len(outs):  # a waveform batch: (B, 1, T) audio given as one file cannot happen; keep the guard
            raise BadInputError(path, f"gave {audio.shape[0]} outputs, expected {len(outs)}")
        for out, item in zip(outs, audio):
            save_audio(out, item, synth.sample_rate, overwrite=args.overwrite)
            written.append(str(out))
    print("\n".join(written))
    return 0


def _cmd_render(args) -> int:
    import waveforge
    from waveforge.audio.io import check_audio_output, save_audio, save_audio_stream

    from waveforge.inference.twostage import ComposedRenderer, NotesToMelSynthesizer
    from waveforge.pretrained import DEFAULT_RENDERER

    args.model, inputs = _split_model("render", args.inputs, DEFAULT_RENDERER, MIDI_SUFFIXES)
    if len(inputs) != 1:
        raise BadInputError(inputs[-1], "render takes one MIDI file (and a model before it)")
    args.midi = inputs[0]
    _check_device(args.device)
    check_audio_output(args.output)
    synth = waveforge.load(args.model)
    synth.model.to(args.device)
    if args.compile:
        synth.compile()
    if isinstance(synth, NotesToMelSynthesizer):
        if args.vocoder is None and not isinstance(synth, ComposedRenderer):
            raise BadInputError(args.model, "a notes-to-mel model makes mel-spectrograms; give a mel vocoder with --vocoder VOCODER")
        audio = synth.render(args.midi, _options(args), vocoder=args.vocoder)
        save_audio(args.output, audio[0], synth.sample_rate)
    else:
        if args.vocoder is not None:
            raise BadInputError(args.model, f"--vocoder goes with a notes-to-mel model; this is a {synth.family} model")
        save_audio_stream(args.output, synth.render_stream(args.midi, _options(args)), synth.sample_rate)  # chunk by chunk
    print(args.output)
    return 0


def _cmd_sample(args) -> int:
    import waveforge
    from waveforge.audio.io import check_audio_output, save_audio

    _check_device(args.device)
    outs = [args.output] if args.num == 1 else [args.output.with_name(f"{args.output.stem}-{i:03d}{args.output.suffix}") for i in range(args.num)]
    for out in outs:
        check_audio_output(out)
    synth = waveforge.load(args.model)
    synth.model.to(args.device)
    audio = synth.sample(args.seconds, batch_size=args.num, options=_options(args))
    for out, a in zip(outs, audio):
        save_audio(out, a, synth.sample_rate)
        print(out)
    return 0


def _load_vqvae(path: Path, device: str):
    import waveforge

    _check_device(device)

    synth = waveforge.load(path)
    if synth.family != "vqvae":
        raise BadInputError(path, f"a {synth.family} model; encode and decode need a vqvae model")
    synth.model.to(device)
    return synth


def _cmd_encode(args) -> int:
    from waveforge.audio.io import load_audio
    from waveforge.inference.families.vqvae import encode_audio, save_codes

    from waveforge.utils.atomic import check_output_path

    check_output_path(args.output)
    synth = _load_vqvae(args.model, args.device)
    audio = load_audio(args.input, synth.sample_rate)
    save_codes(args.output, encode_audio(synth.model, audio), synth.sample_rate)
    print(args.output)
    return 0


def _cmd_decode(args) -> int:
    from waveforge.audio.io import save_audio
    from waveforge.inference.families.vqvae import decode_codes, load_codes
    from waveforge.audio.io import check_audio_output

    check_audio_output(args.output)
    synth = _load_vqvae(args.model, args.device)
    arrays = load_codes(args.codes, synth.model, synth.sample_rate)
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    audio = decode_codes(synth.model, arrays, args.level, _options(args))
    save_audio(args.output, audio[0], synth.sample_rate)
    print(args.output)
    return 0


def _cmd_spectrogram(args) -> int:
    from waveforge.audio.io import audio_info, load_audio
    from waveforge.errors import BadInputError
    from waveforge.plots import spectrogram_png

    from waveforge.utils.atomic import check_output_path

    check_output_path(args.output)
    titles = args.title or [p.name for p in args.inputs]
    if len(titles) != len(args.inputs):
        raise BadInputError(args.output, f"{len(titles)} titles for {len(args.inputs)} files")
    rows = []
    for title, path in zip(titles, args.inputs):
        frames = -1 if args.seconds is None else int(args.seconds * audio_info(path).sample_rate)
        rows.append((title, load_audio(path, args.sample_rate, frames=frames)))
    print(spectrogram_png(args.output, rows, args.sample_rate))
    return 0


def _cmd_eval(args) -> int:
    from waveforge.evaluate import evaluate_model
    from waveforge.utils.atomic import atomic_write_text

    if args.output:
        from waveforge.utils.atomic import check_output_path

        check_output_path(args.output)
    result = evaluate_model(
        args.model, args.data, split=args.split, max_pieces=args.max_pieces, seconds=args.seconds, options=_options(args),
        notes=args.notes, fluidsynth_soundfont=args.fluidsynth_soundfont, griffin_lim_iters=args.griffin_lim_iters,
    )
    text = json.dumps(result, indent=2)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def _cmd_bench(args) -> int:
    from waveforge.bench import run_benchmarks

    only = args.only.split(",") if args.only else None
    run_benchmarks(only=only, quick=args.quick, table=not args.json)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, docker stop, systemd, Slurm), raised so it unwinds like Ctrl-C and
    atomic writes remove their temporaries."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    import os
    import signal
    import threading

    from waveforge import _openblas
    from waveforge.utils.limits import MAX_SECONDS_ENV

    _openblas.choose_core()  # before NumPy / SciPy load OpenBLAS, which picks its kernels then
    argv = list(sys.argv[1:] if argv is None else argv)
    max_seconds_before = os.environ.get(MAX_SECONDS_ENV)
    # fit is left to Lightning's own signal handling (graceful shutdown, SLURM requeue); its
    # checkpoints are atomic either way
    if threading.current_thread() is threading.main_thread() and argv[:1] != ["fit"]:
        previous = signal.signal(signal.SIGTERM, _terminate)
    else:
        previous = None
    try:
        if argv and argv[0] == "fit":
            from waveforge.tasks.cli import run_fit

            return run_fit(argv[1:])
        args = build_parser().parse_args(argv)
        _apply_limits(args)
        if hasattr(args, "threads"):
            from waveforge.utils.threads import apply_threads

            apply_threads(args.threads)
        return args.func(args)
    except BadInputError as e:
        print(f"waveforge: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("waveforge: terminated" if isinstance(e, Terminated) else "waveforge: interrupted", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if max_seconds_before is None:
            os.environ.pop(MAX_SECONDS_ENV, None)
        else:
            os.environ[MAX_SECONDS_ENV] = max_seconds_before


if __name__ == "__main__":
    sys.exit(main())
