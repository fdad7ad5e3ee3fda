"""Hyper-parameters of checkpoints written before tasks took their model as one ``architecture`` mapping.

Older tasks took the model's fields as flat arguments (GAN, flow, diffusion, VQ-VAE, notes-to-mel)
or as ``preset`` plus an untyped ``overrides`` dict (WaveNet, SampleRNN). :func:`upgrade_hyperparameters`
turns such a checkpoint's hyper-parameters into the arguments the task takes today, building the
same model (so ``waveforge export`` and ``init_from`` still read old checkpoints). This is the only
place that knows the old names.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from waveforge.models.prior import PriorConfig

__all__ = ["upgrade_hyperparameters"]

#: task class name -> (the preset the old flat defaults equal, the old flat arguments that were config fields);
#: the notes-to-mel tasks took the note prior's note_frames / release_frames flat for one commit (900893b)
FLAT_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "GANVocoderTask": ("paper", ("initial_channels", "upsample_factors", "residual_dilations", "upsampling", "output", "n_fft")),
    "FlowVocoderTask": ("paper", ("upsampled_cond_channels", "n_flows", "n_group", "n_early_every", "n_early_size", "n_layers",
                                  "n_channels", "kernel_size", "lu_decomposed", "sigma")),
    "DiffusionTask": ("paper", ("residual_channels", "n_layers", "dilation_cycle")),
    "Notes2MelRegressionTask": ("small", ("note_frames", "release_frames", "channels", "n_layers", "kernel_size", "dilation_cycle", "attention_layers",
                                          "attention_heads", "attention_window")),
    "Notes2MelDiffusionTask": ("small", ("note_frames", "release_frames", "channels", "n_layers", "kernel_size", "dilation_cycle", "attention_layers",
                                         "attention_heads", "attention_window", "mel_offset", "mel_scale")),
}
#: the old ``preset`` argument's default per task
PRESET_DEFAULTS = {"WaveNetTask": "small", "SampleRNNTask": "paper"}
#: the old VQ-VAE task's per-level arguments (one value for every level) and their defaults
VQVAE_LEVEL_FIELDS = ("stride", "codebook_size", "code_dim", "width", "depth", "dilation_growth", "beta", "ema_decay",
                      "ema_epsilon", "decoder", "wavenet")
DATA_FIELDS = ("cond_channels", "hop_length")  # the old tasks overwrote these with the data's


def upgrade_hyperparameters(class_name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """The arguments of today's ``class_name`` task for a checkpoint's ``hparams``: ``{}`` when they
    are already current (or the task never changed), else the new ``architecture`` (and VQ-VAE's
    ``top_prior`` / ``upsampler``) that rebuild the old model; the old keys are then ignored."""
    hp = dict(hparams or {})
    if "architecture" in hp:
        return {}
    if class_name in PRESET_DEFAULTS:
        if "preset" not in hp and "overrides" not in hp:
            return {}
        overrides = {k: v for k, v in (hp.get("overrides") or {}).items() if k not in DATA_FIELDS}
        return {"architecture": {"preset": hp.get("preset") or PRESET_DEFAULTS[class_name], **overrides}}
    if class_name in FLAT_FIELDS:
        preset, names = FLAT_FIELDS[class_name]
        if not any(name in hp for name in names):
            return {}
        return {"architecture": {"preset": preset, **{k: hp[k] for k in names if hp.get(k) is not None}}}
    if class_name == "VQVAETask" and "hops" in hp:
        hops = list(hp["hops"])
        threshold = hp.get("restart_threshold", 1.0)
        thresholds = list(threshold) if isinstance(threshold, (list, tuple)) else [threshold] * len(hops)
        shared = {k: hp[k] for k in VQVAE_LEVEL_FIELDS if k in hp}
        levels = [{"hop_length": h, **shared, "restart_threshold": t} for h, t in zip(hops, thresholds)]
        # the old priors started from PriorConfig's defaults, not a preset: state every field
        return {
            "architecture": {"levels": levels, "condition_on_above": bool(hp.get("condition_on_above", False))},
            "top_prior": asdict(PriorConfig(**(hp.get("top_prior") or {}))),
            "upsampler": asdict(PriorConfig(**(hp.get("upsampler") or {}))),
        }
    return {}
