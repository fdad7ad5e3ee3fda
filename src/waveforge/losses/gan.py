"""Adversarial losses and feature matching, as functions over per-sub-discriminator lists.

Every function takes a sequence of logit tensors (one per scale or period, the ``logits`` of a
:class:`waveforge.models.melgan.DiscriminatorOutput`) and returns a scalar: the sum over
sub-discriminators of the mean over each one's patch logits.

Hinge (MelGAN, Kumar et al. 2019)::

    L_D = sum_k E[relu(1 - D_k(x))] + E[relu(1 + D_k(G(s)))]
    L_G = sum_k -E[D_k(G(s))]

Least squares (Mao et al. 2017, used by HiFi-GAN)::

    L_D = sum_k E[(D_k(x) - 1)^2] + E[D_k(G(s))^2]
    L_G = sum_k E[(D_k(G(s)) - 1)^2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

GANLossKind = Literal["hinge", "lsgan"]

__all__ = [
    "GANLossKind",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
]


def _as_list(logits: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(logits, torch.Tensor):
        return [logits]
    out = list(logits)
    if not out:
        raise ValueError("expected at least one logit tensor")
    return out


def _check_pairs(real: list[torch.Tensor], fake: list[torch.Tensor]) -> None:
    if len(real) != len(fake):
        raise ValueError(f"got {len(real)} real and {len(fake)} fake logit tensors; they must pair up")


def hinge_discriminator_loss(
    real_logits: torch.Tensor | Sequence[torch.Tensor], fake_logits: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """``sum_k mean(relu(1 - D_k(x))) + mean(relu(1 + D_k(G(s))))``; zero once every real logit >= 1 and fake <= -1."""
    real, fake = _as_list(real_logits), _as_list(fake_logits)
    _check_pairs(real, fake)
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake))


def hinge_generator_loss(fake_logits: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_k -mean(D_k(G(s)))``."""
    return sum(-f.mean() for f in _as_list(fake_logits))


def lsgan_discriminator_loss(
    real_logits: torch.Tensor | Sequence[torch.Tensor], fake_logits: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """``sum_k mean((D_k(x) - 1)^2) + mean(D_k(G(s))^2)``."""
    real, fake = _as_list(real_logits), _as_list(fake_logits)
    _check_pairs(real, fake)
    return sum((r - 1).square().mean() + f.square().mean() for r, f in zip(real, fake))


def lsgan_generator_loss(fake_logits: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_k mean((D_k(G(s)) - 1)^2)``."""
    return sum((f - 1).square().mean() for f in _as_list(fake_logits))


def discriminator_loss(real_logits, fake_logits, kind: GANLossKind = "hinge") -> torch.Tensor:
    """The discriminator side of the ``kind`` objective (``"hinge"`` or ``"lsgan"``)."""
    if kind == "hinge":
        return hinge_discriminator_loss(real_logits, fake_logits)
    if kind == "lsgan":
        return lsgan_discriminator_loss(real_logits, fake_logits)
    raise ValueError(f"unknown GAN loss {kind!r} (expected 'hinge' or 'lsgan')")


def generator_loss(fake_logits, kind: GANLossKind = "hinge") -> torch.Tensor:
    """The generator side of the ``kind`` objective (``"hinge"`` or ``"lsgan"``)."""
    if kind == "hinge":
        return hinge_generator_loss(fake_logits)
    if kind == "lsgan":
        return lsgan_generator_loss(fake_logits)
    raise ValueError(f"unknown GAN loss {kind!r} (expected 'hinge' or 'lsgan')")


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]], fake_features: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """MelGAN's feature matching: ``sum_k mean_i |D_k^(i)(x) - D_k^(i)(G(s))|_1`` (mean absolute error per layer).

    ``real_features[k][i]`` is layer ``i`` of sub-discriminator ``k``; real features are detached
    (they are targets; only the generator learns from this loss).
    """
    if len(real_features) != len(fake_features):
        raise ValueError(f"got {len(real_features)} real and {len(fake_features)} fake feature lists; they must pair up")
    total = None
    for real_k, fake_k in zip(real_features, fake_features):
        if len(real_k) != len(fake_k) or not real_k:
            raise ValueError("each sub-discriminator needs the same, non-zero number of real and fake feature maps")
        term = sum(F.l1_loss(f, r.detach()) for r, f in zip(real_k, fake_k)) / len(real_k)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("expected at least one sub-discriminator's features")
    return total
