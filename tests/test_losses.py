"""GAN objectives, feature matching, multi-resolution STFT and mel L1 losses."""

from __future__ import annotations

import math

import pytest
import torch

from waveforge.audio import MelConfig, MelSpectrogram
from waveforge.losses import (
    MultiResolutionSTFTLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    log_spectral_distance_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    mel_l1_loss,
    mr_stft_loss_per_item,
    multi_resolution_stft_loss,
    stft_loss_terms,
)


# tiny tensors: one intra-op thread avoids barrier stalls on a loaded 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


def test_hinge_losses_on_hand_computed_values():
    real = [torch.tensor([2.0, 0.5, -1.0]), torch.tensor([[0.0]])]
    fake = [torch.tensor([-2.0, 0.0, 1.0]), torch.tensor([[-0.5]])]
    # scale 0: relu(1 - real) = [0, .5, 2] -> 5/6; relu(1 + fake) = [0, 1, 2] -> 1
    # scale 1: relu(1 - 0) = 1; relu(1 - .5) = .5
    expected_d = 5 / 6 + 1 + 1 + 0.5
    torch.testing.assert_close(hinge_discriminator_loss(real, fake), torch.tensor(expected_d))
    # generator: -mean(fake) summed: -(-1/3) + 0.5
    torch.testing.assert_close(hinge_generator_loss(fake), torch.tensor(1 / 3 + 0.5))
    assert discriminator_loss(real, fake, "hinge") == hinge_discriminator_loss(real, fake)
    # A perfect discriminator (real >= 1, fake <= -1) has zero hinge loss.
    assert hinge_discriminator_loss([torch.tensor([1.0, 3.0])], [torch.tensor([-1.0, -7.0])]).item() == 0.0


def test_lsgan_losses_on_hand_computed_values():
    real = [torch.tensor([1.0, 3.0]), torch.tensor([0.0])]
    fake = [torch.tensor([0.0, 2.0]), torch.tensor([1.0])]
    # D: scale 0: mean((r-1)^2) = (0 + 4)/2 = 2, mean(f^2) = (0 + 4)/2 = 2; scale 1: 1 + 1
    torch.testing.assert_close(lsgan_discriminator_loss(real, fake), torch.tensor(6.0))
    # G: scale 0: mean((f-1)^2) = (1 + 1)/2 = 1; scale 1: 0
    torch.testing.assert_close(lsgan_generator_loss(fake), torch.tensor(1.0))
    assert generator_loss(fake, "lsgan") == lsgan_generator_loss(fake)
    # Optimal targets give zero.
    assert lsgan_discriminator_loss([torch.ones(4)], [torch.zeros(4)]).item() == 0.0
    assert lsgan_generator_loss([torch.ones(4)]).item() == 0.0


def test_gan_loss_argument_checks():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss([torch.zeros(1)], "wasserstein")
    with pytest.raises(ValueError, match="pair up"):
        hinge_discriminator_loss([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)])


def test_feature_matching_zero_for_identical_and_hand_value_otherwise():
    torch.manual_seed(0)
    feats = [[torch.randn(2, 4, 8), torch.randn(2, 1, 8)], [torch.randn(2, 3)]]
    assert feature_matching_loss(feats, [[f.clone() for f in k] for k in feats]).item() == 0.0
    shifted = [[f + 0.5 for f in feats[0]], [feats[1][0] - 2.0]]
    # mean over layers of L1 per sub-discriminator, summed: 0.5 + 2.0
    torch.testing.assert_close(feature_matching_loss(feats, shifted), torch.tensor(2.5))


def test_feature_matching_does_not_train_the_real_branch():
    real = torch.randn(3, requires_grad=True)
    fake = torch.randn(3, requires_grad=True)
    feature_matching_loss([[real]], [[fake]]).backward()
    assert real.grad is None and fake.grad is not None and fake.grad.abs().sum() > 0


def _tone(n: int = 8192, freq: float = 440.0, sr: int = 22050) -> torch.Tensor:
    t = torch.arange(n) / sr
    return (0.5 * torch.sin(2 * torch.pi * freq * t) + 0.2 * torch.sin(2 * torch.pi * 3.1 * freq * t)).view(1, 1, n)


def test_mr_stft_zero_for_identical_positive_otherwise():
    x = _tone().repeat(2, 1, 1)
    result = multi_resolution_stft_loss(x, x.clone())
    assert result.spectral_convergence.item() == 0.0 and result.log_magnitude.item() == 0.0
    noisy = x + 0.01 * torch.randn_like(x)
    assert multi_resolution_stft_loss(noisy, x).total.item() > 0


def test_mr_stft_grows_with_noise_and_is_nearly_symmetric():
    torch.manual_seed(0)
    x = _tone()
    noise = torch.randn_like(x)
    distances = [mr_stft_loss_per_item(x + level * noise, x).item() for level in (0.001, 0.01, 0.1, 0.5)]
    assert distances == sorted(distances) and distances[0] > 0
    y = x + 0.05 * noise
    forward, backward = mr_stft_loss_per_item(y, x).item(), mr_stft_loss_per_item(x, y).item()
    # The log-magnitude term is symmetric; only the spectral-convergence normaliser differs.
    assert abs(forward - backward) < 0.25 * max(forward, backward)
    d = mr_stft_loss_per_item(torch.cat([x, y]), torch.cat([x, x]))
    assert d.shape == (2,) and d[0].item() == 0.0 and d[1].item() > 0


def test_stft_loss_terms_hand_checked_for_scaled_signal():
    """Scaling a signal by a: SC = |1 - a| exactly and log-magnitude L1 = |log a| (where above the floor)."""
    torch.manual_seed(0)
    x = 0.3 * torch.randn(1, 1, 4096)  # white noise: every bin well above the magnitude floor
    window = torch.hann_window(512)
    sc, mag = stft_loss_terms(0.5 * x, x, 512, 128, 512, window)
    torch.testing.assert_close(sc, torch.tensor([0.5]), atol=1e-4, rtol=0)
    # sqrt(|S|^2 + 1e-9) inside stft_magnitude bends the ratio only for near-silent bins
    assert abs(mag.item() - torch.log(torch.tensor(2.0)).item()) < 1e-3


def test_log_spectral_distance_loss_hand_checked_and_finite_on_silence():
    """Scaling by 2 is 6.02 dB in every bin above the floor; the metric is the loss at eps 0; two
    silent inputs (every bin at the floor) still give finite gradients."""
    from waveforge.metrics import log_spectral_distance

    torch.manual_seed(0)
    x = 0.3 * torch.randn(2, 1, 8192)
    lsd = log_spectral_distance_loss(2 * x, x, eps=0.0)
    torch.testing.assert_close(lsd, torch.full((2,), 20 * math.log10(2)), atol=1e-3, rtol=0)
    assert abs(log_spectral_distance(x[0], 2 * x[0]) - 20 * math.log10(2)) < 1e-3
    assert log_spectral_distance_loss(x, x).max() < 0.011  # sqrt(eps)
    silent = torch.zeros(2, 1, 8192, requires_grad=True)
    log_spectral_distance_loss(silent, torch.zeros(2, 1, 8192)).sum().backward()
    assert torch.isfinite(silent.grad).all()
    quiet = (0.1 * x).requires_grad_()
    log_spectral_distance_loss(quiet, x).sum().backward()
    assert torch.isfinite(quiet.grad).all() and quiet.grad.abs().sum() > 0


def test_training_loss_normalises_spectral_convergence_over_the_batch():
    """A near-silent crop in the batch must not dominate: SC is ||dS|| / ||S|| over the whole batch."""
    torch.manual_seed(0)
    loud = 0.3 * torch.randn(1, 1, 4096)
    quiet = 1e-3 * torch.randn(1, 1, 4096)
    target = torch.cat([loud, quiet])
    pred = torch.cat([0.5 * loud, torch.zeros_like(quiet)])
    window = torch.hann_window(512)
    sc_items, _ = stft_loss_terms(pred, target, 512, 128, 512, window, per_item=True)
    sc_batch, _ = stft_loss_terms(pred, target, 512, 128, 512, window, per_item=False)
    assert sc_items.shape == (2,) and sc_batch.shape == ()
    assert sc_items[1].item() > 0.99  # the quiet item's own SC is ~1 whatever its scale
    # over the batch, the silent item's error is negligible beside the loud one's: SC ~ 0.5
    torch.testing.assert_close(sc_batch, torch.tensor(0.5), atol=1e-3, rtol=0)
    loss = multi_resolution_stft_loss(pred, target)
    assert loss.spectral_convergence.shape == () and abs(loss.spectral_convergence.item() - 0.5) < 0.01


def test_mr_stft_module_matches_function_and_has_gradients():
    torch.manual_seed(0)
    target = _tone(4096)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    module = MultiResolutionSTFTLoss()
    assert len(list(module.buffers())) == 3
    loss = module(pred, target)
    torch.testing.assert_close(loss.total, multi_resolution_stft_loss(pred, target).total)
    loss.total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same shape"):
        module(pred[..., :-1], target)


def test_mel_l1_zero_for_identical_positive_otherwise():
    mel = MelSpectrogram(MelConfig())
    x = _tone(4096)
    assert mel_l1_loss(x, x.clone(), mel).item() == 0.0
    assert mel_l1_loss(x + 0.05 * torch.randn_like(x), x, mel).item() > 0
    assert mel_l1_loss(0.5 * x, x, mel).item() > 0
