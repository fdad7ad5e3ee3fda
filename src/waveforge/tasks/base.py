"""What every training task shares: the features it was trained on, export, and logging hooks.

A task is the *system* (losses, optimisers, schedules); the ``nn.Module`` it trains is the
*model* and knows nothing of Lightning (STYLE.md item 8).
"""

from __future__ import annotations

from typing import ClassVar

import lightning as L
import torch

from waveforge.features import FeatureConfig, feature_from_dict
from waveforge.inference.modelfile import ModelFile

TASK_KEY = "waveforge_task"


class WaveformTask(L.LightningModule):
    """Base class of the Lightning tasks.

    Args:
        sample_rate: audio rate, linked from the DataModule by ``waveforge fit``.
        feature: the conditioning feature config as a dict (``MelConfig.to_dict()``,
            ``PianoRollConfig.to_dict()``, or ``None`` for unconditional), linked from the DataModule.
    """

    family: ClassVar[str]

    def __init__(self, sample_rate: int = 22050, feature: dict | None = None):
        super().__init__()
        self.sample_rate = sample_rate
        self.feature: FeatureConfig | None = feature_from_dict(feature)
        if self.feature is not None and getattr(self.feature, "sample_rate", sample_rate) != sample_rate:
            raise ValueError(f"feature sample_rate {self.feature.sample_rate} != task sample_rate {sample_rate}")

    @property
    def cond_channels(self) -> int:
        return 0 if self.feature is None else self.feature.channels

    @property
    def hop_length(self) -> int | None:
        return None if self.feature is None else self.feature.hop_length

    def _decided(self) -> dict:
        """The model-config fields the data decides: ``cond_channels``, and ``hop_length`` when conditioned."""
        decided = {"cond_channels": self.cond_channels}
        if self.hop_length is not None:
            decided["hop_length"] = self.hop_length
        return decided

    # -- to override ---------------------------------------------------------------------------
    def model_file(self) -> ModelFile:
        """The inference model, its config and features, ready for ``save_model_file``."""
        raise NotImplementedError

    @torch.no_grad()
    def synthesize(self, cond: torch.Tensor | None, n_samples: int) -> torch.Tensor:
        """``cond (B, C, F)`` (or None) -> ``(B, 1, n_samples)``, used for validation audio logs."""
        raise NotImplementedError

    def model_file_for(self, model: torch.nn.Module, **extra) -> ModelFile:
        """The usual export: ``model``'s config (``model.config.to_dict()``) and weights, with this
        task's features and sample rate."""
        return ModelFile(
            family=self.family,
            model_config=model.config.to_dict(),
            feature=self.feature,
            sample_rate=self.sample_rate,
            state_dict=model.state_dict(),
            extra=extra,
        )

    # -- checkpoint bookkeeping ----------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[TASK_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"
