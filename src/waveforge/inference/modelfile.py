"""Exported models: one ``.safetensors`` file, weights plus a JSON metadata entry, no pickle.

Metadata key ``"waveforge"`` holds::

    {"format": 1, "family": "melgan", "version": "0.1.0", "sample_rate": 22050,
     "model_config": {...}, "feature": {"kind": "mel", ...} | null, "extra": {...}}

so a loaded model rebuilds itself and computes its own inputs. Loading reads tensors and JSON
only; nothing in the file can run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from waveforge import __version__
from waveforge.errors import BadInputError
from waveforge.features import FeatureConfig, feature_from_dict, feature_to_dict
from waveforge.utils.atomic import atomic_path

FORMAT_VERSION = 1
METADATA_KEY = "waveforge"


@dataclass
class ModelFile:
    family: str
    model_config: dict
    feature: FeatureConfig | None
    sample_rate: int
    state_dict: dict[str, torch.Tensor]
    version: str = __version__
    extra: dict = field(default_factory=dict)


def save_model_file(path: str | os.PathLike, model_file: ModelFile) -> Path:
    """Write atomically; tensors are made contiguous and de-aliased (safetensors refuses shared storage)."""
    meta = {
        "format": FORMAT_VERSION,
        "family": model_file.family,
        "version": model_file.version,
        "sample_rate": int(model_file.sample_rate),
        "model_config": model_file.model_config,
        "feature": feature_to_dict(model_file.feature),
        "extra": model_file.extra,
    }
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model_file.state_dict.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    return path


def read_model_file(path: str | os.PathLike) -> ModelFile:
    """Read a model file; anything that is not a waveforge model raises BadInputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "no such model file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise BadInputError(path, f"not a safetensors model file ({str(e)[:120]})") from None
    if METADATA_KEY not in metadata:
        raise BadInputError(path, "safetensors file has no waveforge metadata (not exported by `waveforge export`)")
    try:
        meta = json.loads(metadata[METADATA_KEY])
        if not isinstance(meta, dict):
            raise BadInputError(path, f"malformed waveforge metadata (a JSON {type(meta).__name__}, not an object)")
        if meta.get("format") != FORMAT_VERSION:
            raise BadInputError(path, f"model file format {meta.get('format')} is not supported (expected {FORMAT_VERSION})")
        for key, kind in (("family", str), ("model_config", dict), ("sample_rate", int)):
            if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
                raise BadInputError(path, f"malformed waveforge metadata ({key!r} must be a JSON {kind.__name__}, got {meta.get(key)!r:.60})")
        if not isinstance(meta.get("feature"), (dict, type(None))) or not isinstance(meta.get("extra", {}), dict):
            raise BadInputError(path, "malformed waveforge metadata ('feature' and 'extra' must be JSON objects)")
        return ModelFile(
            family=meta["family"],
            model_config=meta["model_config"],
            feature=feature_from_dict(meta.get("feature")),
            sample_rate=int(meta["sample_rate"]),
            state_dict=state,
            version=meta.get("version", "?"),
            extra=meta.get("extra", {}),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        if isinstance(e, BadInputError):
            raise
        raise BadInputError(path, f"malformed waveforge metadata ({e})") from None
