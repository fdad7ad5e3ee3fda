"""The WaveGlow slice: training steps of the flow task, export -> waveforge.load round trip, the recipe through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import waveforge
from waveforge.audio.mel import MelConfig
from waveforge.inference.families import SynthesisOptions
from waveforge.inference.modelfile import save_model_file
from waveforge.midi.roll import PianoRollConfig
from waveforge.tasks.flow import FlowVocoderTask

REPO = Path(__file__).resolve().parents[1]
TINY = dict(architecture={"preset": "tiny", "n_group": 8})


# tiny tensors: one intra-op thread avoids barrier stalls on a loaded 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


class _RandomSegments(Dataset):
    def __init__(self, channels: int, n_frames: int = 8, hop: int = 256, n: int = 4):
        g = torch.Generator().manual_seed(0)
        self.items = [{"audio": (0.3 * torch.randn(1, n_frames * hop, generator=g)).clamp(-1, 1),
                       "cond": torch.randn(channels, n_frames, generator=g)} for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _task(feature) -> FlowVocoderTask:
    torch.manual_seed(0)
    return FlowVocoderTask(sample_rate=22050, feature=feature.to_dict(), lr=1e-3, **TINY)


@pytest.mark.parametrize("feature", [MelConfig(), PianoRollConfig()], ids=["mel", "piano_roll"])
def test_two_training_steps_change_weights_and_log_nll(feature, tmp_path):
    task = _task(feature)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    loader = DataLoader(_RandomSegments(feature.channels), batch_size=2)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        default_root_dir=tmp_path)
    trainer.fit(task, loader, loader)
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train/nll"])
    assert torch.isfinite(trainer.callback_metrics["val/bits_per_sample"])
    changed = [k for k, v in task.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("model.couplings.0.end") for k in changed)  # the zero-initialised output learns
    assert any(k.startswith("model.upsampler") for k in changed)  # gradients reach the conditioning path


def test_export_load_round_trip(tmp_path):
    task = _task(MelConfig()).eval()
    with torch.no_grad():  # make the flow non-trivial so the round trip is a real check
        for coupling in task.model.couplings:
            coupling.end.weight.normal_(0, 0.2)
    path = save_model_file(tmp_path / "wg.safetensors", task.model_file())
    synth = waveforge.load(path)
    assert synth.family == "waveglow" and synth.sample_rate == 22050 and synth.feature == MelConfig()
    audio = 0.3 * torch.randn(1, 1, 16 * 256)
    mel = synth.mel(audio)
    with torch.no_grad():
        assert torch.allclose(synth.model(audio, mel).z, task.model(audio, mel).z, atol=1e-5)  # same function, weight norm folded
    out = synth.vocode(mel, SynthesisOptions(seed=3))  # the model's own infer_sigma (0.6)
    again = synth.vocode(mel, SynthesisOptions(seed=3))
    louder = synth.vocode(mel, SynthesisOptions(seed=3, sigma=0.9))
    assert out.shape == (1, 1, 16 * 256) and torch.equal(out, again)
    with torch.no_grad():
        torch.manual_seed(3)
        expected = task.model.infer(mel, sigma=0.6).clamp(-1, 1)
    assert torch.allclose(out, expected, atol=1e-4)
    assert not torch.allclose(louder, out, atol=1e-3)


@pytest.mark.slow
def test_smoke_recipe_fits_exports_and_vocodes(tmp_path, tiny_corpus):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "waveforge", "fit", "--config", str(REPO / "recipes/waveglow/smoke.yaml"),
           "--data.root", str(tiny_corpus), "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = tmp_path / "wg.safetensors"
    subprocess.run([sys.executable, "-m", "waveforge", "export", str(run / "checkpoints/last.ckpt"), "-o", str(model)],
                   env=env, check=True, timeout=300)
    wav = sorted(tiny_corpus.glob("*/*.wav"))[0]
    subprocess.run([sys.executable, "-m", "waveforge", "vocode", str(model), str(wav), "-o", str(tmp_path / "out")],
                   env=env, check=True, timeout=600)
    out = waveforge.audio.load_audio(tmp_path / "out" / (wav.stem + ".wav"))
    assert out.shape[-1] == waveforge.audio.audio_info(wav).frames // 256 * 256


def test_piano_roll_model_renders_midi(tmp_path):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.1, end=0.6))
    midi.instruments.append(piano)
    midi.write(str(tmp_path / "one.mid"))
    path = save_model_file(tmp_path / "wg-midi.safetensors", _task(PianoRollConfig()).model_file())
    synth = waveforge.load(path)
    audio = synth.render(tmp_path / "one.mid", SynthesisOptions(seed=0))
    assert audio.shape[:2] == (1, 1) and audio.shape[-1] % 256 == 0 and audio.shape[-1] >= int(0.6 * 22050)
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1.0
