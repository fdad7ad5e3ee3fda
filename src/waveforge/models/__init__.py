"""waveforge.models"""

from waveforge.models.melgan import (
    MelGANGenerator,
    MelGANGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
