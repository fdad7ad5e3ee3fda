"""The MelGAN slice end to end: fit (LightningCLI) -> resume -> export -> load -> vocode, and the CLI's bad-input paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import waveforge
from waveforge.cli import main as cli_main
from waveforge.errors import BadInputError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "recipes" / "melgan" / "smoke.yaml"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _fit(tmp_path, corpus, *extra):
    cmd = [sys.executable, "-m", "waveforge", "fit", "--config", str(SMOKE), "--data.root", str(corpus), "--trainer.default_root_dir", str(tmp_path / "run"),
           "--trainer.enable_progress_bar", "false", *extra]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _fit_in_process(tmp_path, corpus, *extra):
    """``waveforge fit`` through ``cli.main`` in this process (the fast suite's path); -> the run folder."""
    run = tmp_path / "run"
    args = ["fit", "--config", str(SMOKE), "--data.root", str(corpus), "--trainer.default_root_dir", str(run),
            "--trainer.enable_progress_bar", "false", *extra]
    assert cli_main(args) == 0
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_corpus):
    """Two ``waveforge fit`` processes on one run folder (the second resumes), then export (slow tests only)."""
    tmp = tmp_path_factory.mktemp("melgan")
    first = _fit(tmp, tiny_corpus, "--trainer.max_steps", "4")
    second = _fit(tmp, tiny_corpus, "--trainer.max_steps", "6")
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    model = tmp / "model.safetensors"
    assert cli_main(["export", str(ckpt), "-o", str(model)]) == 0
    return tmp, ckpt, model, first, second


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_corpus) -> Path:
    """The smoke recipe fitted for 4 steps in this process and exported: a MelGAN model file."""
    tmp = tmp_path_factory.mktemp("melgan-fast")
    run = _fit_in_process(tmp, tiny_corpus, "--trainer.max_steps", "4")
    model = tmp / "model.safetensors"
    assert cli_main(["export", str(run / "checkpoints" / "last.ckpt"), "-o", str(model)]) == 0
    return model


@pytest.mark.slow
def test_fit_resumes_from_last_checkpoint(trained):
    tmp, ckpt, _, first, second = trained
    assert "resuming from" not in first.stdout
    assert "resuming from" in second.stdout
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["global_step"] == 6
    # warm-up (2 batches) counts 1 optimiser step per batch, then 2 per batch: 2 + 2 * 2 = 6 -> 4 batches
    assert int(state["state_dict"]["generator_steps"]) == 4
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp / "run").iterdir())


