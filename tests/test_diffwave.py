"""DiffWave backbone: shapes, conditioning paths, receptive field, gradients, one training step."""

from __future__ import annotations

import pytest
import torch

from waveforge.diffusion import Denoiser, rand_log_normal
from waveforge.models import DiffWave, DiffWaveConfig


def _model(cond_channels=8, hop=16, dtype=torch.float64, seed=0) -> DiffWave:
    torch.manual_seed(seed)
    model = DiffWave(DiffWaveConfig.tiny(cond_channels=cond_channels, hop_length=hop)).to(dtype)
    torch.nn.init.normal_(model.final_proj.weight, std=0.5)  # zero at init (DiffWave); make the output depend on x
    torch.nn.init.normal_(model.skip_bias, std=0.1)
    torch.nn.init.normal_(model.dilated_bias, std=0.1)
    if model.conditional:
        torch.nn.init.normal_(model.null_cond)
    return model


def test_shapes_conditional_and_unconditional():
    model = _model()
    x, cond, c_noise = torch.randn(3, 1, 80, dtype=torch.float64), torch.randn(3, 8, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    assert model(x, c_noise, cond).shape == (3, 1, 80)
    uncond = _model(cond_channels=0)
    assert not uncond.conditional and uncond(x, c_noise, None).shape == (3, 1, 80)
    with pytest.raises(ValueError, match="unconditional"):
        uncond(x, c_noise, cond)
    with pytest.raises(ValueError, match="cond must be"):
        model(x, c_noise, torch.randn(3, 7, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="samples but cond covers"):
        model(x, c_noise, torch.randn(3, 8, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="cond is required"):
        model(x, c_noise, None)


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="odd"):
        DiffWave(DiffWaveConfig(kernel_size=2, cond_channels=0))
    with pytest.raises(ValueError, match="hop_length"):
        DiffWave(DiffWaveConfig(cond_channels=4, hop_length=0))
    with pytest.raises(ValueError, match="cond_channels"):
        DiffWave(DiffWaveConfig(cond_channels=-1))


def test_prepared_conditioning_equals_the_raw_path_and_inference_equals_training_pass():
    model = _model()
    x, cond, c_noise = torch.randn(2, 1, 64, dtype=torch.float64), torch.randn(2, 8, 4, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    reference = model(x, c_noise, cond)  # grad enabled: out-of-place path, per-layer projection of u
    uncond = _model(cond_channels=0)
    uncond_reference = uncond(x, c_noise)
    for precompute in (True, False):  # the explicit sampling pass (in place), with or without autograd around it
        for block_rows in (None, 24):  # whole signal; time blocks (64 = 24 + 24 + 16)
            model.inference_block_rows = block_rows
            prepared = model.prepare(cond, precompute_layers=precompute, sampling=True)
            assert (prepared.layers is not None) == precompute
            torch.testing.assert_close(model.sampling_pass(x, c_noise, prepared), reference, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(model.for_sampling()(x, c_noise, cond), reference, rtol=1e-12, atol=1e-12)
    for block_rows in (None, 7):
        uncond.inference_block_rows = block_rows
        torch.testing.assert_close(uncond.sampling_pass(x, c_noise), uncond_reference, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # forward is the training pass whatever the grad mode
        torch.testing.assert_close(model(x, c_noise, cond), reference, rtol=1e-12, atol=1e-12)
    assert reference.abs().max() > 1e-3
    assert model.sampling_pass(x, c_noise, cond).grad_fn is None and reference.grad_fn is not None


def test_condition_noise_level_and_null_condition_change_the_output():
    model = _model()
    x, cond = torch.randn(1, 1, 64, dtype=torch.float64), torch.randn(1, 8, 4, dtype=torch.float64)
    c_noise = torch.zeros(1, dtype=torch.float64)
    with torch.no_grad():
        base = model(x, c_noise, cond)
        assert (model(x, c_noise, cond + 1) - base).abs().max() > 1e-4
        assert (model(x, c_noise + 0.5, cond) - base).abs().max() > 1e-4
        dropped = model(x, c_noise, model.prepare(cond, drop=torch.tensor([True])))
        null = model(x, c_noise, model.null_cond.expand(1, 8, 4))
        torch.testing.assert_close(dropped, null, rtol=0, atol=0)
        assert (dropped - base).abs().max() > 1e-4


def test_non_causal_receptive_field_is_exact():
    model = _model(cond_channels=0)
    rf = model.receptive_field()  # tiny: dilations 1, 2, 1, 2 with kernel 3 -> 6 samples each side
    assert rf == 6
    x = torch.randn(1, 1, 64, dtype=torch.float64, requires_grad=True)
    model(x, torch.zeros(1, dtype=torch.float64))[0, 0, 32].backward()
    reach = (x.grad[0, 0] != 0).nonzero().flatten()
    assert reach.min().item() == 32 - rf and reach.max().item() == 32 + rf  # sees the future as well as the past


def test_gradient_reaches_every_parameter_and_one_step_lowers_the_loss():
    model = _model(dtype=torch.float32)
    den = Denoiser(model, "v")
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 1, 64, generator=g) * 0.3
    cond = torch.randn(4, 8, 4, generator=g)
    sigma = rand_log_normal((4,), generator=g)
    noise = torch.randn(4, 1, 64, generator=g)
    drop = torch.tensor([False, True, False, True])  # classifier-free guidance dropout reaches null_cond
    loss = den.loss(x0, model.prepare(cond, drop, precompute_layers=False), sigma, noise).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    opt.step()
    with torch.no_grad():
        after = den.loss(x0, model.prepare(cond, drop, precompute_layers=False), sigma, noise).mean()
    assert after < loss


def test_flop_count_matches_the_layer_arithmetic():
    model = DiffWave(DiffWaveConfig.paper())
    R, L = 64, 30
    per_layer = 2 * 3 * R * 2 * R + 2 * R * 2 * R
    assert model.flops_per_sample() == L * per_layer + 2 * R + 2 * R * R + 2 * R
    assert model.flops_per_sample(precomputed_cond=False) == model.flops_per_sample() + L * 2 * 80 * 2 * R


def test_paper_configurations_construct_and_run():
    base = DiffWave(DiffWaveConfig.paper())  # vocoder: 64 channels, 30 layers, cycle 10, 80 mels, hop 256
    assert base.dilations[:10] == [2**i for i in range(10)] and len(base.dilations) == 30
    assert 2.5e6 < sum(p.numel() for p in base.parameters()) < 4.5e6
    assert base.receptive_field() == 3 * 1023
    with torch.inference_mode():
        y = base(torch.randn(1, 1, 512), torch.zeros(1), torch.randn(1, 80, 2))
    assert y.shape == (1, 1, 512)
    large = DiffWave(DiffWaveConfig.preset("large"))  # unconditional: 128 channels, 36 layers, cycle 12
    assert not large.conditional and len(large.dilations) == 36 and max(large.dilations) == 2048
