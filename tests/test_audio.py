import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from waveforge.audio import (
    MelConfig,
    MelSpectrogram,
    audio_info,
    griffin_lim,
    load_audio,
    mel_filterbank,
    mu_law_decode,
    mu_law_encode,
    save_audio,
)
from waveforge.errors import BadInputError


@pytest.mark.parametrize("bits", [8, 10, 16])
def test_mu_law_round_trip_within_quantisation(bits):
    x = torch.linspace(-1, 1, 5001)
    classes = mu_law_encode(x, bits)
    assert classes.dtype == torch.int64 and classes.min() >= 0 and classes.max() < 2**bits
    y = mu_law_decode(classes, bits)
    # the mu-law step is widest at full scale: d/dq of the inverse curve at |x| = 1
    mu = 2**bits - 1
    max_step = (np.log1p(mu) / mu) * (1 + mu) / (2**bits / 2)
    assert (x - y).abs().max() <= max_step
    # and re-encoding the decoded value is exact
    assert torch.equal(mu_law_encode(y, bits), classes)


def test_mu_law_is_finer_near_zero():
    x = torch.tensor([0.001, 0.9])
    err = (mu_law_decode(mu_law_encode(x)) - x).abs()
    assert err[0] < err[1]


@pytest.mark.parametrize("hop,n_fft", [(256, 1024), (200, 800), (300, 1200), (275, 1024)])
@pytest.mark.parametrize("length", [22050, 22050 + 77, 5000])
def test_mel_frame_count_is_exact(hop, n_fft, length):
    cfg = MelConfig(sample_rate=22050, n_fft=n_fft, hop_length=hop, win_length=n_fft)
    mel = MelSpectrogram(cfg)(torch.randn(2, 1, length))
    assert mel.shape == (2, cfg.n_mels, length // hop)


def test_mel_filterbank_matches_librosa():
    cfg = MelConfig(sample_rate=22050, n_fft=1024, n_mels=80, f_min=0.0, f_max=8000.0)
    ours = mel_filterbank(cfg).numpy()
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0, htk=False, norm="slaney")
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=1e-4)


def test_mel_matches_librosa_on_the_same_frames():
    cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, win_length=512, n_mels=40, f_max=8000.0)
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    ours = MelSpectrogram(cfg)(torch.from_numpy(x)[None, None])[0].numpy()
    pad = (cfg.n_fft - cfg.hop_length) // 2
    padded = np.pad(x, (pad, pad), mode="reflect")
    ref = librosa.feature.melspectrogram(
        y=padded, sr=16000, n_fft=512, hop_length=128, win_length=512, center=False, power=1.0, n_mels=40, fmax=8000.0, norm="slaney", htk=False
    )
    ref = np.log(np.maximum(ref, cfg.log_floor))
    assert ours.shape == ref.shape == (40, 16000 // 128)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_mel_frame_is_centred_on_its_hop():
    cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, win_length=512, n_mels=40)
    x = torch.zeros(1, 1, 128 * 20)
    x[..., 128 * 10 : 128 * 11] = torch.randn(128)  # energy only in hop 10
    mel = MelSpectrogram(cfg)(x)[0].exp().sum(0)
    assert int(mel.argmax()) == 10


def test_config_rejects_f_max_above_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        MelConfig(sample_rate=16000, f_max=9000.0)


def test_griffin_lim_reconstructs_spectrally(tmp_path):
    cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, win_length=512, n_mels=64, f_max=8000.0)
    t = torch.arange(16000) / 16000
    x = 0.5 * torch.sin(2 * torch.pi * 330 * t) * torch.exp(-2 * t)
    mel_fn = MelSpectrogram(cfg)
    mel = mel_fn(x[None, None])
    y = griffin_lim(mel[0], cfg, n_iter=32)
    assert y.shape == (16000 // 128 * 128,)
    err = (mel_fn(y[None, None]) - mel).abs().mean()
    noise_err = (mel_fn(0.1 * torch.randn(1, 1, y.shape[-1])) - mel).abs().mean()
    assert err < 0.5 * noise_err


def test_load_audio_mixes_to_mono_and_resamples(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1).astype(np.float32) * 0.5
    path = tmp_path / "s.flac"
    sf.write(path, stereo, sr)
    y = load_audio(path, 22050)
    assert y.shape == (1, 22050)
    assert abs(float(y.abs().max()) - 0.5) < 0.02
    window = load_audio(path, None, offset=1000, frames=500)
    assert window.shape == (1, 500)
    assert audio_info(path).channels == 2


def test_save_audio_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "out.wav"
    x = 0.25 * torch.sin(torch.linspace(0, 100, 16000))[None]
    save_audio(path, x, 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temporary left behind
    y = load_audio(path)
    assert torch.allclose(x, y, atol=1e-4)


def test_save_audio_failure_leaves_no_partial_file(tmp_path):
    path = tmp_path / "bad.wav"
    with pytest.raises(ValueError):
        save_audio(path, np.zeros((2, 3, 4)), 16000)
    assert list(tmp_path.iterdir()) == []


def test_truncated_wav_is_rejected(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=r"cut\.wav: truncated"):
        load_audio(path)


def test_text_file_named_wav_is_rejected(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(BadInputError, match=r"notes\.wav: not a readable audio file"):
        load_audio(path)


def test_mel_band_centres_are_where_the_filters_peak():
    from waveforge.audio.mel import MelConfig, mel_band_hz, mel_filterbank

    config = MelConfig()
    centres = mel_band_hz(config.n_mels, config.f_min, config.f_max)
    bin_hz = config.sample_rate / config.n_fft
    peaks = mel_filterbank(config).argmax(dim=1).float() * bin_hz  # (n_mels,) each filter's loudest bin
    assert centres.shape == (config.n_mels,) and bool((centres[1:] > centres[:-1]).all())
    assert float((peaks - centres).abs().max()) <= bin_hz  # within one STFT bin of the triangle's apex
