"""TensorBoard audio and spectrogram logging at each validation, from a callback."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from waveforge.audio.mel import MelSpectrogram


class AudioLogger(L.Callback):
    """Logs ``n_examples`` validation clips: the reference once, then the model's output and a
    reference-vs-generated log-mel image at every validation.

    The task must implement ``synthesize(cond, n_samples)`` (see ``WaveformTask``).
    """

    def __init__(self, n_examples: int = 2, max_seconds: float = 4.0):
        self.n_examples = n_examples
        self.max_seconds = max_seconds
        self._batch: dict | None = None
        self._logged_reference = False

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0:
            self._batch = {k: v[: self.n_examples].detach() for k, v in batch.items() if isinstance(v, torch.Tensor)}

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module):
        if self._batch is None or trainer.sanity_checking or self.n_examples <= 0:
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_audio"):
            return
        sr = pl_module.sample_rate
        audio = self._batch["audio"]
        n_samples = min(audio.shape[-1], int(self.max_seconds * sr))
        cond = self._batch.get("cond")
        hop = pl_module.hop_length
        if cond is not None and cond.numel() > 0 and hop:
            n_frames = n_samples // hop
            cond, n_samples = cond[..., :n_frames], n_frames * hop
        else:
            cond = None
        audio = audio[..., :n_samples]
        was_training = pl_module.training
        pl_module.eval()
        try:
            fake = pl_module.synthesize(cond.to(pl_module.device) if cond is not None else None, n_samples).float().cpu()
            # a notes-to-mel task's own output is a mel: draw it, not the mel of its Griffin-Lim audio
            mels = (pl_module.synthesize_mel(cond.to(pl_module.device)).float().cpu()
                    if hasattr(pl_module, "synthesize_mel") and cond is not None else None)
        finally:
            pl_module.train(was_training)
        step = trainer.global_step
        for i in range(min(self.n_examples, fake.shape[0])):
            if not self._logged_reference:
                experiment.add_audio(f"reference/{i}", audio[i].float().cpu().clamp(-1, 1), step, sr)
            experiment.add_audio(f"generated/{i}", fake[i].clamp(-1, 1), step, sr)
            if mels is not None:
                reference_mel = MelSpectrogram(pl_module.mel_config)(audio[i].float().cpu().reshape(1, 1, -1))[0]
                image = _mel_image(audio[i].float().cpu(), fake[i], sr, mels=(reference_mel, mels[i]))
            else:
                image = _mel_image(audio[i].float().cpu(), fake[i], sr)
            experiment.add_image(f"mel/{i}", image, step, dataformats="HWC")
        self._logged_reference = True


def _mel_image(reference: torch.Tensor, generated: torch.Tensor, sample_rate: int, mels: tuple | None = None):
    """Reference (top) and generated (bottom) log-mel, as an RGB array; ``mels`` (two ``(n_mels, F)``
    log-mels) are drawn instead of the audio's when given."""
    from waveforge.plots import log_mel_rgb

    if mels is not None:
        return log_mel_rgb([("reference", mels[0]), ("generated", mels[1])], sample_rate, mels=True)
    return log_mel_rgb([("reference", reference), ("generated", generated)], sample_rate)
