"""Every model config follows one convention: presets paper / small / tiny with keyword overrides,
and a dictionary form that round-trips (what a model file stores)."""

import pytest

from waveforge.models.config import PRESET_NAMES, ModelConfig
from waveforge.models.diffwave import DiffWaveConfig
from waveforge.models.melgan import MelGANGeneratorConfig
from waveforge.models.notes2mel import Notes2MelConfig
from waveforge.models.prior import PriorConfig
from waveforge.models.samplernn import SampleRNNConfig
from waveforge.models.vqvae import VQVAEConfig
from waveforge.models.waveglow import WaveGlowConfig
from waveforge.models.wavenet import WaveNetConfig

CONFIGS = [DiffWaveConfig, MelGANGeneratorConfig, Notes2MelConfig, PriorConfig, SampleRNNConfig, VQVAEConfig, WaveGlowConfig, WaveNetConfig]


@pytest.mark.parametrize("config_cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_has_the_same_presets_and_round_trips(config_cls):
    assert issubclass(config_cls, ModelConfig) and set(PRESET_NAMES) <= set(config_cls.PRESETS)
    built = {name: getattr(config_cls, name)() for name in PRESET_NAMES}
    for name, config in built.items():
        assert config == config_cls.preset(name)
        assert config_cls.from_dict(config.to_dict()) == config
    assert built["paper"] != built["tiny"] and built["small"] != built["tiny"]
    with pytest.raises(ValueError, match="no preset 'huge'"):
        config_cls.preset("huge")


def test_presets_take_keyword_overrides_and_do_not_share_state():
    assert WaveNetConfig.small(cond_channels=80).cond_channels == 80
    assert DiffWaveConfig.paper(cond_channels=264, hop_length=300).hop_length == 300
    a, b = MelGANGeneratorConfig.paper(), MelGANGeneratorConfig.paper()
    a.upsample_factors.append(1)
    assert b.upsample_factors == [8, 8, 2, 2] and MelGANGeneratorConfig.PRESETS["paper"]["upsample_factors"] == [8, 8, 2, 2]
    # MelGAN's tiny hop follows its factors unless given
    assert MelGANGeneratorConfig.tiny(upsample_factors=[8, 2]).hop_length == 16
    assert MelGANGeneratorConfig.tiny(upsample_factors=[5, 3]).hop_length == 15
    assert VQVAEConfig.small().levels[2].restart_threshold == 0.1 and VQVAEConfig.small().top_prior.context == 256
