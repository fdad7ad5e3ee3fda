"""SampleRNN: generation fed the ground truth reproduces the training pass; TBPTT state carry; shapes."""

import pytest
import torch
from conftest import require_kernel

from waveforge.models.samplernn import SampleRNN, SampleRNNConfig


def _model(**overrides) -> SampleRNN:
    torch.manual_seed(0)
    model = SampleRNN(SampleRNNConfig.tiny(**overrides)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-zero learned initial states too
    return model


def _teacher_forced_steps(model: SampleRNN, targets: torch.Tensor, cond=None) -> torch.Tensor:
    state = model.new_state(targets.shape[0], cond, targets.shape[1])
    logits = []
    for t in range(targets.shape[1]):
        logits.append(model.step(state))
        model.push(state, targets[:, t])
    return torch.stack(logits, dim=-1)  # (B, 256, T)


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("conditioned", [False, True], ids=["unconditional", "local-cond"])
def test_generation_with_ground_truth_reproduces_training_pass(conditioned, fast):
    from waveforge.kernels import samplernn as kernel

    if fast:
        require_kernel(kernel)
    model = _model(cond_channels=5 if conditioned else 0)
    fs1 = model.config.top_frame_size
    torch.manual_seed(1)
    targets = torch.randint(0, 256, (2, 256))
    cond = torch.randn(2, 5, 256 // model.config.hop_length) if conditioned else None
    samples = torch.cat([torch.full((2, fs1), model.silence), targets], dim=1)
    with torch.no_grad():
        full = model(samples, cond=cond).logits
        stepped = kernel.teacher_forced(model, targets, cond) if fast else _teacher_forced_steps(model, targets, cond)
    assert full.shape == stepped.shape == (2, 256, 256)
    assert (full - stepped).abs().max().item() <= 1e-4
    if fast:  # one stream takes the folded tier inputs (no packed GEMM): top and middle unconditioned, middle conditioned
        single = kernel.teacher_forced(model, targets[:1], cond[:1] if conditioned else None)
        assert (full[:1] - single).abs().max().item() <= 1e-4


def _teacher_forced_case(batch: int = 3):
    """A conditioned tiny model, ground-truth targets ``(batch, 256)``, cond, and the training pass's logits."""
    model = _model(cond_channels=5)
    torch.manual_seed(1)
    targets = torch.randint(0, 256, (batch, 256))
    cond = torch.randn(batch, 5, 256 // model.config.hop_length)
    samples = torch.cat([torch.full((batch, model.config.top_frame_size), model.silence), targets], dim=1)
    with torch.no_grad():
        full = model(samples, cond=cond).logits
    return model, targets, cond, full


@pytest.mark.parametrize("use_mkl", [True, False], ids=["mkl-if-available", "np.dot"])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_fast_path_threads_split_columns_exactly(n_threads, use_mkl, monkeypatch):
    """Every thread count (3: uneven column blocks, more threads than some blocks have 16-column
    lines) and both batched product routines reproduce the training pass, at batch 3 with cond."""
    from waveforge.kernels import primitives
    from waveforge.kernels import samplernn as kernel

    require_kernel(kernel)
    if not use_mkl:
        monkeypatch.setattr(primitives, "mkl", lambda: None)
    model, targets, cond, full = _teacher_forced_case()
    stepped = kernel.teacher_forced(model, targets, cond, n_threads=n_threads)
    assert (full - stepped).abs().max().item() <= 1e-4


def test_fast_generation_is_deterministic_and_independent_of_threads():
    """A fixed generator seed gives the same samples on every run and for any thread count (each
    output column is computed by one thread, in the same order whatever the split)."""
    from waveforge.kernels import samplernn as kernel

    require_kernel(kernel)
    model = _model(cond_channels=5)
    cond = torch.randn(3, 5, 4)
    for batch in (1, 3):
        runs = [
            kernel.generate(model, 128, cond[:batch], 0.9, 0.95, batch, torch.Generator().manual_seed(7), n_threads=t)
            for t in (1, 2, 2, 3)
        ]
        assert runs[0].shape == (batch, 128)
        assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_float16_weights_are_close_and_auto_picks_them_where_bandwidth_bounds(monkeypatch):
    """weights="float16" stores the large matrices in float16 with float32 accumulation: logits
    within 2e-3 of the training pass relative to their scale, at batch 1 (streamed product) and
    batch 3 (tiled product). The default, "auto", samples one stream with float16 weights and a
    batch that runs MKL's packed GEMM with float32 ones."""
    from waveforge.kernels import primitives
    from waveforge.kernels import samplernn as kernel

    require_kernel(kernel)
    model, targets, cond, full = _teacher_forced_case()
    for batch in (1, 3):
        half = kernel.teacher_forced(model, targets[:batch], cond[:batch], weights="float16", n_threads=2)
        error = (full[:batch] - half).abs().max().item()
        assert 0 < error <= 2e-3 * full.abs().max().item()
    audio = model.generate(cond=cond[:1], weights="float16", generator=torch.Generator().manual_seed(0))
    assert audio.shape == (1, 1, 256) and audio.abs().max() <= 1.0
    chosen = []
    real_generate = kernel.generate
    monkeypatch.setattr(kernel, "generate", lambda *a, **k: chosen.append(a[7]) or real_generate(*a, **k))
    model.generate(cond=cond[:1])
    model.generate(cond=cond)
    monkeypatch.setattr(primitives, "mkl", lambda: None)  # no packed GEMM: a batch is bandwidth-bound too
    model.generate(cond=cond)
    monkeypatch.undo()
    assert chosen == ["float16", "float32" if primitives.mkl() is not None else "float16", "float16"]
    with pytest.raises(ValueError, match="fast backend"):
        model.generate(cond=cond[:1], weights="float16", backend="reference")
    with pytest.raises(ValueError, match="weights must be"):
        kernel.generate(model, 16, cond[:1, :, :1], 1.0, 1.0, 1, None, weights="bfloat16")


def test_packed_weights_are_cached_until_a_parameter_changes():
    from waveforge.kernels import samplernn as kernel

    require_kernel(kernel)
    model, targets, cond, full = _teacher_forced_case(batch=1)
    before = kernel.teacher_forced(model, targets, cond, n_threads=2)
    assert kernel._PACK_CACHE[model][1] is kernel._pack(model, kernel._Store("float32", None, 1), 2)
    with torch.no_grad():
        model.mlp[5].bias.add_(1.0)  # an in-place update, as an optimiser step makes
    after = kernel.teacher_forced(model, targets, cond, n_threads=2)
    assert (after - before - 1.0).abs().max().item() <= 1e-5


def test_bench_accounting_matches_the_model_parameters():
    """The benchmark's FLOP and byte counts, against the paper model's own parameter counts."""
    from waveforge.benchmarks.autoregressive import samplernn_flops_per_sample, samplernn_weight_bytes_per_step

    model = SampleRNN(SampleRNNConfig.paper())
    c = model.config

    def numel(*modules, weights_only=False):
        return sum(p.numel() for m in modules for name, p in m.named_parameters() if not weights_only or "weight" in name)

    mlp_input_macs = c.frame_size * c.embedding_dim * c.mlp_hidden
    assert samplernn_flops_per_sample(c) - samplernn_flops_per_sample(c, input_table=True) == 2 * mlp_input_macs
    top, mid, mlp = (model.top_input, model.top_rnn, model.top_upsample), (model.mid_input, model.mid_rnn, model.mid_upsample), model.mlp
    table_rows = c.frame_size * c.mlp_hidden
    per_step = numel(*top) / c.top_frame_size + numel(*mid) / c.frame_size + numel(mlp) + table_rows
    assert samplernn_weight_bytes_per_step(c) == pytest.approx(4 * per_step)
    assert samplernn_weight_bytes_per_step(c, batch=32) == pytest.approx(4 * (per_step + 31 * table_rows))
    large = (numel(model.top_rnn, model.top_upsample, weights_only=True) / c.top_frame_size
             + numel(model.mid_rnn, model.mid_upsample, weights_only=True) / c.frame_size + numel(mlp, weights_only=True))
    assert samplernn_weight_bytes_per_step(c) - samplernn_weight_bytes_per_step(c, bytes_per_weight=2) == pytest.approx(2 * large)
    # the folded middle-tier input: layer 0's W_ih once per FS1 steps instead of per FS2, and the
    # (FS2 + 1, 3 H) fold instead of mid_input's (FS2 + 1, H)
    w_ih0 = model.mid_rnn.weight_ih_l0.numel()
    saved = w_ih0 / c.frame_size - w_ih0 / c.top_frame_size - (c.frame_size + 1) * 2 * c.mid_hidden / c.frame_size
    assert samplernn_weight_bytes_per_step(c) - samplernn_weight_bytes_per_step(c, folded=True, conditioned=True) == pytest.approx(4 * saved)
    # unconditioned, the top tier's layer-0 W_ih is not read either; its (FS1 + 1, 3 H) fold is
    top_saved = model.top_rnn.weight_ih_l0.numel() / c.top_frame_size - (c.top_frame_size + 1) * 2 * c.top_hidden / c.top_frame_size
    assert samplernn_weight_bytes_per_step(c) - samplernn_weight_bytes_per_step(c, folded=True) == pytest.approx(4 * (saved + top_saved))


def test_truncated_bptt_carries_hidden_state():
    """Two subsequences with the hidden state carried equal one pass over the whole sequence."""
    model = _model()
    fs1 = model.config.top_frame_size
    torch.manual_seed(2)
    samples = torch.cat([torch.full((2, fs1), model.silence), torch.randint(0, 256, (2, 128))], dim=1)
    with torch.no_grad():
        whole = model(samples).logits
        first = model(samples[:, : fs1 + 64])
        # the second subsequence's context is the last FS1 samples of the first
        second = model(samples[:, 64:], hidden=tuple(h.detach() for h in first.hidden))
    assert (torch.cat([first.logits, second.logits], dim=-1) - whole).abs().max().item() <= 1e-5


def test_one_step_lowers_loss_and_gradients_reach_conditioning():
    model = _model(cond_channels=5).train()
    torch.manual_seed(3)
    samples = torch.randint(0, 256, (2, 16 + 64))
    cond = torch.randn(2, 5, 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        out = model(samples, cond=cond)
        loss = model.loss(out.logits, samples[:, 16:])
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < losses[0]
    assert model.upsampler.pre.weight.grad.abs().sum() > 0


def test_generate_shapes_and_validation():
    model = _model(cond_channels=5)
    for backend in ("reference", "fast"):
        audio = model.generate(cond=torch.randn(3, 5, 2), top_p=0.9, temperature=0.8, backend=backend)
        assert audio.shape == (3, 1, 64) and audio.abs().max() <= 1.0
    with pytest.raises(ValueError, match="multiple of 16"):
        model(torch.zeros(1, 16 + 10, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple of frame_size"):
        SampleRNNConfig(top_frame_size=16, frame_size=5)


@pytest.mark.slow
def test_paper_size_constructs():
    model = SampleRNN(SampleRNNConfig.paper())
    n_params = sum(p.numel() for p in model.parameters())
    assert 25e6 < n_params < 40e6
    out = model(torch.zeros(1, 16 + 64, dtype=torch.long))
    assert out.logits.shape == (1, 256, 64)


# ---------------------------------------------------------------- training task, export, load
def _task(**kwargs):
    from waveforge.tasks.autoregressive import SampleRNNTask

    torch.manual_seed(0)
    return SampleRNNTask(sample_rate=8000, feature=None, architecture={"preset": "tiny"}, tbptt_length=64, lr=3e-3, **kwargs)


def test_task_tbptt_training_steps_lower_the_loss():
    import lightning as L

    task = _task()
    audio = 0.5 * torch.sin(torch.arange(256.0) / 5).expand(4, 1, 256).contiguous()
    loader = torch.utils.data.DataLoader([{"audio": a} for a in audio], batch_size=4)
    before = task.model.loss(task.model(torch.cat([torch.full((4, 16), 128), _classes(audio)], 1)).logits, _classes(audio)).item()
    trainer = L.Trainer(max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, loader)  # 2 batches x 4 subsequences of 64 samples, one optimiser step each
    assert trainer.global_step == 8
    after = task.model.loss(task.model(torch.cat([torch.full((4, 16), 128), _classes(audio)], 1)).logits, _classes(audio)).item()
    assert after < before


def _classes(audio):
    from waveforge.audio.mulaw import mu_law_encode

    return mu_law_encode(audio[:, 0])


def test_export_and_load_round_trip(tmp_path):
    import waveforge
    from waveforge.inference.families import SynthesisOptions
    from waveforge.inference.modelfile import save_model_file

    task = _task().eval()
    path = save_model_file(tmp_path / "samplernn.safetensors", task.model_file())
    synth = waveforge.load(path)
    for name, value in task.model.state_dict().items():
        assert torch.equal(synth.model.state_dict()[name], value)
    a = synth.sample(0.01, options=SynthesisOptions(seed=5))
    b = synth.sample(0.01, options=SynthesisOptions(seed=5))
    assert a.shape == (1, 1, 80) and torch.equal(a, b)
