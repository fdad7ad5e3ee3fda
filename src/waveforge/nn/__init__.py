"""Shared layers."""

from waveforge.nn.causal import CausalConv1d, ConvQueue, GatedResidualBlock, gated_activation
from waveforge.nn.sampling import nucleus_filter, sample_categorical
from waveforge.nn.upsample import ConditionUpsampler

__all__ = [
    "CausalConv1d",
    "ConditionUpsampler",
    "ConvQueue",
    "GatedResidualBlock",
    "gated_activation",
    "nucleus_filter",
    "sample_categorical",
]
