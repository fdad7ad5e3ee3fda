"""MelGAN generator and discriminators: shapes, construction checks, weight norm, gradients, training steps."""

from __future__ import annotations

import math

import pytest
import torch

from waveforge.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    hinge_generator_loss,
    multi_resolution_stft_loss,
)
from waveforge.benchmarks.melgan import melgan_generator_flops
from waveforge.models.discriminators import (
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    build_discriminator,
)
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig


# tiny tensors: one intra-op thread avoids barrier stalls on a loaded 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(upsampling: str = "transposed", **kwargs) -> MelGANGenerator:
    config = MelGANGeneratorConfig.tiny(**kwargs)
    config.upsampling = upsampling
    return MelGANGenerator(config)


@pytest.mark.parametrize("upsampling", ["transposed", "nearest"])
@pytest.mark.parametrize("factors", [[4, 4], [8, 4], [5, 3], [2, 3, 2], [4, 1, 2]])
@pytest.mark.parametrize("cond_channels", [80, 264])
def test_generator_output_length_is_frames_times_hop(factors, cond_channels, upsampling):
    torch.manual_seed(0)
    gen = _tiny(upsampling, cond_channels=cond_channels, upsample_factors=factors)
    hop = math.prod(factors)
    for n_frames in (5, 12):
        audio = gen(torch.randn(2, cond_channels, n_frames))
        assert audio.shape == (2, 1, n_frames * hop)
        assert audio.abs().max() < 1  # tanh output


def test_paper_generator_matches_paper_geometry():
    config = MelGANGeneratorConfig.paper()
    gen = MelGANGenerator(config)
    assert config.hop_length == 256 and config.upsample_factors == [8, 8, 2, 2]
    # The MelGAN generator has 4.26 M parameters; about 7.8 GFLOP per second of 22.05 kHz audio.
    assert abs(sum(p.numel() for p in gen.parameters()) / 1e6 - 4.27) < 0.02
    assert abs(melgan_generator_flops(config, 22050 / 256) / 1e9 - 7.78) < 0.05
    with torch.no_grad():
        assert gen(torch.randn(1, 80, 4)).shape == (1, 1, 1024)
    with pytest.raises(ValueError, match="at least 4 conditioning frames"):
        gen(torch.randn(1, 80, 3))
    small = MelGANGenerator(MelGANGeneratorConfig.small(cond_channels=264))
    assert small(torch.randn(1, 264, 4)).shape == (1, 1, 1024)


def test_bad_factors_give_a_clear_error():
    with pytest.raises(ValueError, match=r"multiply to 128, but hop_length is 256"):
        MelGANGeneratorConfig(hop_length=256, upsample_factors=[8, 8, 2])
    with pytest.raises(ValueError, match="divisible by 2\\*\\*4"):
        MelGANGeneratorConfig(hop_length=256, upsample_factors=[4, 4, 4, 4], initial_channels=24)
    with pytest.raises(ValueError, match="positive"):
        MelGANGeneratorConfig(hop_length=0, upsample_factors=[0])


def test_generator_rejects_wrong_cond_channels():
    gen = MelGANGenerator(MelGANGeneratorConfig.tiny(cond_channels=80))
    with pytest.raises(ValueError, match=r"\(B, 80, F\)"):
        gen(torch.randn(1, 264, 4))


def test_config_round_trips_through_dict():
    config = MelGANGeneratorConfig.paper(cond_channels=264)
    assert MelGANGeneratorConfig(**config.to_dict()) == config
    with pytest.raises(ValueError, match="upsampling"):
        MelGANGeneratorConfig(upsampling="bilinear")


