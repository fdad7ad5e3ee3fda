"""Spectrogram pictures: the demo's comparison PNG, ``waveforge spectrogram``, the recipe READMEs' images."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

#: Colour range of the log-mel images: the mel floor (log 1e-5) to a loud full-scale piano chord.
LOG_MEL_RANGE = (-11.5, 2.0)


def log_mel_figure(rows: list[tuple[str, torch.Tensor]], sample_rate: int, width: float = 10.0, mels: bool = False):
    """A matplotlib figure with one log-mel image per ``(title, audio (..., T))`` row, stacked, sharing
    the time axis and one colour range (:data:`LOG_MEL_RANGE`); with ``mels``, each row is already a
    ``(n_mels, F)`` log-mel (a notes-to-mel model's output) and is drawn as it is. The caller closes it.

    The mel is the toolkit's analysis mel (:func:`~waveforge.audio.mel.analysis_mel_config`: 80 bands
    up to 8 kHz, hop 256) at ``sample_rate``, so pictures of different models compare directly.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from waveforge.audio.mel import MelSpectrogram, analysis_mel_config

    if not rows:
        raise ValueError("need at least one (title, audio) row")
    config = analysis_mel_config(sample_rate)
    mel = MelSpectrogram(config)
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, 2.2 * len(rows)), sharex=True, squeeze=False)
    for ax, (title, audio) in zip(axes[:, 0], rows):
        with torch.no_grad():
            image = (audio if mels else mel(audio.reshape(1, 1, -1).float())[0]).float().numpy()  # (n_mels, F)
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=LOG_MEL_RANGE[0], vmax=LOG_MEL_RANGE[1])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel(f"frame (hop {config.hop_length} at {sample_rate} Hz)")
    fig.tight_layout()
    return fig


def log_mel_rgb(rows: list[tuple[str, torch.Tensor]], sample_rate: int, mels: bool = False):
    """:func:`log_mel_figure` drawn to an ``(H, W, 3)`` uint8 array (TensorBoard images)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig = log_mel_figure(rows, sample_rate, width=8.0, mels=mels)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def spectrogram_png(path: str | os.PathLike, rows: list[tuple[str, torch.Tensor]], sample_rate: int) -> Path:
    """:func:`log_mel_figure` of ``rows``, written atomically as a PNG."""
    import matplotlib.pyplot as plt

    from waveforge.utils.atomic import atomic_path

    fig = log_mel_figure(rows, sample_rate)
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=90, format="png")
    plt.close(fig)
    # a 64-colour palette: a third of the bytes, which matters for pictures kept beside recipes
    from PIL import Image

    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return path
