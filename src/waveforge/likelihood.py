"""Held-out likelihood in bits per sample, for the families that define one, beside simple baselines.

A likelihood is only comparable with another of the same kind, so every figure says its kind:

* ``mulaw-8``: a discrete distribution over the 256 mu-law classes (WaveNet, SampleRNN);
* ``linear-16``: over the 65,536 linear 16-bit levels (WaveNet with a logistic mixture);
* ``continuous``: a density over audio in [-1, 1] (WaveGlow); it is negative for audio this narrow.

The baselines are fitted on the training split and scored on the same test audio as the model:

* ``unigram``: the histogram of mu-law classes, with add-one smoothing. For a density it is the
  piecewise-constant density on the same 256 mu-law bins.
* ``linear_predictor``: an order-32 least-squares linear predictor of the next sample from the
  past (the past the model sees: mu-law-decoded for ``mulaw-8``), with a Laplace residual whose
  scale is fitted on the training split. For discrete kinds its mass on each bin is the Laplace
  probability of the bin's interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from waveforge.audio.mulaw import mu_law_decode, mu_law_encode

__all__ = ["LikelihoodKind", "Baselines", "fit_baselines", "bin_edges", "laplace_bin_log_prob"]

LPC_ORDER = 32
#: probability floor for the baselines, so one sample outside the fitted range costs at most ~40 bits
MASS_FLOOR = 1e-12


@dataclass(frozen=True)
class LikelihoodKind:
    """What a model's likelihood is over: ``"mulaw"`` classes, ``"linear"`` levels, or ``"continuous"``."""

    name: str
    bits: int = 8

    @property
    def label(self) -> str:
        return "continuous" if self.name == "continuous" else f"{self.name}-{self.bits}"

    def classes(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio in [-1, 1] -> integer class of each sample (discrete kinds)."""
        if self.name == "mulaw":
            return mu_law_encode(audio, self.bits)
        n = 2**self.bits
        return ((audio.clamp(-1, 1) + 1) / 2 * (n - 1)).round().long()

    def values(self, classes: torch.Tensor) -> torch.Tensor:
        """Class -> the audio value the model sees as input."""
        if self.name == "mulaw":
            return mu_law_decode(classes, self.bits)
        return classes.float() / (2**self.bits - 1) * 2 - 1


def bin_edges(kind: LikelihoodKind) -> np.ndarray:
    """``(2**bits + 1,)`` edges in audio units of each class's interval; the outer edges are +-inf."""
    n = 2**kind.bits
    mu = n - 1
    y = (np.arange(n + 1) - 0.5) / mu * 2 - 1  # edges in the class's own (companded or linear) domain
    if kind.name == "mulaw":
        y = np.clip(y, -1, 1)
        x = np.sign(y) * np.expm1(np.abs(y) * math.log1p(mu)) / mu
    else:
        x = y
    x[0], x[-1] = -np.inf, np.inf
    return x.astype(np.float64)


def _laplace_cdf(x: np.ndarray, scale: float) -> np.ndarray:
    return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / scale), 1 - 0.5 * np.exp(-np.maximum(x, 0) / scale))


def laplace_bin_log_prob(pred: np.ndarray, classes: np.ndarray, edges: np.ndarray, scale: float) -> np.ndarray:
    """log P(class) when the value is ``pred`` + Laplace(0, scale) noise, floored at ``MASS_FLOOR``."""
    lo = _laplace_cdf(edges[classes] - pred, scale)
    hi = _laplace_cdf(edges[classes + 1] - pred, scale)
    return np.log(np.maximum(hi - lo, MASS_FLOOR))


def _lagged(x: np.ndarray, order: int) -> np.ndarray:
    """``(T,)`` -> ``(T, order)``: row ``t`` holds ``x[t-1], ..., x[t-order]`` (zeros before the start)."""
    padded = np.concatenate([np.zeros(order, dtype=np.float64), x.astype(np.float64)])
    return np.lib.stride_tricks.sliding_window_view(padded[:-1], order)[:, ::-1]


@dataclass
class Baselines:
    """Baselines fitted on training audio, for one :class:`LikelihoodKind`."""

    kind: LikelihoodKind
    unigram_log_prob: np.ndarray  # (256,) log P(mu-law class)
    lpc: np.ndarray  # (LPC_ORDER,) predictor coefficients, newest sample first
    laplace_scale: float

    def _inputs(self, audio: np.ndarray) -> np.ndarray:
        if self.kind.name == "continuous":
            return audio.astype(np.float64)
        return self.kind.values(self.kind.classes(torch.from_numpy(audio))).numpy().astype(np.float64)

    def unigram_nats(self, audio: np.ndarray) -> float:
        """Total NLL (nats) of ``audio (T,)`` under the unigram baseline."""
        mu_classes = mu_law_encode(torch.from_numpy(audio), 8).numpy()
        log_p = self.unigram_log_prob[mu_classes]
        if self.kind.name == "continuous":  # piecewise-constant density on the mu-law bins
            edges = np.clip(bin_edges(LikelihoodKind("mulaw", 8)), -1, 1)
            return float(-(log_p - np.log(np.diff(edges)[mu_classes])).sum())
        if self.kind.label != "mulaw-8":  # spread each mu-law bin's mass evenly over its finer classes
            fine_of_mu = np.bincount(mu_law_encode(self.kind.values(torch.arange(2**self.kind.bits)), 8).numpy(), minlength=256)
            return float(-(log_p - np.log(np.maximum(fine_of_mu[mu_classes], 1))).sum())
        return float(-log_p.sum())

    def linear_predictor_nats(self, audio: np.ndarray) -> float:
        """Total NLL (nats) of ``audio (T,)`` under the linear predictor with Laplace residuals."""
        inputs = self._inputs(audio)
        pred = _lagged(inputs, LPC_ORDER) @ self.lpc
        if self.kind.name == "continuous":
            b = self.laplace_scale
            return float((np.abs(audio - pred) / b + math.log(2 * b)).sum())
        classes = self.kind.classes(torch.from_numpy(audio)).numpy()
        return float(-laplace_bin_log_prob(pred, classes, bin_edges(self.kind), self.laplace_scale).sum())


def fit_baselines(train_audio: list[np.ndarray], kind: LikelihoodKind) -> Baselines:
    """Fit the unigram and the linear predictor on training pieces (each ``(T,)`` float in [-1, 1])."""
    if not train_audio:
        raise ValueError("fit_baselines needs at least one training piece")
    counts = np.ones(256)  # add-one smoothing
    xtx = np.zeros((LPC_ORDER, LPC_ORDER))
    xty = np.zeros(LPC_ORDER)
    stub = Baselines(kind, np.zeros(256), np.zeros(LPC_ORDER), 1.0)
    for audio in train_audio:
        counts += np.bincount(mu_law_encode(torch.from_numpy(audio), 8).numpy(), minlength=256)
        lagged = _lagged(stub._inputs(audio), LPC_ORDER)
        xtx += lagged.T @ lagged
        xty += lagged.T @ audio.astype(np.float64)
    lpc = np.linalg.solve(xtx + 1e-6 * np.trace(xtx) / LPC_ORDER * np.eye(LPC_ORDER), xty)
    residual_sum, n = 0.0, 0
    for audio in train_audio:
        residual_sum += float(np.abs(audio - _lagged(stub._inputs(audio), LPC_ORDER) @ lpc).sum())
        n += audio.size
    scale = max(residual_sum / n, 1e-6)  # the maximum-likelihood Laplace scale is the mean |residual|
    return Baselines(kind, np.log(counts / counts.sum()), lpc, scale)
