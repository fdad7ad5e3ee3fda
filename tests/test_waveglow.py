"""WaveGlow: invertibility, exact log-determinants, likelihood training, inverse caching, shapes."""

from __future__ import annotations

import math

import pytest
import torch

from waveforge.losses.flow import flow_nll
from waveforge.models.waveglow import (
    CouplingWN,
    Invertible1x1Conv,
    WaveGlow,
    WaveGlowConfig,
    squeeze,
    unsqueeze,
    waveglow_flops_per_sample,
)


# tiny tensors: one intra-op thread avoids barrier stalls on a loaded 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


def _nontrivial(model: WaveGlow, std: float = 0.2, seed: int = 0) -> WaveGlow:
    """Re-initialise the zero-initialised coupling outputs so every coupling really scales and shifts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CouplingWN):
                m.end.weight.copy_(torch.randn(m.end.weight.shape, generator=g) * std)
                m.end.bias.copy_(torch.randn(m.end.bias.shape, generator=g) * std)
    return model


def _tiny(seed: int = 0, **kw) -> WaveGlow:
    torch.manual_seed(seed)
    return _nontrivial(WaveGlow(WaveGlowConfig.tiny(**kw)), seed=seed)


def test_squeeze_roundtrip_and_layout():
    x = torch.arange(2 * 1 * 12, dtype=torch.float32).view(2, 1, 12)
    s = squeeze(x, 4)
    assert s.shape == (2, 4, 3)
    assert torch.equal(s[0, :, 0], torch.tensor([0.0, 1.0, 2.0, 3.0]))  # one group = 4 consecutive samples
    assert torch.equal(unsqueeze(s, 4), x)


@pytest.mark.parametrize("lu", [False, True])
def test_x_to_z_to_x_reconstructs(lu):
    model = _tiny(lu_decomposed=lu).eval()
    audio = torch.randn(3, 1, 16 * 24) * 0.5
    cond = torch.randn(3, 8, 24)
    with torch.no_grad():
        out = model(audio, cond)
        # the couplings are far from identity: z differs from the squeezed input by O(1)
        assert (out.z - squeeze(audio, 4)).abs().max() > 0.1
        assert out.log_det.abs().min() > 1.0
        back = model.reverse(out.z, cond)
    assert back.shape == audio.shape
    assert (back - audio).abs().max().item() <= 1e-4


@pytest.mark.parametrize("lu", [False, True])
def test_log_det_equals_brute_force_jacobian(lu):
    model = _tiny(seed=1, lu_decomposed=lu).double()
    cond = torch.randn(1, 8, 2, dtype=torch.float64)
    audio = torch.randn(1, 1, 32, dtype=torch.float64) * 0.5

    def to_z(flat):
        return model(flat.view(1, 1, -1), cond).z.reshape(-1)

    jac = torch.autograd.functional.jacobian(to_z, audio.reshape(-1), vectorize=True)  # (32, 32)
    sign, brute = torch.linalg.slogdet(jac)
    assert sign != 0
    log_det = model(audio, cond).log_det
    assert log_det.shape == (1,)
    assert abs(brute.item()) > 1.0  # the test would notice a missing term
    assert torch.allclose(log_det[0], brute, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("lu", [False, True])
def test_time_major_inference_path_equals_module_path(lu):
    from waveforge.kernels import waveglow as kernel

    model = _tiny(seed=5, lu_decomposed=lu, n_layers=3).eval()  # 3 layers: dilations 1, 2, 4 > some lengths' edges
    z = torch.randn(2, 4, 40)
    cond = torch.randn(2, 8, 10)
    reference = model.reverse(z, cond)  # the default backend: through the modules
    with torch.inference_mode():
        fast = model.reverse(z, cond, backend="fast")  # kernels.waveglow: the time-major GEMM path
        assert model.couplings[0] in kernel._CACHE
    assert torch.allclose(fast, reference, atol=1e-5), (fast - reference).abs().max()
    # weight updates reach the fast path (its rearranged weights are cached like the inverses)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        assert torch.allclose(model.reverse(z, cond, backend="fast"), model.reverse(z, cond), atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        model.reverse(z, cond, backend="numba")


def test_invertible_1x1_lu_matrix_matches_log_det():
    conv = Invertible1x1Conv(6, lu_decomposed=True)
    with torch.no_grad():
        conv.log_abs_s.add_(torch.linspace(-0.5, 0.5, 6))
    w = conv.matrix().double()
    assert torch.allclose(conv.log_abs_det().double(), torch.linalg.slogdet(w)[1], atol=1e-5)
    assert torch.allclose(torch.diagonal(conv.lower.detach() * conv.lower_mask + torch.eye(6)), torch.ones(6))


def test_nll_decreases_when_overfitting_one_clip():
    torch.manual_seed(0)
    model = WaveGlow(WaveGlowConfig.tiny())
    t = torch.arange(16 * 16, dtype=torch.float32)
    audio = (0.4 * torch.sin(2 * math.pi * 440 * t / 22050) + 0.01 * torch.randn_like(t)).view(1, 1, -1)
    cond = torch.randn(1, 8, 16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(audio, cond)
        nll = flow_nll(out.z, out.log_det, sigma=model.config.sigma)
        opt.zero_grad()
        nll.loss.backward()
        opt.step()
        losses.append(nll.loss.item())
    assert torch.isclose(nll.bits_per_sample, nll.nats_per_sample / math.log(2))
    assert losses[-1] < losses[0] - 0.5, losses  # nats per sample


def test_flow_nll_matches_gaussian_log_prob():
    z = torch.randn(2, 4, 8)
    log_det = torch.tensor([0.3, -1.2])
    sigma = 0.7
    expected = -(torch.distributions.Normal(0.0, sigma).log_prob(z).sum() + log_det.sum()) / z.numel()
    assert torch.allclose(flow_nll(z, log_det, sigma).loss, expected, atol=1e-6)


def test_inverse_cache_is_reused_then_invalidated_by_updates():
    model = _tiny(seed=2).eval()
    conv = model.convinv[0]
    audio = torch.randn(1, 1, 16 * 8) * 0.5
    cond = torch.randn(1, 8, 8)
    with torch.inference_mode():
        model.infer(cond)
    first = conv.inverse_matrix()
    assert conv._inverse_cache is not None
    assert conv.inverse_matrix() is first  # cache hit while the weights are unchanged

    # one optimiser step, still in eval mode: the cache must notice the in-place update
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(audio, cond)
    flow_nll(out.z, out.log_det).loss.backward()
    w_before = conv.weight.detach().clone()
    opt.step()
    assert not torch.equal(conv.weight.detach(), w_before)
    second = conv.inverse_matrix()
    assert second is not first
    assert torch.allclose(second @ conv.weight.detach(), torch.eye(conv.channels), atol=1e-5)
    with torch.no_grad():
        back = model.reverse(model(audio, cond).z, cond)
    assert (back - audio).abs().max().item() <= 1e-4

    # load_state_dict copies in place and train() clears the cache outright
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["convinv.0.weight"] = torch.linalg.qr(torch.randn(4, 4))[0]
    model.load_state_dict(state)
    assert torch.allclose(conv.inverse_matrix() @ conv.weight.detach(), torch.eye(4), atol=1e-5)
    model.train()
    assert all(c._inverse_cache is None for c in model.convinv)


def test_lu_inverse_cache_invalidated_by_update():
    model = _tiny(seed=3, lu_decomposed=True).eval()
    conv = model.convinv[1]
    first = conv.inverse_matrix()
    with torch.no_grad():
        conv.log_abs_s.add_(0.3)
    second = conv.inverse_matrix()
    assert not torch.allclose(first, second)
    assert torch.allclose(second @ conv.matrix().detach(), torch.eye(conv.channels), atol=1e-5)


@pytest.mark.parametrize("cond_channels", [80, 264])
def test_shapes_with_mel_and_piano_roll_conditioning(cond_channels):
    torch.manual_seed(0)
    model = _nontrivial(WaveGlow(WaveGlowConfig.tiny(cond_channels=cond_channels, hop_length=256, n_group=8,
                                                     n_early_size=2)))
    n_frames = 3
    audio = torch.randn(2, 1, n_frames * 256) * 0.3
    cond = torch.randn(2, cond_channels, n_frames, requires_grad=True)
    out = model(audio, cond)
    assert out.z.shape == (2, 8, n_frames * 256 // 8)
    assert out.log_det.shape == (2,)
    flow_nll(out.z, out.log_det).loss.backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0  # conditioning reaches the likelihood
    with torch.inference_mode():
        assert model.eval().infer(cond.detach(), sigma=0.6).shape == (2, 1, n_frames * 256)
    with pytest.raises(ValueError, match="cond must be"):
        model(audio, torch.randn(2, cond_channels + 1, n_frames))
    with pytest.raises(ValueError, match="frames x hop"):
        model(audio, torch.randn(2, cond_channels, n_frames + 1))


def test_remove_weight_norm_keeps_the_function():
    model = _tiny(seed=4).eval()
    audio = torch.randn(1, 1, 16 * 6) * 0.5
    cond = torch.randn(1, 8, 6)
    with torch.no_grad():
        before = model(audio, cond).z
        model.remove_weight_norm()
        after = model(audio, cond).z
    assert not any("parametrizations" in k for k in model.state_dict())
    assert torch.allclose(before, after, atol=1e-5)


def test_config_invariants_are_checked():
    with pytest.raises(ValueError, match="multiple of n_group"):
        WaveGlow(WaveGlowConfig.tiny(hop_length=18))
    with pytest.raises(ValueError, match="even number"):
        WaveGlow(WaveGlowConfig.tiny(n_early_size=1))
    with pytest.raises(ValueError, match="odd"):
        WaveGlow(WaveGlowConfig.tiny(kernel_size=4))


def test_paper_flops_match_published_figure():
    # ~1,440 GFLOP per second of 22.05 kHz audio for the published configuration
    assert abs(waveglow_flops_per_sample(WaveGlowConfig.paper()) * 22050 / 1e9 - 1440) < 15
    assert waveglow_flops_per_sample(WaveGlowConfig.small()) * 100 < waveglow_flops_per_sample(WaveGlowConfig.paper())


@pytest.mark.slow
@pytest.mark.parametrize("cond_channels", [80, 264])
def test_paper_config_constructs_and_runs(cond_channels):
    cfg = WaveGlowConfig.paper(cond_channels=cond_channels)
    assert (cfg.n_flows, cfg.n_layers, cfg.n_channels, cfg.n_group, cfg.n_early_every, cfg.n_early_size) == (12, 8, 512, 8, 4, 2)
    model = WaveGlow(cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    # 12 flows x (8 dilated 512->1024 convs + 1x1 res/skip + 640->8192 conditioning) ~ 262M; the widely
    # used 88M checkpoint is the 256-channel variant
    assert 255e6 < n_params < 270e6, n_params
    cond = torch.randn(1, cond_channels, 2)
    with torch.inference_mode():
        audio = model.remove_weight_norm().infer(cond)
    assert audio.shape == (1, 1, 512) and torch.isfinite(audio).all()


def test_chunked_infer_equals_whole_input():
    model = _tiny(seed=6).eval()
    cond = torch.randn(1, 8, 3 * model.receptive_field_frames + 5)
    with torch.inference_mode():
        whole = model.infer(cond, sigma=0.6, generator=torch.Generator().manual_seed(1))
        chunked = model.infer(cond, sigma=0.6, generator=torch.Generator().manual_seed(1), chunk_frames=7)
        # too little context would show: chunking without it changes the output
        context = model.receptive_field_frames
        z = torch.randn(1, 4, cond.shape[-1] * 4, generator=torch.Generator().manual_seed(1)) * 0.6
        cut = model.reverse(z[..., : 12 * 4], cond[..., :12])
    assert chunked.shape == whole.shape == (1, 1, cond.shape[-1] * 16)
    assert (chunked - whole).abs().max() < 1e-4
    assert (cut - whole[..., : 12 * 16]).abs().max() > 1e-3 and context > 2
