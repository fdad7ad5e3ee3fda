"""waveforge.models"""

from waveforge.models.melgan import (
    MelGANGenerator,
    MelGANGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig
from waveforge.models.prior import PriorConfig, TransformerPrior
from waveforge.models.vqvae import VectorQuantizer, VQVAEConfig, VQVAEHierarchy, VQVAELevel, VQVAELevelConfig
