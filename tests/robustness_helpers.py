"""Tiny models and inputs shared by the ``test_cli_robustness_*`` files."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from waveforge.audio.mel import MelConfig
from waveforge.inference.modelfile import ModelFile, save_model_file
from waveforge.midi.roll import PianoRollConfig
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig


def tiny_melgan(path, feature=None, sample_rate=22050, **config_overrides):
    """A small random MelGAN vocoder (hop 256) written as a model file."""
    torch.manual_seed(0)
    feature = feature or MelConfig()
    config = MelGANGeneratorConfig(cond_channels=feature.channels, upsample_factors=[4, 4, 4, 4], initial_channels=16, **config_overrides)
    model = MelGANGenerator(config)
    return save_model_file(path, ModelFile("melgan", config.to_dict(), feature, sample_rate, model.state_dict()))


def tiny_renderer(path):
    return tiny_melgan(path, feature=PianoRollConfig())


def write_wav(path, seconds=0.5, sample_rate=22050, value=None):
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) if value is None else np.full(n, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), sample_rate, subtype="FLOAT" if value is not None else "PCM_16")
    return path


def error_lines(capsys):
    """The stderr lines of the last CLI call that carry an error, and the whole stderr."""
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("waveforge: error:")], err


def refused(capsys, argv, *needles) -> str:
    """Run ``waveforge argv``; assert exit status 2 and one error line holding every needle; return that line."""
    from waveforge.cli import main

    assert main([str(a) for a in argv]) == 2
    lines, err = error_lines(capsys)
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]
