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


def test_every_preset_method_is_the_preset_by_name_with_the_same_overrides():
    for config_cls in CONFIGS:
        for name in PRESET_NAMES:
            assert getattr(config_cls, name)() == config_cls.preset(name)
    # MelGAN's hop follows given factors in every preset, not only tiny
    assert MelGANGeneratorConfig.preset("tiny", upsample_factors=[8, 2]) == MelGANGeneratorConfig.tiny(upsample_factors=[8, 2])
    assert MelGANGeneratorConfig.paper(upsample_factors=[8, 8, 4]).hop_length == 256


def test_build_config_takes_a_preset_and_fields_and_refuses_what_it_does_not_know():
    from waveforge.models.config import ConfigError, build_config

    assert build_config(WaveNetConfig, None, "small") == WaveNetConfig.small()
    assert build_config(WaveNetConfig, {"preset": "tiny", "output": "logistic"}, "small") == WaveNetConfig.tiny(output="logistic")
    assert build_config(WaveNetConfig, {"layers": 12}, "paper", {"cond_channels": 80}) == WaveNetConfig.paper(layers=12, cond_channels=80)
    # a field the data decides may be repeated, not contradicted
    assert build_config(DiffWaveConfig, {"hop_length": 256}, "paper", {"hop_length": 256}).hop_length == 256
    with pytest.raises(ConfigError, match=r"^architecture: hop_length is 128, but the data sets it to 256 \(leave hop_length out"):
        build_config(DiffWaveConfig, {"hop_length": 128}, "paper", {"hop_length": 256})
    with pytest.raises(ConfigError, match=r"^architecture: WaveNetConfig has no field 'layer' \(known: preset, layers, cycles, "):
        build_config(WaveNetConfig, {"layer": 12}, "small")
    with pytest.raises(ConfigError, match=r"^architecture: WaveNetConfig has no preset 'huge' \(known: paper, small, tiny\)"):
        build_config(WaveNetConfig, {"preset": "huge"}, "small")
    with pytest.raises(ConfigError, match=r"^top_prior: width 30 must be divisible by heads 4"):  # the config's own checks, named
        build_config(PriorConfig, {"width": 30, "heads": 4}, "small", name="top_prior")
    # base: a sub-model's size inside its parent's preset, used unless the mapping names a preset
    base = VQVAEConfig.small().top_prior
    assert build_config(PriorConfig, {"layers": 2}, "paper", base=base) == PriorConfig.small(context=256, layers=2)
    assert build_config(PriorConfig, {"preset": "tiny"}, "paper", base=base) == PriorConfig.tiny()
