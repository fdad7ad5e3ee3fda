"""``waveforge eval`` of a hierarchical VQ-VAE: per-level figures instead of one likelihood.

A hierarchy has no conditioning and no single likelihood, so :func:`waveforge.evaluate.evaluate_model`
hands it here: per level, the reconstruction MR-STFT distance, codebook usage and perplexity, and
the priors' bits per code.
"""

from __future__ import annotations

import math
import os

import torch

from waveforge.errors import BadInputError
from waveforge.models.vqvae import VQVAEHierarchy, codebook_perplexity

__all__ = ["evaluate_hierarchy"]


@torch.no_grad()
def evaluate_hierarchy(
    model_path: str | os.PathLike, data_root: str | os.PathLike, split: str = "test", seconds: float = 10.0, max_pieces: int | None = None
) -> dict:
    """Per level on a split's pieces (first ``seconds`` of each): reconstruction MR-STFT distance
    (feed-forward decoders), codebook usage (fraction of codes used at least once) and perplexity,
    and the prior's / upsampler's NLL in bits per code on context-sized windows of the true codes."""
    import waveforge
    from waveforge.audio.io import audio_info, load_audio
    from waveforge.data.maestro import MaestroIndex
    from waveforge.losses.stft import mr_stft_loss_per_item
    from waveforge.utils.progress import progress

    synth = waveforge.load(model_path)
    if synth.family != "vqvae":
        raise BadInputError(model_path, f"a {synth.family} model, not a vqvae hierarchy")
    model: VQVAEHierarchy = synth.model
    records = MaestroIndex(data_root).split(split)[:max_pieces]
    if not records:
        raise BadInputError(data_root, f"split {split!r} has no pieces")
    n_levels = len(model.levels)
    histograms = [torch.zeros(lv.config.codebook_size, dtype=torch.long, device=synth.device) for lv in model.levels]
    distances: list[list[float]] = [[] for _ in range(n_levels)]
    nll_sum, nll_count = [0.0] * n_levels, [0] * n_levels
    multiple = model.hop_multiple
    for record in progress(records, desc=f"eval {split}", unit="piece"):
        rate = audio_info(record.audio_path).sample_rate
        audio = load_audio(record.audio_path, synth.sample_rate, frames=int(math.ceil(seconds * rate)))
        n = audio.shape[-1] // multiple * multiple
        if n == 0:
            continue
        audio = audio[..., :n].reshape(1, 1, n)
        codes = model.encode(audio)
        for level, c in enumerate(codes):
            histograms[level] += torch.bincount(c.flatten(), minlength=histograms[level].numel())
            if model.config.levels[level].decoder == "feedforward":
                above = codes[level + 1] if level < model.top_level else None
                distances[level].append(float(mr_stft_loss_per_item(model.decode(c, level, above_codes=above), audio)[0]))
            prior = model.prior(level)
            context, ratio = prior.config.context, prior.config.cond_ratio
            for start in range(0, c.shape[-1], context):
                tokens = c[:, start : start + context]
                cond = codes[level + 1][:, start // ratio : (start + tokens.shape[-1]) // ratio] if prior.conditional else None
                if cond is not None and cond.shape[-1] * ratio != tokens.shape[-1]:
                    continue
                nll_sum[level] += float(prior.loss(prior(tokens, cond), tokens)) * tokens.numel()
                nll_count[level] += tokens.numel()
    levels = []
    for level in range(n_levels):
        hist = histograms[level].float()
        levels.append({
            "level": level,
            "hop_length": model.config.levels[level].hop_length,
            "mr_stft": sum(distances[level]) / len(distances[level]) if distances[level] else None,
            "codebook_usage": float((hist > 0).float().mean()),
            "perplexity": float(codebook_perplexity(hist)),
            "prior_bits_per_code": nll_sum[level] / nll_count[level] / math.log(2) if nll_count[level] else None,
        })
    return {"model": str(model_path), "split": split, "pieces": len(records), "seconds_per_piece": seconds,
            "trained_steps": synth.model_file.extra.get("trained"), "levels": levels}
