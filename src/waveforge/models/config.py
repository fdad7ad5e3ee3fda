"""What every model config dataclass shares: the same presets with the same signature, and its
dictionary form (the JSON a model file stores).

A config lists its presets as data, ``PRESETS = {"paper": {...}, "small": {...}, "tiny": {...}}``
(field values that differ from the dataclass defaults); ``Config.paper(**overrides)`` and its
siblings build one, and any field can be overridden by keyword.

Tasks (and recipes) state a model's architecture as one mapping, ``{preset: small, <field>: value,
...}``, turned into a config by :func:`build_config`: ``preset`` is optional (the task names its
default), every other key is a field of the config dataclass, and the fields the data decides
(sample rate, hop, channels of the conditioning) are filled in by the task, which refuses a
mapping that states them differently.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

__all__ = ["ModelConfig", "PRESET_NAMES", "ConfigError", "build_config"]

PRESET_NAMES = ("paper", "small", "tiny")

C = TypeVar("C", bound="ModelConfig")


class ConfigError(ValueError):
    """An architecture mapping names an unknown preset or field, or contradicts the data.

    ``waveforge fit`` prints it as one line and exits with status 2."""


class ModelConfig:
    """Mixin for a model's config dataclass: ``paper`` / ``small`` / ``tiny`` presets, ``to_dict`` / ``from_dict``."""

    #: preset name -> field values (beside the defaults); every config has at least PRESET_NAMES
    PRESETS: dict[str, dict[str, Any]] = {}

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        if name not in cls.PRESETS:
            raise ConfigError(f"{cls.__name__} has no preset {name!r} (known: {', '.join(cls.PRESETS)})")
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


def build_config(
    config_cls: type[C],
    mapping: Mapping[str, Any] | None,
    default_preset: str,
    decided: Mapping[str, Any] | None = None,
    name: str = "architecture",
    decided_by: Mapping[str, str] | None = None,
    base: C | None = None,
) -> C:
    """``config_cls.preset(mapping["preset"] or default_preset, **fields, **decided)``.

    ``mapping`` is a task's architecture argument, ``{preset: small, <field>: value, ...}``;
    ``decided`` holds the fields the data decides (hop, conditioning channels...), which the mapping
    may repeat but not contradict (``decided_by`` names where a field comes from when not from the
    data, e.g. another task argument). ``base``, when given, is the config a mapping without ``preset``
    starts from instead of ``default_preset`` (a sub-model's size inside its parent's preset).
    ``name`` (the task argument) starts every error message. Raises
    :class:`ConfigError`, one line naming the bad key and the known ones."""
    given = dict(mapping or {})
    preset = given.pop("preset", None) or default_preset
    if preset not in config_cls.PRESETS:
        raise ConfigError(f"{name}: {config_cls.__name__} has no preset {preset!r} (known: {', '.join(config_cls.PRESETS)})")
    known = [f.name for f in fields(config_cls)]  # type: ignore[arg-type]
    unknown = [key for key in given if key not in known]
    if unknown:
        raise ConfigError(f"{name}: {config_cls.__name__} has no field {unknown[0]!r} (known: preset, {', '.join(known)})")
    for key, value in (decided or {}).items():
        if key in given and given[key] != value:
            source = (decided_by or {}).get(key, "the data")
            raise ConfigError(f"{name}: {key} is {given[key]!r}, but {source} sets it to {value!r} (leave {key} out: the task fills it in)")
    try:
        if base is not None and "preset" not in (mapping or {}):
            return config_cls.from_dict({**base.to_dict(), **given, **(decided or {})})
        return config_cls.preset(preset, **{**given, **(decided or {})})
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: {' '.join(str(e).split())}") from None
