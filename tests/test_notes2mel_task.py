"""Notes-to-mel training on the tiny corpus: the DataModule's roll and target mel, a couple of Lightning
steps of each task (with the TensorBoard mel pictures), checkpoint -> composed file, and ``eval``."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

import waveforge
import waveforge.audio
from waveforge.audio.mel import MelSpectrogram
from waveforge.data.maestro import MaestroIndex
from waveforge.data.module import WaveformDataModule
from waveforge.evaluate import evaluate_model
from waveforge.features import feature_to_dict
from waveforge.inference.modelfile import ModelFile, save_model_file
from waveforge.inference.twostage import ComposedRenderer, NotesToMelSynthesizer, compose_checkpoint
from waveforge.midi.roll import load_midi, piano_roll
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig
from waveforge.tasks.callbacks import AudioLogger
from waveforge.tasks.notes2mel import Notes2MelDiffusionTask, Notes2MelRegressionTask

TINY = dict(architecture={"preset": "tiny", "attention_window": 4, "noise_channels": 128})


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _data(root) -> WaveformDataModule:
    return WaveformDataModule(str(root), conditioning="piano_roll", target_mel=True, segment_length=256 * 32, batch_size=2,
                              num_workers=0, segments_per_epoch=8, max_val_segments=2)


def test_the_datamodule_gives_the_roll_and_the_target_mel_of_the_same_crop(tiny_corpus):
    data = _data(tiny_corpus)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["cond"].shape == (2, 264, 32) and batch["mel"].shape == (2, 80, 32)
    torch.testing.assert_close(batch["mel"], MelSpectrogram(data.target_feature)(batch["audio"]), rtol=0, atol=1e-5)
    assert float(batch["cond"][:, 88:176].sum()) > 0  # notes sound in these crops


def _fit(task, data, tmp_path, steps: int = 2):
    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=1, val_check_interval=steps, check_val_every_n_epoch=None,
                        callbacks=[AudioLogger(n_examples=1, max_seconds=0.5)])
    trainer.fit(task, datamodule=data)
    return trainer


def _image_tags(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return set(events.Tags()["images"])


@pytest.mark.parametrize("task_cls", [Notes2MelRegressionTask, Notes2MelDiffusionTask])
def test_two_training_steps_of_each_task(task_cls, tiny_corpus, tmp_path):
    torch.manual_seed(0)
    data = _data(tiny_corpus)
    extra = dict(sample_steps=2, cond_drop_prob=0.9) if task_cls is Notes2MelDiffusionTask else dict(loss_weights={"l1": 1.0, "l2": 0.5})
    task = task_cls(sample_rate=22050, feature=feature_to_dict(data.feature), **TINY, **extra)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    trainer = _fit(task, data, tmp_path, steps=3)  # the output conv starts at zero: the trunk learns from step 2
    assert trainer.global_step == 3
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["val/loss"]) and torch.isfinite(metrics["val/log_mel_l1"])
    changed = {k for k, v in task.model.state_dict().items() if not torch.equal(v, before[k])}
    assert "output.weight" in changed
    if task_cls is Notes2MelDiffusionTask:
        assert "null_condition" in changed  # most examples trained on the null condition
    else:
        assert {"train/l1", "train/l2", "train/total"} <= set(metrics)
    assert "mel/0" in _image_tags(tmp_path)  # reference and generated log-mel in TensorBoard


@pytest.mark.parametrize("task_cls", [Notes2MelRegressionTask, Notes2MelDiffusionTask])
def test_the_note_prior_trains_with_its_own_learning_rate(task_cls, tiny_corpus, tmp_path):
    torch.manual_seed(0)
    data = _data(tiny_corpus)
    extra = dict(sample_steps=2) if task_cls is Notes2MelDiffusionTask else {}
    architecture = {**TINY["architecture"], "note_frames": 16, "release_frames": 4}
    task = task_cls(sample_rate=22050, feature=feature_to_dict(data.feature), architecture=architecture, prior_lr=0.05, lr=1e-3, **extra)
    groups = task.configure_optimizers()["optimizer"].param_groups
    assert [g["lr"] for g in groups] == [1e-3, 0.05]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in task.model.prior.parameters()}
    assert not {id(p) for p in groups[0]["params"]} & {id(p) for p in groups[1]["params"]}
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    _fit(task, data, tmp_path, steps=2)
    changed = {k for k, v in task.model.state_dict().items() if not torch.equal(v, before[k])}
    assert {"prior.template", "prior.noise_floor"} <= changed
    assert task.model_file().model_config["notes2mel"]["note_frames"] == 16  # the exported file rebuilds the prior


def test_a_task_needs_the_piano_roll_and_the_vocoders_mel(tiny_corpus):
    with pytest.raises(ValueError, match="piano_roll"):
        Notes2MelRegressionTask(feature={"kind": "mel", "sample_rate": 22050})
    data = _data(tiny_corpus)
    task = Notes2MelRegressionTask(feature=feature_to_dict(data.feature), vocoder_mel={"n_mels": 64}, **TINY)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    with pytest.raises(ValueError, match="differs from the task's mel settings"):
        trainer.fit(task, datamodule=data)


def _vocoder(tmp_path, data) -> str:
    torch.manual_seed(2)
    model = MelGANGenerator(MelGANGeneratorConfig.tiny(cond_channels=80, upsample_factors=[16, 16]))
    return save_model_file(tmp_path / "vocoder.safetensors", ModelFile("melgan", model.config.to_dict(), data.target_feature, 22050, model.state_dict()))


def test_checkpoint_to_one_file_and_eval_of_both_forms(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    data = _data(tiny_corpus)
    task = Notes2MelRegressionTask(sample_rate=22050, feature=feature_to_dict(data.feature), **TINY)
    trainer = _fit(task, data, tmp_path, steps=1)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    vocoder = _vocoder(tmp_path, data)
    composed_path = compose_checkpoint(ckpt, vocoder, tmp_path / "piano.safetensors")
    notes_path = save_model_file(tmp_path / "notes.safetensors", task.model_file())
    composed, notes = waveforge.load(composed_path), waveforge.load(notes_path)
    assert isinstance(composed, ComposedRenderer) and type(notes) is NotesToMelSynthesizer
    record = MaestroIndex(tiny_corpus).split("test")[0]  # the first second of a test piece's roll
    roll = piano_roll(load_midi(record.midi_path), data.feature, 22050 // data.hop_length).unsqueeze(0)
    torch.testing.assert_close(composed.synthesize(roll), notes.synthesize(roll, vocoder=vocoder), rtol=0, atol=0)

    alone = evaluate_model(notes_path, tiny_corpus, max_pieces=1, seconds=1.0, griffin_lim_iters=4)
    assert alone["objective"] == "regression" and alone["pieces"] == 1
    assert set(alone["mel"]) == {"log_mel_l1", "log_mel_l1_fluidsynth", "band_variance_model", "band_variance_reference",
                                 "band_variance_fluidsynth"}
    assert alone["mel"]["band_variance_reference"] > alone["mel"]["band_variance_model"] >= 0  # one step: nearly flat
    # the corpus is FluidSynth's render with the default soundfont: that baseline is the reference itself, nearly
    assert alone["mel"]["log_mel_l1_fluidsynth"] < 0.5 * alone["mel"]["log_mel_l1"]
    assert set(alone["metrics"]) == {"model_mel_griffin_lim", "reference_mel_griffin_lim"}
    json.dumps(alone)
    # composed: to eval it is a piano-roll renderer, scored beside FluidSynth's render of the same MIDI
    both = evaluate_model(composed_path, tiny_corpus, max_pieces=1, seconds=1.0)
    assert both["feature"] == "piano_roll" and set(both["metrics"]) == {"model", "fluidsynth"}
    assert both["metrics"]["model"]["mel_l1"] > 0


@pytest.mark.slow
def test_smoke_recipe_fits_composes_and_renders_from_the_cli(tmp_path, tiny_corpus):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    waveforge_cmd = [sys.executable, "-m", "waveforge"]
    proc = subprocess.run([*waveforge_cmd, "fit", "--config", str(repo / "recipes/notes2mel/smoke.yaml"), "--data.root", str(tiny_corpus),
                           "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    vocoder = _vocoder(tmp_path, _data(tiny_corpus))
    piano = tmp_path / "piano.safetensors"
    subprocess.run([*waveforge_cmd, "export", str(run / "checkpoints/last.ckpt"), "--vocoder", str(vocoder), "-o", str(piano)],
                   env=env, check=True, timeout=300)
    midi = sorted(tiny_corpus.glob("*/*.midi"))[0]
    for model, extra in ((piano, []), (run / "model.safetensors", ["--vocoder", str(vocoder)])):
        if extra:
            subprocess.run([*waveforge_cmd, "export", str(run / "checkpoints/last.ckpt"), "-o", str(model)], env=env, check=True, timeout=300)
        out = tmp_path / f"{model.stem}.wav"
        subprocess.run([*waveforge_cmd, "render", str(model), str(midi), "-o", str(out), *extra], env=env, check=True, timeout=300)
        audio = waveforge.audio.load_audio(out)
        assert audio.shape[-1] % 256 == 0 and audio.shape[-1] > 22050


@pytest.mark.slow
def test_eval_notes_on_the_mel_stage_alone(tiny_corpus, tmp_path):
    pytest.importorskip("transkun")
    data = _data(tiny_corpus)
    task = Notes2MelRegressionTask(sample_rate=22050, feature=feature_to_dict(data.feature), **TINY)
    notes_path = save_model_file(tmp_path / "notes.safetensors", task.model_file())
    result = evaluate_model(notes_path, tiny_corpus, max_pieces=1, seconds=4.0, griffin_lim_iters=32, notes=True)
    assert set(result["notes"]) == {"model_mel_griffin_lim", "reference_mel_griffin_lim", "reference"}
    # an untrained model's mel is silence: no notes. Griffin-Lim costs the transcriber most of the
    # reference's notes (its phase smears onsets), so the reference mel through it is a low ceiling.
    scores = {name: row["onset_f1"] for name, row in result["notes"].items()}
    assert scores["model_mel_griffin_lim"] == 0.0 < scores["reference_mel_griffin_lim"] < scores["reference"], result["notes"]
    assert scores["reference"] > 0.5, result["notes"]
