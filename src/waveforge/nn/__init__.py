"""Shared layers."""

from waveforge.nn.upsample import ConditionUpsampler

__all__ = ["ConditionUpsampler"]
