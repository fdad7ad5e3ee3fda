"""waveforge.models"""

from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
from waveforge.models.wavenet import WaveNet, WaveNetConfig

__all__ = ["SampleRNN", "SampleRNNConfig", "WaveNet", "WaveNetConfig"]
