"""The GPU check (``scripts/gpu-check.sh``) and what a GPU exposes, tested on the CPU.

No test here needs a GPU: the numba loops' device check is monkeypatched to take the GPU branch,
a DataModule is given a stand-in trainer whose root device is CUDA, and mixed precision's
half-precision outputs are made with ``.bfloat16()``. The dry run of the whole script is slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch

from waveforge import kernels
from waveforge.benchmarks import gpu
from waveforge.data.module import WaveformDataModule
from waveforge.losses.logistic import discretized_mix_logistic_loss
from waveforge.losses.stft import log_spectral_distance_loss, multi_resolution_stft_loss
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = "fused generation loop runs on the CPU only"


def _as_if_on_a_gpu(monkeypatch, kernel_module) -> None:
    """The models' device check says no, and the numba loop must not be entered at all."""
    monkeypatch.setattr(kernels, "runs_on", lambda device: False)

    def refuse(*args, **kwargs):
        raise AssertionError("the numba loop was called for a model the loops cannot run")

    monkeypatch.setattr(kernel_module, "generate", refuse)


def test_kernels_run_on_the_cpu_only():
    assert kernels.runs_on("cpu") and kernels.runs_on(torch.device("cpu"))
    assert not kernels.runs_on("cuda") and not kernels.runs_on(torch.device("cuda", 1)) and not kernels.runs_on("meta")


@pytest.mark.parametrize("backend", ["auto", "fast"])
def test_wavenet_off_the_cpu_falls_back_to_the_pytorch_loop_with_one_warning(monkeypatch, backend, one_thread):
    from waveforge.kernels import wavenet as wavenet_kernel

    torch.manual_seed(0)
    model = WaveNet(WaveNetConfig.tiny(cond_channels=8)).eval()
    cond = torch.randn(2, 8, 3)
    expected = model.generate(cond=cond, backend="reference", generator=torch.Generator().manual_seed(5))
    _as_if_on_a_gpu(monkeypatch, wavenet_kernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audio = model.generate(cond=cond, backend=backend, generator=torch.Generator().manual_seed(5))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and FALLBACK in messages[0] and "cpu" in messages[0]
    assert torch.equal(audio, expected)


@pytest.mark.parametrize("backend", ["auto", "fast"])
def test_samplernn_off_the_cpu_falls_back_to_the_pytorch_loop_with_one_warning(monkeypatch, backend, one_thread):
    from waveforge.kernels import samplernn as samplernn_kernel

    torch.manual_seed(0)
    model = SampleRNN(SampleRNNConfig.tiny()).eval()
    expected = model.generate(48, batch_size=2, backend="reference", generator=torch.Generator().manual_seed(5))
    _as_if_on_a_gpu(monkeypatch, samplernn_kernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audio = model.generate(48, batch_size=2, backend=backend, generator=torch.Generator().manual_seed(5))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and FALLBACK in messages[0]
    assert torch.equal(audio, expected)
    with pytest.raises(ValueError, match="float16"):  # float16 weights exist only in the numba loop
        model.generate(16, weights="float16")


def test_generation_refuses_a_condition_on_another_device():
    wavenet = WaveNet(WaveNetConfig.tiny(cond_channels=8)).eval()
    with pytest.raises(ValueError, match="cond is on meta but the model is on cpu"):
        wavenet.generate(cond=torch.empty(1, 8, 2, device="meta"))
    samplernn = SampleRNN(SampleRNNConfig.tiny(cond_channels=8)).eval()
    with pytest.raises(ValueError, match="cond is on meta but the model is on cpu"):
        samplernn.generate(cond=torch.empty(1, 8, 2, device="meta"))


def test_loaders_pin_memory_only_for_a_cuda_trainer(tiny_corpus, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU in the machine is not enough
    dm = WaveformDataModule(str(tiny_corpus), segment_length=2048, batch_size=2, num_workers=0)
    assert not dm.pin_memory  # no trainer attached
    dm.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    assert not dm.pin_memory and not dm.train_dataloader().pin_memory
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)), callbacks=[])
    assert dm.pin_memory and dm.train_dataloader().pin_memory


def test_spectral_losses_take_a_bf16_prediction_in_float32():
    """Under bf16 mixed precision a generator's output is bfloat16, which no FFT library takes."""
    g = torch.Generator().manual_seed(0)
    pred = (0.3 * torch.randn(2, 1, 4096, generator=g)).bfloat16()
    target = 0.3 * torch.randn(2, 1, 4096, generator=g)
    mixed = multi_resolution_stft_loss(pred, target)
    full = multi_resolution_stft_loss(pred.float(), target)
    assert mixed.total.dtype == torch.float32 and torch.equal(mixed.total, full.total)
    lsd = log_spectral_distance_loss(pred, target.bfloat16())
    assert lsd.dtype == torch.float32 and torch.equal(lsd, log_spectral_distance_loss(pred.float(), target.bfloat16().float()))


def test_logistic_mixture_loss_is_float32_for_bf16_parameters():
    g = torch.Generator().manual_seed(0)
    params = torch.randn(2, 30, 64, generator=g).bfloat16()
    x = torch.rand(2, 1, 64, generator=g) * 2 - 1
    loss = discretized_mix_logistic_loss(params, x, 10)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.equal(loss, discretized_mix_logistic_loss(params.float(), x, 10))


def test_loss_summary():
    falling = [5.0, 4.8, 4.0, 3.0, 2.9, 2.8]
    s = gpu.loss_summary(falling, window=2, adversarial=False)
    assert (s["loss_start"], s["loss_end"], s["loss_finite"], s["loss_fell"], s["ok"]) == (4.9, 2.85, True, True, True)
    rising = falling[::-1]
    assert not gpu.loss_summary(rising, 2, adversarial=False)["ok"]
    assert gpu.loss_summary(rising, 2, adversarial=True)["ok"]  # a GAN's loss need not fall
    assert gpu.loss_summary(rising, 2, adversarial=False, require_fall=False)["ok"]  # a dry run's few batches
    with_nan = [5.0, float("nan"), 1.0, 0.5]
    s = gpu.loss_summary(with_nan, 1, adversarial=True, require_fall=False)
    assert not s["loss_finite"] and not s["ok"]
    assert not gpu.loss_summary([], 5, adversarial=False)["ok"]


def test_fit_arguments_train_every_paper_recipe_on_one_gpu_in_bf16(tmp_path):
    assert set(gpu.TRAIN_CASES) == {"wavenet", "samplernn", "vqvae", "waveglow", "melgan", "diffwave"}
    real = gpu.RunSettings.make("cuda", dry_run=False, work=tmp_path)
    dry = gpu.RunSettings.make("cuda", dry_run=True, work=tmp_path)
    assert (real.device, real.batches, dry.device, dry.batches) == ("cuda", 50, "cpu", 3)
    for case in gpu.TRAIN_CASES.values():
        recipe = ROOT / "recipes" / case.family / case.recipe
        assert recipe.is_file()
        argv = gpu.fit_argv(case, real)

        def value(flag, argv=argv):
            return argv[len(argv) - 1 - argv[::-1].index(flag) + 1]  # the last occurrence wins, as in jsonargparse

        assert value("--config") == str(recipe)
        assert (value("--trainer.accelerator"), value("--trainer.precision"), value("--trainer.devices")) == ("gpu", "bf16-mixed", "1")
        assert value("--data.root") == str(tmp_path / "corpus")
        assert not any(a.startswith("--model.") for a in argv)  # the paper sizes, untouched
        dry_argv = gpu.fit_argv(case, dry)
        assert dry_argv[dry_argv.index("--trainer.accelerator") + 1] == "cpu" and dry_argv[-len(case.tiny) :] == list(case.tiny)
    for case in gpu.INFER_CASES.values():
        assert (ROOT / "recipes" / case.family / case.recipe).is_file()


