"""What every model config dataclass shares: the same presets with the same signature, and its
dictionary form (the JSON a model file stores).

A config lists its presets as data, ``PRESETS = {"paper": {...}, "small": {...}, "tiny": {...}}``
(field values that differ from the dataclass defaults); ``Config.paper(**overrides)`` and its
siblings build one, and any field can be overridden by keyword.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any, TypeVar

__all__ = ["ModelConfig", "PRESET_NAMES"]

PRESET_NAMES = ("paper", "small", "tiny")

C = TypeVar("C", bound="ModelConfig")


class ModelConfig:
    """Mixin for a model's config dataclass: ``paper`` / ``small`` / ``tiny`` presets, ``to_dict`` / ``from_dict``."""

    #: preset name -> field values (beside the defaults); every config has at least PRESET_NAMES
    PRESETS: dict[str, dict[str, Any]] = {}

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        if name not in cls.PRESETS:
            raise ValueError(f"{cls.__name__} has no preset {name!r} (known: {', '.join(cls.PRESETS)})")
        return cls.from_dict({**copy.deepcopy(cls.PRESETS[name]), **overrides})

    @classmethod
    def paper(cls: type[C], **overrides: Any) -> C:
        """The published model's size (each config's ``PRESETS["paper"]`` says which paper)."""
        return cls.preset("paper", **overrides)

    @classmethod
    def small(cls: type[C], **overrides: Any) -> C:
        """A CPU-sized model for the 2-core recipes."""
        return cls.preset("small", **overrides)

    @classmethod
    def tiny(cls: type[C], **overrides: Any) -> C:
        """For tests: seconds on one core."""
        return cls.preset("tiny", **overrides)

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict) -> C:
        return cls(**d)
