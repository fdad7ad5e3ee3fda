"""``waveforge spectrogram``: log-mel pictures of wav files, and its bad-input path."""

import numpy as np
import soundfile as sf

from waveforge.cli import main


def _wav(path, seconds=1.0, rate=22050, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


def test_spectrogram_writes_one_png_with_a_row_per_file(tmp_path, capsys):
    from PIL import Image

    a, b = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav", freq=880.0)
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert main(["spectrogram", str(a), "-o", str(one)]) == 0
    assert main(["spectrogram", str(a), str(b), "-o", str(two), "--title", "low, 440 Hz", "--title", "high", "--seconds", "0.5"]) == 0
    assert str(two) in capsys.readouterr().out
    h1, h2 = Image.open(one).size[1], Image.open(two).size[1]
    assert h2 > 1.8 * h1  # two stacked rows


def test_spectrogram_of_a_non_audio_file_fails_cleanly(tmp_path, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    out = tmp_path / "s.png"
    assert main(["spectrogram", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("waveforge: error:") and "notes.wav" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(["spectrogram", str(_wav(tmp_path / "a.wav")), "-o", str(out), "--title", "x", "--title", "y"]) == 2
    assert not out.exists()


def test_training_images_are_the_same_log_mel_figure():
    """The TensorBoard callback's image is plots.log_mel_figure drawn to RGB: two rows, and the row
    that holds a tone is brighter than the silent one."""
    import torch

    from waveforge.plots import log_mel_rgb
    from waveforge.tasks.callbacks import _mel_image

    t = torch.arange(22050) / 22050
    tone, silence = 0.3 * torch.sin(2 * torch.pi * 440 * t), torch.zeros(22050)
    image = _mel_image(tone, silence, 22050)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert np.array_equal(image, log_mel_rgb([("reference", tone), ("generated", silence)], 22050))
    rows = np.flatnonzero(image.std(axis=(1, 2)) > 0)  # drawn rows
    top, bottom = image[: image.shape[0] // 2], image[image.shape[0] // 2 :]
    assert len(rows) > 0 and top.astype(float).mean() != bottom.astype(float).mean()
