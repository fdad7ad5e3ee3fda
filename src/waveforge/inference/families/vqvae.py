"""Hierarchical VQ-VAE: top-down sampling, and the codes files of ``waveforge encode`` / ``decode``.

A codes file is an ``.npz`` (no pickle) with ``codes_<l>`` ``(N_l,)`` int64 per level,
``hops (L,)``, ``sample_rate ()`` and ``n_samples ()`` (the audio length before it was padded to a
multiple of the top hop).
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from waveforge.errors import BadInputError
from waveforge.inference.families import FamilyAdapter, SynthesisOptions
from waveforge.models.vqvae import VQVAEConfig, VQVAEHierarchy
from waveforge.utils.atomic import atomic_path


class VQVAEAdapter(FamilyAdapter):
    name = "vqvae"

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> VQVAEHierarchy:
        model = VQVAEHierarchy(VQVAEConfig.from_dict(model_config))
        model.load_state_dict(state_dict)
        return model.eval()

    def synthesize(self, model: VQVAEHierarchy, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        """Top prior -> upsamplers -> level-0 decoder, a progress bar per level: ``(batch_size, 1, n_samples)``."""
        if cond is not None:
            raise ValueError("a VQ-VAE hierarchy is unconditional")
        return model.sample(n_samples, options.batch_size, options.temperature, options.top_p, progress=options.progress)


ADAPTER = VQVAEAdapter()


# ------------------------------------------------------------------------- codes files
@torch.no_grad()
def encode_audio(model: VQVAEHierarchy, audio: torch.Tensor) -> dict[str, np.ndarray]:
    """``(1, T)`` audio at the model rate -> the arrays of a codes file (all levels)."""
    n_samples = audio.shape[-1]
    multiple = model.hop_multiple
    padded = F.pad(audio.reshape(1, 1, -1), (0, math.ceil(n_samples / multiple) * multiple - n_samples))
    codes = model.encode(padded.to(next(model.parameters()).device))
    arrays = {f"codes_{level}": c[0].cpu().numpy().astype(np.int64) for level, c in enumerate(codes)}
    arrays["hops"] = np.asarray(model.config.hops, dtype=np.int64)
    arrays["n_samples"] = np.asarray(n_samples, dtype=np.int64)
    return arrays


def save_codes(path: str | os.PathLike, arrays: dict[str, np.ndarray], sample_rate: int) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, sample_rate=np.asarray(sample_rate, dtype=np.int64), **arrays)
    return path


def load_codes(path: str | os.PathLike, model: VQVAEHierarchy, sample_rate: int) -> dict[str, np.ndarray]:
    """Read and check a codes file against ``model``; bad files raise BadInputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "no such codes file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise BadInputError(path, f"not a codes .npz file ({str(e)[:100]})") from None
    levels = sorted(int(k.split("_")[1]) for k in arrays if k.startswith("codes_") and k.split("_")[1].isdigit())
    if not levels or "hops" not in arrays:
        raise BadInputError(path, "not a waveforge codes file (no codes_<level> / hops arrays; write it with `waveforge encode`)")
    if list(arrays["hops"]) != model.config.hops:
        raise BadInputError(path, f"codes are for hops {list(arrays['hops'])}, this model has {model.config.hops}")
    if "sample_rate" in arrays and int(arrays["sample_rate"]) != sample_rate:
        raise BadInputError(path, f"codes are at {int(arrays['sample_rate'])} Hz, the model at {sample_rate} Hz")
    for level in levels:
        if level >= len(model.levels):
            raise BadInputError(path, f"codes_{level}: the model has only {len(model.levels)} levels")
        codes = arrays[f"codes_{level}"]
        k = model.config.levels[level].codebook_size
        if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer) or codes.size == 0 or codes.min() < 0 or codes.max() >= k:
            raise BadInputError(path, f"codes_{level} must be a non-empty 1-D integer array in [0, {k})")
    return arrays


@torch.no_grad()
def decode_codes(model: VQVAEHierarchy, arrays: dict[str, np.ndarray], level: int | None = None, options: SynthesisOptions | None = None) -> torch.Tensor:
    """Codes file arrays -> ``(1, 1, n_samples)`` audio from ``level`` (default: the finest level present)."""
    options = options or SynthesisOptions()
    present = sorted(int(k.split("_")[1]) for k in arrays if k.startswith("codes_"))
    level = present[0] if level is None else level
    if level not in present:
        raise BadInputError(None, f"the codes file has levels {present}, not level {level}")
    device = next(model.parameters()).device
    codes = torch.from_numpy(arrays[f"codes_{level}"].astype(np.int64))[None].to(device)
    above = None
    if model.levels[level].conditioned:
        if level + 1 not in present:
            raise BadInputError(None, f"level {level}'s decoder is conditioned on level {level + 1}; the codes file has levels {present}")
        above = torch.from_numpy(arrays[f"codes_{level + 1}"].astype(np.int64))[None].to(device)
        ratio = model.levels[level].above_ratio
        if above.shape[-1] * ratio != codes.shape[-1]:
            raise BadInputError(None, f"codes_{level + 1} has {above.shape[-1]} codes; level {level}'s {codes.shape[-1]} need {codes.shape[-1] / ratio:g}")
    audio = model.decode(codes, level, options.temperature, options.top_p, progress=options.progress, above_codes=above)
    n = int(arrays["n_samples"]) if "n_samples" in arrays else audio.shape[-1]
    return audio[..., :n]
