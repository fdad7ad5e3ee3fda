"""Spectrogram pictures: the demo's comparison PNG, ``waveforge spectrogram``, the recipe READMEs' images."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

#: Colour range of the log-mel images: the mel floor (log 1e-5) to a loud full-scale piano chord.
LOG_MEL_RANGE = (-11.5, 2.0)


def spectrogram_png(path: str | os.PathLike, rows: list[tuple[str, torch.Tensor]], sample_rate: int) -> Path:
    """One log-mel image per ``(title, audio (..., T))`` row, stacked, with a shared time axis; written atomically.

    The mel is the toolkit's default analysis (80 bands up to 8 kHz, hop 256) at ``sample_rate``,
    so pictures of different models compare directly.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from waveforge.audio.mel import MelConfig, MelSpectrogram
    from waveforge.utils.atomic import atomic_path

    if not rows:
        raise ValueError("need at least one (title, audio) row")
    mel = MelSpectrogram(MelConfig(sample_rate=sample_rate, f_max=min(8000.0, sample_rate / 2)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), sharex=True, squeeze=False)
    for ax, (title, audio) in zip(axes[:, 0], rows):
        image = mel(audio.reshape(1, 1, -1).float())[0].numpy()  # (n_mels, F)
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=LOG_MEL_RANGE[0], vmax=LOG_MEL_RANGE[1])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel(f"frame (hop 256 at {sample_rate} Hz)")
    fig.tight_layout()
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
