"""waveforge.models"""

from waveforge.models.diffwave import DiffWave, DiffWaveCondition, DiffWaveConfig

__all__ = ["DiffWave", "DiffWaveCondition", "DiffWaveConfig"]
