"""Checkpoints written before the tasks took one ``architecture`` mapping still export, to the same model.

Each case builds a task with today's arguments, then writes a Lightning checkpoint of its weights
whose hyper-parameters use the old names (flat fields, or ``preset`` + ``overrides``), as
``waveforge fit`` wrote them; ``waveforge export`` must rebuild the same config and weights.
"""

import lightning
import pytest
import torch

from waveforge.audio.mel import MelConfig
from waveforge.cli import main as cli_main
from waveforge.inference.modelfile import read_model_file
from waveforge.midi.roll import PianoRollConfig
from waveforge.tasks.base import TASK_KEY
from waveforge.tasks.legacy import upgrade_hyperparameters

MEL = MelConfig(sample_rate=8000, n_fft=256, hop_length=64, win_length=256, n_mels=16, f_max=4000.0).to_dict()
ROLL = {"kind": "piano_roll", **PianoRollConfig(sample_rate=22050, hop_length=256).to_dict()}
PRIOR = {"context": 16, "width": 16, "layers": 1, "heads": 2}

#: (task class, shared arguments, today's model arguments, the same model in the old arguments)
CASES = {
    "gan": (
        "waveforge.tasks.gan.GANVocoderTask", dict(sample_rate=8000, feature=MEL, discriminator_size="tiny"),
        dict(architecture={"preset": "paper", "initial_channels": 32, "residual_dilations": [1, 3], "upsampling": "nearest"}),
        dict(initial_channels=32, upsample_factors=None, residual_dilations=[1, 3], upsampling="nearest", output="waveform", n_fft=1024),
    ),
    "wavenet": (
        "waveforge.tasks.autoregressive.WaveNetTask", dict(sample_rate=8000, feature=MEL),
        dict(architecture={"preset": "tiny", "output": "logistic", "n_mixtures": 3}),
        # the old task overwrote cond_channels with the data's, whatever overrides said
        dict(preset="tiny", overrides={"output": "logistic", "n_mixtures": 3, "cond_channels": 99}),
    ),
    "samplernn": (
        "waveforge.tasks.autoregressive.SampleRNNTask", dict(sample_rate=8000, feature=None, tbptt_length=64),
        dict(architecture={"preset": "tiny", "mlp_hidden": 16}),
        dict(preset="tiny", overrides={"mlp_hidden": 16}),
    ),
    "waveglow": (
        "waveforge.tasks.flow.FlowVocoderTask", dict(sample_rate=8000, feature=MEL, infer_sigma=0.5),
        dict(architecture={"preset": "tiny", "n_group": 8}),
        dict(upsampled_cond_channels=4, n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=8, kernel_size=3,
             lu_decomposed=False, sigma=1.0),
    ),
    "diffwave": (
        "waveforge.tasks.diffusion.DiffusionTask", dict(sample_rate=8000, feature=MEL),
        dict(architecture={"preset": "paper", "residual_channels": 8, "n_layers": 4, "dilation_cycle": 2}),
        dict(residual_channels=8, n_layers=4, dilation_cycle=2),
    ),
    "vqvae": (
        "waveforge.tasks.vqvae.VQVAETask", dict(sample_rate=8000, feature=None),
        dict(architecture={"levels": [dict(hop_length=h, codebook_size=16, code_dim=4, width=8, depth=2, restart_threshold=t)
                                      for h, t in ((8, 1.0), (32, 0.1))]},
             top_prior={"preset": "paper", **PRIOR, "mlp_ratio": 4}, upsampler={"preset": "small", **PRIOR, "dropout": 0.0}),
        dict(hops=[8, 32], stride=2, codebook_size=16, code_dim=4, width=8, depth=2, dilation_growth=3, beta=0.02, ema_decay=0.99,
             ema_epsilon=1e-5, restart_threshold=[1.0, 0.1], decoder="feedforward", wavenet=None, condition_on_above=False,
             top_prior=PRIOR, upsampler=PRIOR),
    ),
    "notes2mel": (
        "waveforge.tasks.notes2mel.Notes2MelDiffusionTask", dict(sample_rate=22050, feature=ROLL),
        dict(architecture={"preset": "small", "channels": 16, "n_layers": 4, "dilation_cycle": 2, "attention_layers": 1,
                           "attention_heads": 2, "mel_scale": 2.0}),
        dict(channels=16, n_layers=4, kernel_size=3, dilation_cycle=2, attention_layers=1, attention_heads=2, attention_window=32,
             mel_offset=-5.0, mel_scale=2.0),
    ),
}


def _task_class(class_path: str):
    import importlib

    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_old_style_checkpoint_exports_the_same_model(case, tmp_path):
    class_path, shared, current, old = CASES[case]
    torch.manual_seed(0)
    task = _task_class(class_path)(**shared, **current)
    expected = task.model_file()
    hparams = {k: v for k, v in task.hparams.items() if k not in current}
    hparams.update(old, _class_path=class_path, _instantiator="lightning.pytorch.cli.instantiate_module")
    checkpoint = {"state_dict": task.state_dict(), "hyper_parameters": hparams, TASK_KEY: class_path,
                  "pytorch-lightning_version": lightning.__version__, "global_step": 0, "epoch": 0}
    torch.save(checkpoint, tmp_path / "old.ckpt")

    assert cli_main(["export", str(tmp_path / "old.ckpt"), "-o", str(tmp_path / "model.safetensors")]) == 0
    exported = read_model_file(tmp_path / "model.safetensors")
    assert exported.model_config == expected.model_config
    assert exported.state_dict.keys() == expected.state_dict.keys()
    for key, value in expected.state_dict.items():
        assert torch.equal(exported.state_dict[key], value), key


def test_current_hyperparameters_are_left_alone():
    assert upgrade_hyperparameters("GANVocoderTask", {"architecture": {"preset": "small"}, "lr_generator": 1e-4}) == {}
    assert upgrade_hyperparameters("WaveNetTask", {"lr": 1e-3}) == {}
    assert upgrade_hyperparameters("WaveNetTask", {"preset": "paper", "overrides": None}) == {"architecture": {"preset": "paper"}}