def test_without_fluidsynth_the_corpus_is_rendered_as_sines(tmp_path, monkeypatch):
    """A GPU machine's image may lack the FluidSynth library, and nothing can be installed there."""
    from waveforge.data.maestro import MaestroIndex
    from waveforge.errors import BadInputError
    from waveforge.midi import render

    def no_fluidsynth():
        raise BadInputError(None, "MIDI rendering needs pyfluidsynth and libfluidsynth (not here)")

    monkeypatch.setattr(render, "_fluidsynth", no_fluidsynth)
    settings = gpu.RunSettings.make("cpu", dry_run=True, work=tmp_path)
    assert gpu.ensure_corpus(settings) == "sines (no FluidSynth)"
    index = MaestroIndex(settings.corpus)
    assert {r.split for r in index} == {"train", "validation", "test"}
    for record in index:
        info = sf.info(str(record.audio_path))
        assert info.samplerate == gpu.CORPUS_RATE and abs(info.frames / info.samplerate - record.duration) < 1e-3
        audio, _ = sf.read(str(record.audio_path))
        assert 0.4 < np.abs(audio).max() <= 0.51  # normalised to half scale, not silent
        assert record.midi_path.is_file()
    assert sum(r.duration for r in index) >= 30.0
    assert gpu.ensure_corpus(settings) == "existing"


def _figures(stdout: str) -> dict[str, dict]:
    return {f["name"]: f for f in map(json.loads, (ln for ln in stdout.splitlines() if ln.startswith("{")))}


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_case(tmp_path):
    """``scripts/gpu-check.sh --dry-run``: every training and inference case, on the CPU, tiny."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--dry-run", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    figures = _figures(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert figures["gpu/summary"]["failed"] == 0 and figures["gpu/summary"]["cases"] == len(gpu.CASES) - len(gpu.DRY_RUN_SKIPS)
    for family in gpu.TRAIN_CASES:
        f = figures[f"gpu/train/{family}"]
        assert f["precision"] == "bf16-mixed" and f["loss_finite"] and f["synthesize_ok"] and f["steps_per_s"] > 0
        assert f["batches"] == 3 and f["audio_seconds_per_s"] > 0
    inference = {name for name in figures if name.startswith("gpu/infer/")}
    assert inference == {
        "gpu/infer/melgan/vocode-1s", "gpu/infer/waveglow/vocode-1s", "gpu/infer/diffwave/vocode-1s-6steps",
        "gpu/infer/diffwave/vocode-1s-50steps", "gpu/infer/melgan-midi/render-1s", "gpu/infer/waveglow-midi/render-1s",
        "gpu/infer/diffwave-midi/render-1s", "gpu/infer/wavenet/generate-b1", "gpu/infer/wavenet/generate-b2",
        "gpu/infer/samplernn/generate-b1", "gpu/infer/samplernn/generate-b2",
    }
    assert all(figures[name]["finite"] and figures[name]["seconds"] > 0 for name in inference)


@pytest.mark.slow
def test_gpu_check_isolates_cases_and_reports_a_failure(tmp_path):
    """On a GPU each case runs in its own process; a case that fails is reported and the run fails."""
    base = [sys.executable, "-m", "waveforge.benchmarks.gpu", "--dry-run", "--isolate", "--work", str(tmp_path)]
    proc = subprocess.run([*base, "--only", "train:diffwave"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _figures(proc.stdout)["gpu/train/diffwave"]["ok"]
    (tmp_path / "corpus" / "maestro-v3.0.0.csv").write_text("not,a,maestro,table\n")  # a broken corpus
    proc = subprocess.run([*base, "--only", "train:diffwave"], capture_output=True, text=True, timeout=600)
    figures = _figures(proc.stdout)
    assert proc.returncode == 1 and "exit status" in figures["gpu/train:diffwave"]["error"]
    assert figures["gpu/summary"]["failed"] == 1
