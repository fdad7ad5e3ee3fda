"""waveforge.models"""

from waveforge.models.diffwave import DiffWave, DiffWaveCondition, DiffWaveConfig
from waveforge.models.melgan import (
    MelGANGenerator,
    MelGANGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig
