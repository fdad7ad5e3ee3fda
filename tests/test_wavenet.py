"""WaveNet: cached generation equals the teacher-forced pass; losses, sampling, shapes."""

import numpy as np
import pytest
import torch
from conftest import require_kernel

from waveforge.losses.logistic import discretized_mix_logistic_log_prob, sample_mix_logistic
from waveforge.models.wavenet import WaveNet, WaveNetConfig
from waveforge.nn import CausalConv1d, nucleus_filter

N_STEPS_REFERENCE = 320  # > 20x the tiny receptive field (15): the ring buffers wrap many times
N_STEPS_FAST = 4096


def _model(seed=0, **overrides) -> WaveNet:
    torch.manual_seed(seed)
    model = WaveNet(WaveNetConfig.tiny(**overrides)).eval()
    # random biases so that zero padding vs. cached zeros would show up
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _targets(model: WaveNet, n: int, batch: int = 2):
    torch.manual_seed(1)
    if model.config.output == "mulaw":
        return torch.randint(0, 256, (batch, n))
    return (torch.rand(batch, 1, n) * 2 - 1) * 0.9


def _cached_outputs(model, inputs, cond=None, global_id=None, fast=False):
    """Feed the ground-truth previous sample at each step; collect (B, out, T)."""
    if fast:
        from waveforge.kernels import wavenet as kernel

        return kernel.teacher_forced(model, inputs, cond, global_id)
    cache = model.new_cache(inputs.shape[0], cond, global_id)
    flat = inputs if inputs.dim() == 2 else inputs[:, 0]
    return torch.stack([model.step(flat[:, t], cache) for t in range(flat.shape[-1])], dim=-1)


CASES = {
    "mulaw": dict(output="mulaw"),
    "logistic": dict(output="logistic", n_mixtures=4),
    "mulaw-local-global": dict(output="mulaw", cond_channels=5, n_global=3),
    "logistic-local-global": dict(output="logistic", n_mixtures=4, cond_channels=5, n_global=3),
    "kernel3": dict(output="mulaw", kernel_size=3),
}


# the PyTorch reference loop costs ~1 ms a step: run it on the cases that cover both outputs and conditioning
PAIRS = [(case, True) for case in CASES] + [(case, False) for case in ("mulaw", "mulaw-local-global", "logistic-local-global")]