@pytest.mark.slow
def test_tensorboard_has_audio_and_spectrogram_images(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp = trained[0]
    acc = EventAccumulator(str(tmp / "run"), size_guidance={"audio": 0, "images": 0}).Reload()
    assert any(t.startswith("generated/") for t in acc.Tags()["audio"])
    assert any(t.startswith("reference/") for t in acc.Tags()["audio"])
    assert any(t.startswith("mel/") for t in acc.Tags()["images"])
    scalars = acc.Tags()["scalars"]
    for name in ("train/mel", "train/mr_stft", "train/dc", "train/adversarial", "train/feature_matching", "train/discriminator", "val/mel_l1"):
        assert name in scalars, scalars


def test_exported_model_loads_and_vocodes(exported, tiny_corpus, tmp_path):
    model_path = exported
    synth = waveforge.load(model_path)
    assert synth.family == "melgan" and synth.sample_rate == 22050
    wav = sorted(tiny_corpus.glob("*/*.wav"))[0]
    out = tmp_path / "out"
    assert cli_main(["vocode", str(model_path), str(wav), "-o", str(out)]) == 0
    audio = waveforge.audio.load_audio(out / (wav.stem + ".wav"))
    n_in = waveforge.audio.audio_info(wav).frames
    assert audio.shape[-1] == n_in // 256 * 256
    # the .npy mel path gives the same audio as analysing the wav
    mel = synth.mel(waveforge.audio.load_audio(wav, 22050))
    np.save(tmp_path / "m.npy", mel[0].numpy())
    assert cli_main(["vocode", str(model_path), str(tmp_path / "m.npy"), "-o", str(tmp_path / "out2")]) == 0
    again = waveforge.audio.load_audio(tmp_path / "out2" / "m.wav")
    assert torch.allclose(audio, again, atol=1e-4)


def _whole_and_chunked(synth, n_frames: int, chunk_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mel = torch.randn(1, 80, n_frames) - 4
    synth.chunk_frames = 10**6
    whole = synth.synthesize(mel)
    synth.chunk_frames = chunk_frames
    chunked = synth.synthesize(mel)
    assert whole.shape == chunked.shape == (1, 1, n_frames * 256)
    return whole, chunked


def test_chunked_vocoding_equals_whole_input(exported):
    whole, chunked = _whole_and_chunked(waveforge.load(exported), 700, 128)
    # stated tolerance: float32 rounding only (context covers the generator's receptive field)
    assert (whole - chunked).abs().max() < 1e-5


def test_sines_head_trains_exports_and_vocodes(tiny_corpus, tmp_path):
    """The cpu recipe's phase-integrating sines head through the same path: fit, export, load, vocode in chunks."""
    _fit_in_process(tmp_path, tiny_corpus, "--trainer.max_steps", "4", "--model.init_args.architecture",
         "{preset: paper, initial_channels: 32, output: sines, upsample_factors: [1], upsampling: nearest}", "--model.init_args.lr_generator", "1e-4")
    model = tmp_path / "model.safetensors"
    assert cli_main(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "-o", str(model)]) == 0
    synth = waveforge.load(model)
    assert synth.model_file.model_config["output"] == "sines"
    whole, chunked = _whole_and_chunked(synth, 300, 100)
    assert torch.isfinite(whole).all() and whole.abs().max() > 0
    assert (whole - chunked).abs().max() < 1e-5
    wav = sorted(tiny_corpus.glob("*/*.wav"))[0]
    assert cli_main(["vocode", str(model), str(wav), "-o", str(tmp_path / "out")]) == 0
    audio = waveforge.audio.load_audio(tmp_path / "out" / (wav.stem + ".wav"))
    assert audio.shape[-1] == waveforge.audio.audio_info(wav).frames // 256 * 256


def test_init_from_starts_a_fine_tune_from_a_trained_generator(tiny_corpus, tmp_path):
    """``init_from`` reads a checkpoint or a model file into a generator that adds mel projection
    (no weights of its own), and refuses a generator of another width in one line."""
    from waveforge.tasks.export import load_task
    from waveforge.tasks.gan import GANVocoderTask

    arch = {"preset": "paper", "initial_channels": 32, "output": "sines", "upsample_factors": [1], "upsampling": "nearest"}
    _fit_in_process(tmp_path, tiny_corpus, "--trainer.max_steps", "2", "--model.init_args.architecture", json.dumps(arch))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    model = tmp_path / "model.safetensors"
    assert cli_main(["export", str(ckpt), "-o", str(model)]) == 0
    source = load_task(ckpt).eval()
    settings = {k: v for k, v in source.hparams.items() if k not in ("architecture", "init_from")}
    for path in (ckpt, model):
        task = GANVocoderTask(**settings, architecture={**arch, "mel_projection": 2}, init_from=str(path)).eval()
        assert task.generator.config.mel["n_mels"] == 80  # filled in from the data's mel
        task.setup("fit")
        for name, weight in source.generator.state_dict().items():
            torch.testing.assert_close(task.generator.state_dict()[name], weight, rtol=0, atol=0)
    wider = GANVocoderTask(**settings, architecture={**arch, "initial_channels": 64}, init_from=str(model))
    with pytest.raises(ValueError, match="another architecture"):
        wider.setup("fit")
    roll = {**settings, "feature": {"kind": "piano_roll", "hop_length": 256}}
    with pytest.raises(ValueError, match="mel_projection needs mel conditioning"):
        GANVocoderTask(**roll, architecture={**arch, "mel_projection": 2})


def _run_cli(args, capsys):
    code = cli_main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_bad_inputs_give_one_line_and_status_2(exported, tiny_corpus, tmp_path, capsys):
    model = exported
    out = tmp_path / "out"
    np.save(tmp_path / "wrong.npy", np.zeros((64, 20), np.float32))
    code, err = _run_cli(["vocode", model, tmp_path / "wrong.npy", "-o", out], capsys)
    assert code == 2 and len(err) == 1 and "wrong.npy" in err[0] and "64 bands" in err[0] and "80" in err[0]
    nan = np.zeros((80, 20), np.float32)
    nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    code, err = _run_cli(["vocode", model, tmp_path / "nan.npy", "-o", out], capsys)
    assert code == 2 and len(err) == 1 and "nan.npy" in err[0] and "NaN" in err[0]
    (tmp_path / "text.wav").write_text("not audio")
    code, err = _run_cli(["vocode", model, tmp_path / "text.wav", "-o", out], capsys)
    assert code == 2 and len(err) == 1 and "text.wav" in err[0]
    midi = sorted(tiny_corpus.glob("*/*.midi"))[0]
    code, err = _run_cli(["render", model, midi, "-o", tmp_path / "r.wav"], capsys)
    assert code == 2 and len(err) == 1 and "cannot render MIDI" in err[0]
    code, err = _run_cli(["export", tiny_corpus / "maestro-v3.0.0.csv", "-o", tmp_path / "x.safetensors"], capsys)
    assert code == 2 and len(err) == 1 and "not a Lightning checkpoint" in err[0]
    # nothing half-written anywhere
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "r.wav").exists() and not (tmp_path / "x.safetensors").exists()


def test_eval_reports_model_and_griffin_lim(exported, tiny_corpus, capsys):
    code = cli_main(["eval", str(exported), "--data", str(tiny_corpus), "--split", "test", "--seconds", "2"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["metrics"]) == {"model", "griffin_lim"}
    for row in result["metrics"].values():
        assert set(row) >= {"mr_stft", "lsd_db", "mel_l1"} and all(np.isfinite(v) for v in row.values())


def test_compile_without_a_compiler_says_why(exported, tmp_path, monkeypatch):
    synth = waveforge.load(exported)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(BadInputError, match="C\\+\\+ compiler"):
        synth.compile()


@pytest.mark.slow
def test_compiled_vocoding_equals_eager(exported, tmp_path):
    """``--compile`` (torch.compile, ~20% faster for the paper generator) gives the eager outputs."""
    import shutil

    if not shutil.which("g++") and not shutil.which("c++"):
        pytest.skip("no C++ compiler for torch.compile")
    synth = waveforge.load(exported)
    mel = torch.randn(1, 80, 40) - 4
    eager = synth.synthesize(mel)
    compiled = synth.compile().synthesize(mel)
    assert (compiled - eager).abs().max() < 1e-5
    assert type(synth.model).__name__ == "OptimizedModule"
