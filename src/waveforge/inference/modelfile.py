"""Exported models: one ``.safetensors`` file, weights plus a JSON metadata entry, no pickle.

Metadata key ``"waveforge"`` holds::

    {"format": 1, "family": "melgan", "version": "0.1.0", "sample_rate": 22050,
     "model_config": {...}, "feature": {"kind": "mel", ...} | null, "extra": {...}}

so a loaded model rebuilds itself and computes its own inputs. Loading reads tensors and JSON
only; nothing in the file can run code.

Weights may be stored in float16 (:func:`convert_model_file`, ``waveforge export --dtype float16``):
half the size on disk. Reading widens them to float32, so every family computes in float32 and
checks see float32 weights; integer tensors are never converted.
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
#: storage dtypes a model file may be written in; reading widens the half ones to float32
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_HALF = (torch.float16, torch.bfloat16)


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
    """Read a model file, or a shipped model by name (:mod:`waveforge.pretrained`); anything that is
    not a waveforge model raises BadInputError naming the file. Half-precision weights come back float32."""
    from waveforge.pretrained import SHIPPED, resolve

    given = os.fspath(path)
    path = resolve(path)
    if not path.is_file():
        if not path.exists() and path.suffix == "" and os.sep not in given:
            raise BadInputError(path, f"no such model file, nor a shipped model (shipped: {', '.join(SHIPPED)}; see `waveforge models`)")
        raise BadInputError(path, "no such model file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        state = {k: v.float() if v.dtype in _HALF else v for k, v in state.items()}
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


def cast_model_file(model_file: ModelFile, dtype: str, where: str | os.PathLike | None = None) -> ModelFile:
    """The same model with its floating-point tensors stored as ``dtype`` (``"float32"`` or ``"float16"``).

    Integer tensors (counters, code tables) are kept. A weight beyond float16's range would become
    infinite, so it is refused rather than written."""
    if dtype not in STORAGE_DTYPES:
        raise BadInputError(where, f"storage dtype {dtype!r} is not one of {', '.join(STORAGE_DTYPES)}")
    target = STORAGE_DTYPES[dtype]
    limit = torch.finfo(target).max
    state = {}
    for name, tensor in model_file.state_dict.items():
        if tensor.is_floating_point():
            if tensor.numel() and float(tensor.detach().abs().max()) > limit:
                raise BadInputError(where, f"tensor {name!r} holds values beyond {dtype}'s range ({limit:g}); keep it float32")
            tensor = tensor.detach().to(target)
        state[name] = tensor
    extra = {**model_file.extra, "weights_dtype": dtype}
    return ModelFile(model_file.family, model_file.model_config, model_file.feature, model_file.sample_rate, state,
                     version=model_file.version, extra=extra)


def convert_model_file(src: str | os.PathLike, dst: str | os.PathLike, dtype: str = "float16") -> Path:
    """Rewrite the model file ``src`` (or a shipped model's name) with its weights stored as ``dtype``."""
    from waveforge.pretrained import resolve

    source = resolve(src)
    if Path(dst).resolve() == source.resolve():
        raise BadInputError(dst, "the output would overwrite the input; write the converted model to another file")
    return save_model_file(dst, cast_model_file(read_model_file(src), dtype, src))
