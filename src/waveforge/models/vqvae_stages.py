"""Merging the stages of a :class:`~waveforge.models.vqvae.VQVAEHierarchy` trained apart.

The hierarchy trains one part per run (a level's autoencoder, or a prior), and stages that do not
depend on each other may run in parallel. :func:`merge_stages` combines their weights: each part
comes from the last source in which it has training steps (the ``trained`` buffer counts them). It
is used by a training stage's ``init_from`` (``VQVAETask``) and by ``waveforge export A.ckpt B.ckpt``;
reading the files is theirs, so this module does no I/O and needs no Lightning.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from waveforge.models.vqvae import VQVAEHierarchy

__all__ = ["StageSource", "TRAINING_ONLY_LEVEL_KEYS", "merge_stages"]

#: quantiser settings that shape training only: they may differ for a level a loaded file did not train
TRAINING_ONLY_LEVEL_KEYS = ("beta", "ema_decay", "ema_epsilon", "restart_threshold")


class StageSource(NamedTuple):
    """One trained stage: where it came from (for messages), its model config and its state dict."""

    where: str
    config: dict
    state: dict[str, torch.Tensor]


def merge_stages(model: VQVAEHierarchy, sources: list[StageSource], retrained_level: int | None = None) -> None:
    """Load ``model`` with every part from the last source that trained it; a part no source trained
    keeps the first source's weights. ``retrained_level``: the level whose autoencoder the caller is
    about to train (its training-only settings may differ from the sources'). Raises ``ValueError``
    naming the source when the architectures differ or a prior was trained on other codes.
    """
    if not sources:
        raise ValueError("no stages to merge")
    mine = model.config.to_dict()
    state = dict(sources[0].state)
    trained = torch.zeros_like(model.trained)
    prior_sources: dict[int, StageSource] = {}
    for source in sources:
        file_trained = source.state["trained"]
        _check_stage_config(source.where, source.config, mine, file_trained, retrained_level)
        for level in range(len(model.levels)):
            for kind, prefix in ((0, f"levels.{level}."), (1, _prior_prefix(model, level))):
                if int(file_trained[level, kind]) > 0:
                    state.update({k: v for k, v in source.state.items() if k.startswith(prefix)})
                    trained[level, kind] = file_trained[level, kind]
                    if kind == 1:
                        prior_sources[level] = source
    # a prior is only valid on the codes it was trained on: its file's autoencoders must be the loaded ones
    for level, source in prior_sources.items():
        for coded in [level] + ([level + 1] if level < model.top_level else []):
            if int(source.state["trained"][coded, 0]) == 0:
                continue
            prefix = f"levels.{coded}."
            if any(not torch.equal(v, state[k]) for k, v in source.state.items() if k.startswith(prefix)):
                raise ValueError(f"{source.where}: its level-{level} prior was trained on another level-{coded} autoencoder "
                                 "than the one loaded; retrain the prior on these codes")
    state["trained"] = trained
    model.load_state_dict(state)


def _prior_prefix(model: VQVAEHierarchy, level: int) -> str:
    return "top_prior." if level == model.top_level else f"upsamplers.{level}."


def _check_stage_config(where: str, config: dict, mine: dict, file_trained: torch.Tensor, retrained_level: int | None) -> None:
    """Architectures must match; a level's training-only settings only where that file trained
    the level and the caller does not retrain it (they say how the loaded weights were made)."""
    config, mine = _copy_levels(config), _copy_levels(mine)
    for level, (theirs, ours) in enumerate(zip(config.get("levels", []), mine["levels"])):
        if level == retrained_level or int(file_trained[level, 0]) == 0:
            for key in TRAINING_ONLY_LEVEL_KEYS:
                theirs.pop(key, None)
                ours.pop(key, None)
    if config != mine:
        diff = _dict_diff(config, mine)
        raise ValueError(f"{where}: model config differs from this stage's ({diff}); use the same model settings in every stage")


def _copy_levels(config: dict) -> dict:
    return {**config, "levels": [dict(level) for level in config.get("levels", [])]}


def _dict_diff(a: dict, b: dict, prefix: str = "") -> str:
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            sub = _dict_diff(va, vb, f"{prefix}{key}.")
            if sub:
                diffs.append(sub)
        elif va != vb:
            diffs.append(f"{prefix}{key}: {va!r} there, {vb!r} here")
    return "; ".join(diffs)[:300]