def test_nearest_upsampling_flops_count_the_lower_rate_conv():
    config = MelGANGeneratorConfig(initial_channels=128, upsampling="nearest")
    c0 = 128
    expected = 80 * c0 * 7 * 10  # input conv, 10 frames
    channels, length = c0, 10
    for factor in config.upsample_factors:
        expected += channels * (channels // 2) * 3 * length  # width-3 conv before the repeat
        length *= factor
        channels //= 2
        expected += 3 * channels * channels * 5 * length  # three residual units: k=3 + two 1x1
    expected += channels * 7 * length
    assert melgan_generator_flops(config, 10) == 2 * expected


@pytest.mark.parametrize("factors", [[8, 8, 2, 2], [5, 3, 2]])
def test_fresh_generator_has_no_checkerboard_buzz(factors):
    """A constant input (a held chord, silence) must give an output without an hop-periodic pattern at
    initialisation: each transposed conv starts with the same weights for every output phase."""
    torch.manual_seed(0)
    gen = MelGANGenerator(MelGANGeneratorConfig(cond_channels=8, hop_length=math.prod(factors), upsample_factors=factors, initial_channels=64))
    cond = torch.randn(1, 8, 1).expand(1, 8, 40).contiguous()  # the same frame 40 times
    with torch.no_grad():
        out = gen(cond)[0, 0]
    interior = out[10 * gen.hop_length : -10 * gen.hop_length]  # away from the reflection-padded edges
    assert out.abs().max() > 1e-3  # the output is not trivially zero
    assert (interior - interior.mean()).abs().max() <= 1e-5 * out.abs().max()
    # the default initialisation would give a periodic pattern: rerandomise one transposed conv to show it
    with torch.no_grad():
        conv = gen.stages[0].upsample.parametrizations.weight.original1
        conv.copy_(torch.randn_like(conv))
        buzz = gen(cond)[0, 0][10 * gen.hop_length : -10 * gen.hop_length]
    assert (buzz - buzz.mean()).abs().max() > 1e-3 * buzz.abs().max()


@pytest.mark.parametrize("upsampling", ["transposed", "nearest"])
def test_fresh_generator_passes_its_input_through_without_dc(upsampling):
    """At initialisation the output depends on the mel (no vanishing signal through twelve residual
    units), is unsaturated and has no DC offset, though the log-mel input sits around -7."""
    torch.manual_seed(0)
    gen = MelGANGenerator(MelGANGeneratorConfig(initial_channels=128, upsampling=upsampling))
    mel = -7.0 + 3.0 * torch.randn(2, 80, 32)
    with torch.no_grad():
        out = gen(mel)
        other = gen(-7.0 + 3.0 * torch.randn(2, 80, 32))
    assert 0.005 < out.std().item() < 0.3
    assert out.mean().abs().item() < 0.1 * out.std().item()
    assert (out - other).std().item() > 0.5 * out.std().item()


@pytest.mark.parametrize("upsampling", ["transposed", "nearest"])
def test_remove_weight_norm_leaves_outputs_identical(upsampling):
    torch.manual_seed(0)
    gen = _tiny(upsampling, upsample_factors=[4, 2, 2])
    # Move the weight-norm magnitudes away from their initial values so removal has something to fold.
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith("original0"):
                p.mul_(torch.rand_like(p) + 0.5)
    cond = torch.randn(2, 80, 9)
    with torch.no_grad():
        before = gen(cond)
    n_params_before = len(list(gen.parameters()))
    gen.remove_weight_norm()
    assert not any("parametrizations" in name for name, _ in gen.named_parameters())
    assert len(list(gen.parameters())) < n_params_before
    with torch.no_grad():
        after = gen(cond)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


@pytest.mark.parametrize("upsampling", ["transposed", "nearest"])
def test_receptive_field_bound_holds(upsampling):
    """Changing the input outside ``receptive_field_frames`` must not change the middle output frame."""
    torch.manual_seed(0)
    gen = _tiny(upsampling, upsample_factors=[4, 4]).eval()
    rf = gen.receptive_field_frames
    n = 2 * rf + 9
    cond = torch.randn(1, 80, n)
    mid = n // 2
    perturbed = cond.clone()
    perturbed[..., : mid - rf - 1] += 5 * torch.randn_like(perturbed[..., : mid - rf - 1])
    perturbed[..., mid + rf + 2 :] += 5 * torch.randn_like(perturbed[..., mid + rf + 2 :])
    hop = gen.hop_length
    with torch.no_grad():
        a = gen(cond)[..., mid * hop : (mid + 1) * hop]
        b = gen(perturbed)[..., mid * hop : (mid + 1) * hop]
    # Reflection padding can only reach within the receptive field too, so equality is exact up to rounding.
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def _check_output(out: DiscriminatorOutput, batch: int, n_sub: int, n_layers: int | None = None):
    assert isinstance(out, DiscriminatorOutput)
    assert len(out.logits) == len(out.features) == len(out.names) == n_sub
    for logits, feats in zip(out.logits, out.features):
        assert logits.shape[0] == batch
        assert torch.equal(feats[-1].flatten(1), logits.flatten(1))
        assert all(f.shape[0] == batch for f in feats)
        if n_layers is not None:
            assert len(feats) == n_layers


def test_multiscale_discriminator_shapes():
    torch.manual_seed(0)
    msd = MultiScaleDiscriminator.tiny()  # 2 strided layers of stride 4
    out = msd(torch.randn(2, 1, 1024))
    _check_output(out, 2, 3, n_layers=1 + 2 + 1 + 1)
    assert [l.shape for l in out.logits] == [(2, 1, 1024 // 16), (2, 1, 512 // 16), (2, 1, 256 // 16)]
    assert out.names == ["scale1", "scale2", "scale4"]
    # Grouped strided convs as in MelGAN: groups = in_channels / 4.
    strided = msd.discriminators[0].layers[1]
    assert strided.groups == 1 and strided.stride == (4,) and strided.kernel_size == (41,)


def test_paper_multiscale_discriminator_geometry():
    msd = MultiScaleDiscriminator()
    convs = [msd.discriminators[0].layers[i] for i in range(1, 5)]
    assert [c.groups for c in convs] == [4, 16, 64, 256]
    assert [c.out_channels for c in convs] == [64, 256, 1024, 1024]
    out = msd(torch.randn(1, 1, 4096))
    assert [l.shape[-1] for l in out.logits] == [16, 8, 4]
    assert abs(sum(p.numel() for p in msd.parameters()) / 1e6 - 16.9) < 0.1


def test_multiperiod_discriminator_shapes():
    torch.manual_seed(0)
    mpd = MultiPeriodDiscriminator.tiny()
    for length in (999, 1000):  # the second is not a multiple of any period, the first of 3 only
        out = mpd(torch.randn(3, 1, length))
        _check_output(out, 3, 3, n_layers=3 + 1)
        for p, feats in zip(mpd.periods, out.features):
            assert feats[0].shape[-1] == p  # the period axis is preserved through the 2-D convs
    assert out.names == ["period2", "period3", "period5"]
    assert MultiPeriodDiscriminator().periods == [2, 3, 5, 7, 11]


def test_combined_discriminator_concatenates():
    combined = build_discriminator("msd+mpd", size="tiny")
    assert isinstance(combined, CombinedDiscriminator)
    out = combined(torch.randn(1, 1, 600))
    _check_output(out, 1, 6)
    assert out.names[:3] == ["scale1", "scale2", "scale4"] and out.names[3] == "period2"
    with pytest.raises(ValueError, match="unknown discriminator kind"):
        build_discriminator("wavenet")


@pytest.mark.parametrize("kind", ["msd", "mpd"])
def test_gradients_reach_generator_through_discriminator(kind):
    torch.manual_seed(0)
    gen = MelGANGenerator(MelGANGeneratorConfig.tiny(upsample_factors=[4, 4]))
    disc = build_discriminator(kind, size="tiny")
    fake = gen(torch.randn(2, 80, 20))
    out = disc(fake)
    loss = hinge_generator_loss(out.logits) + feature_matching_loss(disc(torch.randn_like(fake)).features, out.features)
    loss.backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind,objective", [("msd", "hinge"), ("mpd", "lsgan")])
def test_one_optimiser_step_lowers_generator_and_discriminator_losses(kind, objective):
    """On a fixed batch, one Adam step of D lowers L_D and one step of G lowers L_G (each with the other fixed)."""
    torch.manual_seed(0)
    gen = MelGANGenerator(MelGANGeneratorConfig.tiny(upsample_factors=[4, 4]))
    disc = build_discriminator(kind, size="tiny")
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.9))
    cond = torch.randn(2, 80, 32)
    real = 0.5 * torch.sin(torch.linspace(0, 200, 512)).expand(2, 1, 512).contiguous()

    def d_loss():
        with torch.no_grad():
            fake = gen(cond)
        return discriminator_loss(disc(real).logits, disc(fake).logits, objective)

    def g_loss():
        fake = gen(cond)
        real_out, fake_out = disc(real), disc(fake)
        return (
            generator_loss(fake_out.logits, objective)
            + 10 * feature_matching_loss(real_out.features, fake_out.features)
            + multi_resolution_stft_loss(fake, real, resolutions=[(128, 32, 128), (256, 64, 256)]).total
        )

    before = d_loss()
    opt_d.zero_grad()
    before.backward()
    opt_d.step()
    assert d_loss().item() < before.item()

    before = g_loss()
    opt_g.zero_grad()
    before.backward()
    opt_g.step()
    assert g_loss().item() < before.item()


@pytest.mark.slow
def test_paper_discriminators_construct_and_run():
    """HiFi-GAN's MPD (41.1 M parameters) and MelGAN's MSD together on a training crop of 8192 samples."""
    disc = build_discriminator("msd+mpd")
    n_params = sum(p.numel() for p in disc.discriminators[1].parameters())
    assert abs(n_params / 1e6 - 41.1) < 0.1
    audio = torch.randn(2, 1, 8192, requires_grad=True)
    out = disc(audio)
    assert len(out.logits) == 8
    sum(l.mean() for l in out.logits).backward()
    assert audio.grad is not None and audio.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# The phase-integrating stft head
# ---------------------------------------------------------------------------------------------


def _stft_generator(**kwargs) -> MelGANGenerator:
    config = dict(cond_channels=80, hop_length=16, upsample_factors=[2, 2], initial_channels=32, upsampling="nearest", output="stft", n_fft=16)
    config.update(kwargs)
    return MelGANGenerator(MelGANGeneratorConfig(**config))


def test_stft_head_config_checks():
    with pytest.raises(ValueError, match="does not divide hop_length 256"):
        MelGANGeneratorConfig(upsample_factors=[3], output="stft")
    with pytest.raises(ValueError, match="n_fft must be even and at least twice"):
        MelGANGeneratorConfig(upsample_factors=[1], output="stft", n_fft=300)
    with pytest.raises(ValueError, match="output must be one of"):
        MelGANGeneratorConfig(output="mdct")
    with pytest.raises(ValueError, match="does not divide"):
        MelGANGeneratorConfig(upsample_factors=[3], output="sines")
    with pytest.raises(ValueError, match="n_fft must be at least 6"):
        MelGANGeneratorConfig(hop_length=2, upsample_factors=[1], output="sines", n_fft=4)
    MelGANGeneratorConfig(hop_length=2, upsample_factors=[1], output="sines", n_fft=6)  # the smallest: lobes fold once
    config = MelGANGeneratorConfig(upsample_factors=[1, 1], upsampling="nearest", output="stft", n_fft=1024)
    assert config.stft_hop == 256 and MelGANGeneratorConfig(**config.to_dict()) == config


def test_stft_head_overlap_add_inverts_the_feature_framing():
    """The heads' inverse STFT is the exact inverse of the mel features' hop-aligned STFT, and the
    stft head synthesises a spectrum given as its log magnitude and phase back into the audio."""
    from waveforge.audio.mel import hop_aligned_pad
    from waveforge.audio.stft import hop_aligned_istft, hop_aligned_stft

    gen = MelGANGenerator(MelGANGeneratorConfig(upsample_factors=[1], upsampling="nearest", output="stft", n_fft=1024))
    torch.manual_seed(0)
    audio = torch.randn(2, 1, 40 * 256)
    window = torch.hann_window(1024)
    spec = hop_aligned_stft(audio.reshape(2, -1), 1024, 256, window)
    assert spec.shape == (2, 513, 40)
    expected = torch.stft(hop_aligned_pad(audio.reshape(2, -1), 1024, 256), 1024, 256, 1024, window, center=False, return_complex=True)
    torch.testing.assert_close(spec, expected, rtol=0, atol=0)
    again = hop_aligned_istft(spec, 256, window)
    assert again.shape == audio.shape
    torch.testing.assert_close(again, audio, rtol=0, atol=1e-5)
    through_head = gen.head.synthesize(spec.abs().clamp_min(1e-12).log(), torch.zeros_like(spec.real), spec.angle())
    torch.testing.assert_close(through_head, audio, rtol=0, atol=1e-4)


@pytest.mark.parametrize("head, f", [("stft", 440.0), ("sines", 440.0), ("sines", 30.0), ("sines", 11000.0)])
def test_spectral_heads_hold_a_partial_between_the_hop_harmonics(head, f):
    """A constant input (a held note) gives a sinusoid at the frequency the head's increments say,
    440 Hz, which a hop-periodic waveform head cannot make (its lines are at multiples of 86.13 Hz).
    For sines also 30 Hz and 11 kHz, 1.4 bins from 0 Hz and 1.3 from Nyquist, where the lobe
    meets its negative-frequency image: the amplitude is still the predicted one."""
    sr, hop, n_fft = 22050, 256, 1024
    gen = MelGANGenerator(MelGANGeneratorConfig(upsample_factors=[1], upsampling="nearest", output=head, n_fft=n_fft))
    gen.remove_weight_norm()
    n_bins = n_fft // 2 + 1
    centre = f * n_fft / sr  # 20.43 bins at 440 Hz
    low, high = math.log(1e-5), math.log(100.0)
    target_log_magnitude = torch.full((n_bins,), low + 1e-3)
    target_deviation = torch.zeros(n_bins)
    # stft: the Hann main lobe's bins, all advancing at 440 Hz; sines: the one nearest oscillator
    bins = range(int(centre) - 1, int(centre) + 3) if head == "stft" else [round(centre)]
    for k in bins:
        target_log_magnitude[k] = math.log(10.0)
        wanted = 2 * math.pi * f * hop / sr - 2 * math.pi * k * hop / n_fft
        target_deviation[k] = math.atanh(math.remainder(wanted, 2 * math.pi) / gen.head.max_deviation)
    with torch.no_grad():
        gen.output_conv.weight.zero_()
        p = (target_log_magnitude - low) / (high - low)
        gen.output_conv.bias.copy_(torch.cat([torch.log(p / (1 - p)), target_deviation]))
        audio = gen(torch.full((1, 80, 400), -5.0))[0, 0, 20 * hop : -20 * hop].double()
    spectrum = torch.fft.rfft(audio * torch.hann_window(audio.shape[-1], dtype=audio.dtype)).abs().square()
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1 / sr)
    assert abs(float(freqs[spectrum.argmax()]) - f) < 1.0
    assert spectrum[(freqs - f).abs() < 5].sum() > 0.99 * spectrum.sum()
    if head == "sines":  # a steady sinusoid whose peak STFT bin is 10: amplitude 10 * 4 / n_fft
        t = torch.arange(audio.shape[-1], dtype=audio.dtype)
        basis = torch.stack([torch.cos(2 * math.pi * f * t / sr), torch.sin(2 * math.pi * f * t / sr)], dim=1)
        fit = torch.linalg.lstsq(basis, audio[:, None]).solution
        assert abs(float(fit.norm()) / (40 / n_fft) - 1) < 2e-3
        # and nothing else, to within the lobe sidelobes past SINE_TAPS that the head leaves out
        assert (audio - basis @ fit[:, 0]).abs().max() < 1e-2 * 40 / n_fft
    else:
        assert audio.abs().max() > 0.01


