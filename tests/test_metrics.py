import pytest
import torch

from waveforge.audio import MelConfig
from waveforge.metrics import all_metrics, log_spectral_distance, mr_stft_distance, snr_db


def test_identical_signals_score_perfectly():
    x = torch.randn(16000)
    m = all_metrics(x, x.clone(), MelConfig(sample_rate=16000))
    assert m["mr_stft"] == pytest.approx(0, abs=1e-6)
    assert m["lsd_db"] == pytest.approx(0, abs=1e-4)
    assert m["mel_l1"] == pytest.approx(0, abs=1e-6)
    assert m["snr_db"] > 100


@pytest.mark.parametrize("metric", [mr_stft_distance, log_spectral_distance])
def test_more_noise_scores_worse(metric):
    g = torch.Generator().manual_seed(0)
    x = torch.sin(torch.arange(16000) * 0.05) * 0.5
    near = x + 0.01 * torch.randn(16000, generator=g)
    far = x + 0.2 * torch.randn(16000, generator=g)
    assert metric(x, near) < metric(x, far)


def test_snr_of_known_noise_level():
    x = torch.ones(10000)
    assert snr_db(x, x * 0.9) == pytest.approx(20.0, abs=1e-3)  # noise 0.1 -> 20 dB
