"""The diffusion slice: Lightning training steps, export -> ``waveforge.load`` round trip, synthesis options."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import waveforge
from waveforge.audio.mel import MelConfig
from waveforge.diffusion import SamplingConfig, generate
from waveforge.errors import BadInputError
from waveforge.inference.families import SynthesisOptions
from waveforge.inference.modelfile import save_model_file
from waveforge.tasks.diffusion import DiffusionTask

MEL = MelConfig(sample_rate=8000, n_fft=256, hop_length=64, win_length=256, n_mels=16, f_max=4000.0)
TINY = dict(architecture={"preset": "tiny"}, sample_steps=3)


def _batches(n: int, conditional: bool):
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        item = {"audio": torch.randn(1, 512, generator=g) * 0.3}
        if conditional:
            item["cond"] = torch.randn(16, 8, generator=g)
        items.append(item)
    return DataLoader(items, batch_size=2)


@pytest.mark.parametrize("conditional", [True, False])
def test_two_training_steps_run_and_change_the_weights(conditional):
    torch.manual_seed(0)
    task = DiffusionTask(sample_rate=8000, feature=MEL.to_dict() if conditional else None, cond_drop_prob=0.5, **TINY)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=1, val_check_interval=2, check_val_every_n_epoch=None)
    trainer.fit(task, train_dataloaders=_batches(4, conditional), val_dataloaders=_batches(2, conditional))
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"]) and torch.isfinite(trainer.callback_metrics["val/loss"])
    changed = [k for k, v in task.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "final_proj.weight" in changed and "dilated_weight" in changed
    assert ("null_cond" in changed) == conditional


def test_ema_weights_follow_the_decay_and_are_what_is_exported():
    torch.manual_seed(3)
    decay = 0.5
    task = DiffusionTask(sample_rate=8000, feature=MEL.to_dict(), ema_decay=decay, **TINY)
    initial = task.model.final_proj.weight.detach().clone()
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    snapshots = []

    class Snap(L.Callback):
        def on_train_batch_end(self, *args):
            snapshots.append(task.model.final_proj.weight.detach().clone())

    trainer.callbacks.append(Snap())
    trainer.fit(task, train_dataloaders=_batches(4, True))
    # AveragedModel: the first update copies, later ones mix: ema = decay * ema + (1 - decay) * w
    w1, w2 = snapshots
    expected = decay * w1 + (1 - decay) * w2
    torch.testing.assert_close(task.ema_model.module.final_proj.weight, expected)
    assert not torch.equal(expected, w2) and not torch.equal(initial, w2)
    exported = task.model_file().state_dict["final_proj.weight"]
    torch.testing.assert_close(exported, expected)


def test_export_and_load_round_trip_reproduces_the_task_samples(tmp_path):
    torch.manual_seed(1)
    task = DiffusionTask(sample_rate=8000, feature=MEL.to_dict(), prediction="eps", **TINY).eval()
    torch.nn.init.normal_(task.ema_model.module.final_proj.weight, std=0.3)  # an untrained DiffWave outputs zeros
    path = save_model_file(tmp_path / "dw.safetensors", task.model_file())
    synth = waveforge.load(path)
    assert synth.family == "diffwave" and synth.sample_rate == 8000 and synth.hop_length == 64
    mel = torch.randn(1, 16, 6)
    for steps, sampler, guidance in [(3, None, 1.0), (2, "ddim", 2.5)]:
        options = SynthesisOptions(steps=steps, sampler=sampler, guidance=guidance, seed=7)
        audio = synth.vocode(mel, options)
        torch.manual_seed(7)
        config = SamplingConfig(sampler=sampler or task.sampling.sampler, steps=steps, schedule=task.sampling.schedule, guidance=guidance)
        expected = generate(task.ema_denoiser, mel, 6 * 64, config)
        assert audio.shape == (1, 1, 384)
        torch.testing.assert_close(audio, expected, rtol=0, atol=0)
    with pytest.raises(BadInputError, match="unknown sampler"):
        synth.vocode(mel, SynthesisOptions(sampler="plms"))


def test_unconditional_model_samples_after_export(tmp_path):
    torch.manual_seed(2)
    task = DiffusionTask(sample_rate=8000, feature=None, **TINY).eval()
    synth = waveforge.load(save_model_file(tmp_path / "u.safetensors", task.model_file()))
    audio = synth.sample(0.05, batch_size=2, options=SynthesisOptions(steps=2, seed=0))
    assert audio.shape == (2, 1, 400) and torch.isfinite(audio).all() and audio.abs().max() <= 1
