"""The model families: plain nn.Modules with one config dataclass each (no Lightning, no I/O)."""

from waveforge.models.diffwave import DiffWave, DiffWaveCondition, DiffWaveConfig
from waveforge.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig
from waveforge.models.notes2mel import Notes2Mel, Notes2MelConfig, Notes2MelDenoiser
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig
from waveforge.models.prior import PriorConfig, TransformerPrior
from waveforge.models.vqvae import VectorQuantizer, VQVAEConfig, VQVAEHierarchy, VQVAELevel, VQVAELevelConfig
from waveforge.models.waveglow import WaveGlow, WaveGlowConfig

__all__ = [
    "DiffWave",
    "DiffWaveCondition",
    "DiffWaveConfig",
    "MelGANGenerator",
    "MelGANGeneratorConfig",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "Notes2Mel",
    "Notes2MelConfig",
    "Notes2MelDenoiser",
    "SampleRNN",
    "SampleRNNConfig",
    "WaveGlow",
    "WaveGlowConfig",
    "WaveNet",
    "WaveNetConfig",
    "PriorConfig",
    "TransformerPrior",
    "VectorQuantizer",
    "VQVAEConfig",
    "VQVAEHierarchy",
    "VQVAELevel",
    "VQVAELevelConfig",
]
