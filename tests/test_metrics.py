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


def test_lsd_of_a_known_gain_error():
    x = torch.sin(torch.arange(32000) * 0.3) * 0.5  # loud everywhere: the floor never applies at the peak bins
    lsd = log_spectral_distance(x, x * 10 ** (-3 / 20))
    assert 0 < lsd <= 3.0 + 1e-3  # a 3 dB gain error is at most 3 dB in every bin above the floor


def test_mr_stft_metric_takes_reference_first():
    """The metric is (reference, generated); the loss it wraps is (pred, target): the same number."""
    from waveforge.losses.stft import mr_stft_loss_per_item

    torch.manual_seed(0)
    reference = torch.sin(torch.arange(8192) * 0.05)
    generated = 0.3 * reference + 0.05 * torch.randn(8192)
    expected = float(mr_stft_loss_per_item(generated.reshape(1, 1, -1), reference.reshape(1, 1, -1))[0])
    assert mr_stft_distance(reference, generated) == expected
    assert mr_stft_distance(generated, reference) != expected  # spectral convergence divides by the reference
