"""Frame-rate conditioning features, one interface for every family (DESIGN.md).

A model's feature config is a :class:`MelConfig` (mel vocoder), a :class:`PianoRollConfig`
(MIDI renderer) or ``None`` (unconditional). Both features are ``(C, F)`` at ``sample_rate /
hop_length`` frames per second, so ``T = F * hop_length``.
"""

from __future__ import annotations

from typing import Union

from waveforge.audio.mel import MelConfig
from waveforge.midi.roll import PianoRollConfig

FeatureConfig = Union[MelConfig, PianoRollConfig]


def feature_to_dict(config: FeatureConfig | None) -> dict | None:
    return None if config is None else config.to_dict()


def feature_from_dict(data: dict | None) -> FeatureConfig | None:
    if data is None:
        return None
    data = dict(data)
    kind = data.pop("kind", None)
    if kind == "mel":
        return MelConfig(**data)
    if kind == "piano_roll":
        return PianoRollConfig(**data)
    raise ValueError(f"unknown feature kind {kind!r} (expected 'mel' or 'piano_roll')")