def test_hann_transform_is_the_window_spectrum():
    """``hann_transform`` is the DFT of a Hann-windowed sinusoid (positive-frequency part), phase included."""
    from waveforge.audio.stft import hann_transform

    n, kappa, theta = 1024, 37.37, 0.7
    t = torch.arange(n, dtype=torch.float64)
    spectrum = torch.fft.rfft(torch.exp(1j * (2 * math.pi * kappa * t / n + theta)).real * 2 * torch.hann_window(n, dtype=torch.float64))
    # the complex exponential's own transform: (n / 2) exp(i theta) W(j - kappa), plus the negative
    # frequency's image, which is small this far from 0 Hz
    predicted = (n / 2) * math.e ** (1j * theta) * hann_transform(torch.arange(n // 2 + 1, dtype=torch.float64) - kappa, n)
    lobe = slice(int(kappa) - 3, int(kappa) + 4)
    assert (spectrum[lobe] - predicted[lobe]).abs().max() < 2e-3 * spectrum.abs().max()
    assert abs(float(hann_transform(torch.zeros(1, dtype=torch.float64), n).abs()) - 1) < 1e-12


def test_hann_lobe_is_the_hann_transform_at_each_tap():
    """The sines head's shared-factor form equals the kernel-by-kernel transform, near whole bins too."""
    from waveforge.audio.stft import hann_lobe, hann_transform

    n, taps = 1024, 3
    g = torch.Generator().manual_seed(0)
    u = torch.cat([torch.rand(4000, generator=g, dtype=torch.float64) * 1.998 - 0.999,
                   torch.tensor([0.0, 1e-6, -1e-6, 2e-4, 0.99999, -0.99999, 0.5], dtype=torch.float64)])
    by_kernel = torch.stack([hann_transform(m - u, n) for m in range(-taps, taps + 1)])
    factor, weights = hann_lobe(u, n, taps)
    assert float((factor * weights - by_kernel).abs().max()) < 1e-12
    factor32, weights32 = hann_lobe(u.float(), n, taps)
    assert float((factor32 * weights32 - by_kernel.to(torch.complex64)).abs().max()) < 2e-6  # float32: no worse than rounding
    u_grad = torch.tensor([0.0, 1e-6, 0.3], dtype=torch.float64, requires_grad=True)
    factor, weights = hann_lobe(u_grad, n, taps)
    (factor * weights).abs().sum().backward()
    assert bool(torch.isfinite(u_grad.grad).all())  # the whole-bin branch leaves the gradient finite


@pytest.mark.parametrize("head", ["stft", "sines"])
def test_spectral_heads_receptive_field_bound_holds(head):
    torch.manual_seed(0)
    gen = _stft_generator(output=head).eval()
    rf = gen.receptive_field_frames
    n = 2 * rf + 9
    cond = torch.randn(1, 80, n)
    mid, hop = n // 2, gen.hop_length
    perturbed = cond.clone()
    perturbed[..., mid + rf + 2 :] += 5 * torch.randn_like(perturbed[..., mid + rf + 2 :])
    with torch.no_grad():
        a, b = gen(cond), gen(perturbed)
    # later frames cannot move earlier phases (the running sum is causal), so only the right side is checked
    torch.testing.assert_close(a[..., mid * hop : (mid + 1) * hop], b[..., mid * hop : (mid + 1) * hop], rtol=0, atol=1e-6)
    assert (a - b).abs().max() > 1e-3  # the perturbation did reach the output


@pytest.mark.parametrize("head", ["stft", "sines"])
def test_spectral_heads_chunked_synthesis_carries_the_phase(head):
    """Chunks of a long input join into the whole-input result: each starts from the running phase
    its predecessor reached (dropping the carry breaks it, which the last assertion checks)."""
    from waveforge.inference.families import SynthesisOptions
    from waveforge.inference.families.melgan import ADAPTER

    torch.manual_seed(0)
    gen = _stft_generator(output=head)
    with torch.no_grad():  # large phase deviations, so the increments differ from bin to bin and frame to frame
        gen.output_conv.parametrizations.weight.original0.mul_(20)
    gen.remove_weight_norm().eval()
    cond = torch.randn(1, 80, 300)
    options = SynthesisOptions()
    context = ADAPTER.context_frames(gen)
    assert context >= gen.receptive_field_frames
    with torch.no_grad():
        whole = ADAPTER.synthesize(gen, cond, 300 * 16, options)
        chunked = torch.cat(list(ADAPTER.synthesize_chunked(gen, cond, gen.hop_length, 64, context, options)), dim=-1)
    assert whole.shape == chunked.shape == (1, 1, 300 * 16)
    assert whole.abs().max() > 1e-2
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    with torch.no_grad():  # without the carried phase, the second chunk would restart at pi * k
        restarted = ADAPTER.synthesize(gen, cond[..., 64 - context :], (300 - 64 + context) * 16, options)[..., context * 16 : (context + 64) * 16]
    assert (restarted - whole[..., 64 * 16 : 128 * 16]).abs().max() > 1e-3


def _projecting_generator(iterations: int = 3, **kwargs) -> MelGANGenerator:
    """A small frame-rate sines generator whose mel (8 bands, n_fft 32, hop 16 at 8 kHz) it projects onto."""
    from waveforge.audio.mel import MelConfig

    mel = MelConfig(sample_rate=8000, n_fft=32, hop_length=16, win_length=32, n_mels=8, f_min=0.0, f_max=4000.0)
    config = dict(cond_channels=8, hop_length=16, upsample_factors=[1], initial_channels=32, upsampling="nearest",
                  output="sines", n_fft=32, mel_projection=iterations, mel={k: v for k, v in mel.to_dict().items() if k != "kind"})
    config.update(kwargs)
    return MelGANGenerator(MelGANGeneratorConfig(**config))


def test_mel_projection_config_checks():
    mel = _projecting_generator().config.mel
    with pytest.raises(ValueError, match="needs output 'stft' or 'sines' and upsample_factors of 1"):
        MelGANGeneratorConfig(mel_projection=2, mel=mel)
    with pytest.raises(ValueError, match="upsample_factors of 1"):
        _projecting_generator(upsample_factors=[2], hop_length=16)
    with pytest.raises(ValueError, match="needs the conditioning's mel settings"):
        _projecting_generator(mel=None)
    with pytest.raises(ValueError, match="the mel's n_fft to be the generator's 64"):
        _projecting_generator(n_fft=64)
    assert _projecting_generator(iterations=0).config.mel_projection == 0  # off: the mel is not needed


def test_mel_projection_gives_the_output_the_conditioning_mel():
    """The projected audio's mel is the mel it was given, where the raw head's is far from it; the
    projection leaves phases alone and costs its filterbank products in the bench's FLOP count."""
    from waveforge.audio.mel import MelConfig, MelSpectrogram
    from waveforge.models.spectral_heads import project_to_mel

    torch.manual_seed(0)
    gen = _projecting_generator().eval()
    raw = _projecting_generator(iterations=0)
    raw.load_state_dict(gen.state_dict())
    analysis = MelSpectrogram(MelConfig(**gen.config.mel))
    t = torch.arange(16 * 64) / 8000  # a mel some real audio has: two partials and a decay
    audio = (0.3 * torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.sin(2 * math.pi * 1900 * t)) * torch.exp(-3 * t)
    cond = analysis(audio.reshape(1, 1, -1))
    with torch.no_grad():
        projected, unprojected = gen(cond), raw(cond)
    inner = slice(4, -4)  # away from the edges' reflection padding
    # an untrained head's frames do not overlap-add consistently, so the audio keeps some error
    assert (analysis(projected) - cond)[..., inner].abs().mean() < 0.35 * (analysis(unprojected) - cond)[..., inner].abs().mean()
    # the frames themselves converge to any mel some spectrum has, and keep their phases
    fb = gen.mel_filterbank
    spectrum = torch.polar(torch.rand(1, 17, 5) + 0.1, torch.rand(1, 17, 5) * 6)
    target = torch.log(fb @ (4 * torch.rand(1, 17, 5)))
    out = project_to_mel(spectrum, target, fb, 30, 1e-5)
    assert (torch.log(fb @ spectrum.abs()) - target).abs().max() > 0.5
    torch.testing.assert_close(torch.log(fb @ out.abs()), target, rtol=0, atol=0.02)
    torch.testing.assert_close(torch.angle(out), torch.angle(spectrum))
    assert melgan_generator_flops(gen.config, 10) > melgan_generator_flops(raw.config, 10)


def test_mel_projection_chunked_equals_whole():
    from waveforge.inference.families import SynthesisOptions
    from waveforge.inference.families.melgan import ADAPTER

    torch.manual_seed(0)
    gen = _projecting_generator().remove_weight_norm().eval()
    cond = torch.randn(1, 8, 300) - 3.0
    context = ADAPTER.context_frames(gen)
    with torch.no_grad():
        whole = ADAPTER.synthesize(gen, cond, 300 * 16, SynthesisOptions())
        chunked = torch.cat(list(ADAPTER.synthesize_chunked(gen, cond, 16, 64, context, SynthesisOptions())), dim=-1)
    assert whole.abs().max() > 1e-2
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