@pytest.mark.parametrize("case, fast", PAIRS, ids=[f"{'fast' if f else 'reference'}-{c}" for c, f in PAIRS])
def test_cached_steps_equal_full_pass(case, fast):
    if fast:
        from waveforge.kernels import wavenet as kernel

        require_kernel(kernel)
    model = _model(**CASES[case])
    n_steps = N_STEPS_FAST if fast else N_STEPS_REFERENCE
    targets = _targets(model, n_steps)
    inputs = model.shift_right(targets)
    cond = global_id = None
    if model.config.cond_channels:
        cond = torch.randn(2, 5, n_steps // model.config.hop_length)
        global_id = torch.tensor([0, 2])
    with torch.no_grad():
        full = model(inputs, cond, global_id)
        cached = _cached_outputs(model, inputs, cond, global_id, fast=fast)
    assert cached.shape == full.shape == (2, model.config.out_channels, n_steps)
    assert (cached - full).abs().max().item() <= 1e-4


@pytest.mark.parametrize("threads", [1, 2])
def test_fast_batched_steps_equal_full_pass(threads):
    """Batches of several rows per thread go through MKL's packed GEMM (where PyTorch has MKL); 5 rows
    over 2 threads are split 3 + 2, so two packed layouts are used. A second call reuses the cached layouts."""
    from waveforge.kernels import wavenet as kernel

    require_kernel(kernel)
    model = _model(**CASES["mulaw-local-global"])
    n_steps = 256
    targets = _targets(model, n_steps, batch=5)
    inputs = model.shift_right(targets)
    cond = torch.randn(5, 5, n_steps // model.config.hop_length)
    global_id = torch.tensor([0, 2, 1, 1, 0])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            full = model(inputs, cond, global_id)
            for _ in range(2):
                cached = kernel.teacher_forced(model, inputs, cond, global_id)
                assert (cached - full).abs().max().item() <= 1e-4
    finally:
        torch.set_num_threads(previous)


def test_fast_sampler_draws_the_softmax_distribution():
    """The fused loop's inverse-CDF sampler (vectorised float32 exp): uniforms on a fine grid must
    give each class its softmax(logits / T) share, and top-p must renormalise over the nucleus."""
    from waveforge.kernels import wavenet as kernel

    require_kernel(kernel)
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal(256)).astype(np.float32)
    logits[7] = -200.0  # far below the rest: a probability under float32's range, never drawn
    n = 20000
    grid = (np.arange(n) + 0.5) / n
    scratch = np.empty(256, np.float32)
    for temperature in (1.0, 0.7):
        p = np.exp((logits.astype(np.float64) - logits.max()) / temperature)
        p /= p.sum()
        counts = np.bincount([kernel._pick(logits, 256, np.float32(u), temperature, 1.0, scratch) for u in grid], minlength=256)
        assert np.abs(counts / n - p).max() <= 2.0 / n
        assert counts[7] == 0
    # nucleus: the smallest most-likely set with mass >= 0.5, renormalised
    p = np.exp(logits.astype(np.float64) - logits.max())
    p /= p.sum()
    order = np.argsort(-p)
    keep = order[: np.searchsorted(np.cumsum(p[order]), 0.5) + 1]
    q = np.zeros(256)
    q[keep] = p[keep] / p[keep].sum()
    counts = np.bincount([kernel._pick(logits, 256, np.float32(u), 1.0, 0.5, scratch) for u in grid], minlength=256)
    assert np.abs(counts / n - q).max() <= 2.0 / n
    assert kernel._pick(logits, 256, np.float32(0.3), 0.0, 1.0, scratch) == int(np.argmax(logits))


def test_causal_conv_is_causal():
    conv = CausalConv1d(3, 4, kernel_size=2, dilation=4)
    x = torch.randn(1, 3, 32, requires_grad=True)
    conv(x)[0, :, 20].sum().backward()
    touched = (x.grad.abs().sum(1)[0] > 0).nonzero().flatten().tolist()
    assert touched == [16, 20]


def test_receptive_field_and_presets():
    assert WaveNetConfig.tiny().receptive_field == 15
    small = WaveNetConfig.small()
    assert small.receptive_field == 8191 and small.dilations[11] == 2048
    assert WaveNetConfig.paper().receptive_field == 3070
    with pytest.raises(ValueError, match="multiple of cycles"):
        WaveNetConfig(layers=10, cycles=3)
    with pytest.raises(ValueError, match="output"):
        WaveNetConfig(output="raw")


@pytest.mark.slow
def test_paper_size_constructs():
    model = WaveNet(WaveNetConfig.paper())
    n_params = sum(p.numel() for p in model.parameters())
    assert 20e6 < n_params < 40e6
    out = model(torch.zeros(1, 1, 512), torch.zeros(1, 80, 2))
    assert out.shape == (1, 30, 512)


def test_training_step_lowers_loss():
    model = _model(output="mulaw", cond_channels=5).train()
    targets = _targets(model, 256)
    cond = torch.randn(2, 5, 16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        loss = model.loss(model(model.shift_right(targets), cond), targets)
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < losses[0]
    assert model.upsampler.pre.weight.grad.abs().sum() > 0  # gradients reach the conditioning path


def test_mixture_of_logistics_is_a_distribution():
    # summing the probability of every 16-bit level (here 512 levels to keep it fast) gives 1
    n_classes = 512
    params = torch.randn(1, 12, 1)
    levels = torch.linspace(-1, 1, n_classes).view(1, 1, -1)
    log_p = discretized_mix_logistic_log_prob(params.expand(1, 12, n_classes), levels, 4, n_classes)
    assert abs(log_p.exp().sum().item() - 1.0) < 1e-4


def test_mixture_of_logistics_nll_is_non_negative_for_sharp_components():
    # 16-bit bins are narrow: with tiny scales the underflow branch (density x bin width) is used
    params = torch.cat([torch.zeros(1, 2, 64), torch.rand(1, 2, 64) * 2 - 1, torch.full((1, 2, 64), -7.0)], dim=1)
    x = params[:, 2:3] + 1e-4  # near the first component's mean
    log_p = discretized_mix_logistic_log_prob(params, x, 2, 65536)
    assert (log_p <= 0).all()


def test_sampling_controls():
    logits = torch.tensor([[3.0, 2.0, 0.0, -1.0]])
    # p = [0.70, 0.26, 0.03, 0.01]: top_p=0.9 keeps the first two classes
    assert torch.isinf(nucleus_filter(logits, 0.9)).tolist() == [[False, False, True, True]]
    assert torch.isinf(nucleus_filter(logits, 0.5)).tolist() == [[False, True, True, True]]
    params = torch.tensor([[5.0, -5.0, 0.3, -0.6, -3.0, -3.0]])  # 2 mixtures, the first dominant
    greedy = sample_mix_logistic(params, 2, temperature=0.0)
    assert torch.allclose(greedy, torch.tensor([0.3]))
    draws = sample_mix_logistic(params.expand(4000, 6), 2, temperature=1.0, top_p=0.5, generator=torch.Generator().manual_seed(0))
    assert (draws - 0.3).abs().max() < 0.5  # nucleus removed the second component at -0.6


@pytest.mark.parametrize("output", ["mulaw", "logistic"])
def test_generate_shapes_and_range(output):
    model = _model(output=output, n_mixtures=4, cond_channels=5, n_global=3)
    cond = torch.randn(3, 5, 4)
    audio = model.generate(cond=cond, global_id=torch.tensor([0, 1, 2]), backend="reference", top_p=0.9)
    assert audio.shape == (3, 1, 64) and audio.abs().max() <= 1.0
    with pytest.raises(ValueError, match="global_id"):
        model.generate(cond=cond, backend="reference")


# ---------------------------------------------------------------- training task, export, load
MEL = dict(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=8, f_max=4000.0)


def _wavenet_task(output="mulaw", lr=3e-3):
    from waveforge.audio import MelConfig
    from waveforge.tasks.autoregressive import WaveNetTask

    torch.manual_seed(0)
    return WaveNetTask(sample_rate=8000, feature=MelConfig(**MEL).to_dict(), architecture={"preset": "tiny", "output": output, "n_mixtures": 3}, lr=lr)


@pytest.mark.parametrize("output", ["mulaw", "logistic"])
def test_task_training_steps_lower_the_loss(output):
    task = _wavenet_task(output, lr=3e-3 if output == "mulaw" else 3e-4)
    assert task.model.config.cond_channels == 8 and task.model.config.hop_length == 16
    batch = {"audio": 0.5 * torch.sin(torch.arange(256.0) / 5).expand(2, 1, 256).contiguous(), "cond": torch.randn(2, 8, 16)}
    opt = task.configure_optimizers()
    losses = []
    for _ in range(3):
        loss = task._nll(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_export_and_load_round_trip(tmp_path):
    import waveforge
    from waveforge.inference.families import SynthesisOptions
    from waveforge.inference.modelfile import save_model_file

    task = _wavenet_task().eval()
    path = save_model_file(tmp_path / "wavenet.safetensors", task.model_file())
    synth = waveforge.load(path)
    assert synth.family == "wavenet"
    for name, value in task.model.state_dict().items():
        assert torch.equal(synth.model.state_dict()[name], value)
    mel = torch.randn(1, 8, 5)
    a = synth.synthesize(mel, SynthesisOptions(seed=3))
    b = synth.synthesize(mel, SynthesisOptions(seed=3))
    assert a.shape == (1, 1, 80) and torch.equal(a, b)  # seeded sampling is reproducible


def test_falls_back_to_reference_loop_with_a_warning(monkeypatch):
    from waveforge.kernels import wavenet as kernel

    monkeypatch.setattr(kernel, "available", lambda: False)
    monkeypatch.setattr(kernel, "unavailable_reason", lambda: "numba could not be imported (test)")
    model = _model()
    with pytest.warns(RuntimeWarning, match="numba could not be imported"):
        audio = model.generate(32)
    assert audio.shape == (1, 1, 32)
    with pytest.raises(RuntimeError, match="unavailable"):
        model.generate(32, backend="fast")


def test_a_missing_kernel_fails_under_ci_and_skips_elsewhere(monkeypatch):
    from waveforge.kernels import wavenet as kernel

    monkeypatch.setattr(kernel, "available", lambda: False)
    monkeypatch.setattr(kernel, "unavailable_reason", lambda: "numba could not be imported (test)")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unavailable under CI: numba could not be imported"):
        require_kernel(kernel)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="numba could not be imported"):
        require_kernel(kernel)
