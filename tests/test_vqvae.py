"""Hierarchical VQ-VAE: quantiser, levels, priors, top-down sampling, task stages, encode/decode CLI."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from waveforge.cli import main
from waveforge.inference.modelfile import ModelFile, read_model_file, save_model_file
from waveforge.models.prior import PriorConfig, TransformerPrior
from waveforge.models.vqvae import VectorQuantizer, VQVAEConfig, VQVAEHierarchy, VQVAELevel, VQVAELevelConfig, codebook_perplexity

SR = 8000



def _tiny_config(decoder: str = "feedforward") -> VQVAEConfig:
    """The tiny preset, with WaveNet decoders (4 layers, width 8) when asked."""
    if decoder == "feedforward":
        return VQVAEConfig.tiny()
    wavenet = dict(layers=4, cycles=2, residual_channels=8, gate_channels=16, skip_channels=8)
    return VQVAEConfig.tiny(levels=[{**lv.__dict__, "decoder": decoder, "wavenet": wavenet} for lv in VQVAEConfig.tiny().levels])

def _quantizer(codebook, decay=0.5, epsilon=0.0, threshold=0.4):
    codebook = torch.tensor(codebook, dtype=torch.float32)
    q = VectorQuantizer(codebook.shape[0], codebook.shape[1], beta=0.25, decay=decay, epsilon=epsilon, restart_threshold=threshold, init_from_data=False)
    q.codebook.copy_(codebook)
    q.cluster_size.fill_(1.0)
    q.embed_sum.copy_(codebook)  # m_i = e_i * N_i with N_i = 1
    return q


# ------------------------------------------------------------------ quantiser
def test_codebook_vectors_map_to_themselves_and_reconstruct_exactly():
    torch.manual_seed(0)
    q = VectorQuantizer(16, 4).eval()
    order = torch.randperm(16)
    z = q.codebook[order].t().unsqueeze(0)  # (1, D, 16): code order[n] at position n
    result = q(z)
    assert torch.equal(result.codes[0], order)
    assert torch.equal(result.quantized, z)
    assert torch.equal(q.decode(result.codes), z)
    assert result.commitment_loss.item() == 0.0
    assert torch.isclose(result.perplexity, torch.tensor(16.0))


def test_ema_update_matches_hand_computation():
    q = _quantizer([[0.0], [10.0], [100.0]]).train()
    z = torch.tensor([[[1.0, 2.0, 9.0]]])  # (B=1, D=1, N=3): codes 0, 0, 1; code 2 unused
    result = q(z)
    assert result.codes.tolist() == [[0, 0, 1]]
    # n = [2, 1, 0], s = [3, 9, 0]; N <- 0.5 N + 0.5 n = [1.5, 1, 0.5]; m <- 0.5 m + 0.5 s = [1.5, 9.5, 50]
    assert torch.allclose(q.cluster_size, torch.tensor([1.5, 1.0, 0.5]))
    assert torch.allclose(q.embed_sum[:, 0], torch.tensor([1.5, 9.5, 50.0]))
    # epsilon = 0: e = m / N = [1, 9.5, 100]; 0.5 >= threshold 0.4, so nothing restarts
    assert torch.allclose(q.codebook[:, 0], torch.tensor([1.0, 9.5, 100.0]))
    assert result.restarted == 0


def test_ema_update_laplace_smoothing_by_hand():
    q = _quantizer([[0.0], [10.0]], epsilon=0.1, threshold=0.0).train()
    q(torch.tensor([[[1.0, 2.0, 9.0]]]))
    # N = [1.5, 1], n = 2.5; N~ = (N + 0.1) / (2.5 + 0.2) * 2.5 = [1.6, 1.1] * 2.5 / 2.7
    # e = m / N~ = [1.5 * 2.7 / 4.0, 9.5 * 2.7 / 2.75] = [1.0125, 9.327272...]
    assert torch.allclose(q.codebook[:, 0], torch.tensor([1.0125, 9.5 * 2.7 / 2.75]))


def test_dead_code_is_restarted_from_encoder_outputs():
    torch.manual_seed(0)
    q = _quantizer([[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [1000.0, 1000.0]], decay=0.9, threshold=1.0).train()
    z = torch.randn(2, 2, 20) * 0.5  # near the first three codes, never near code 3
    result = q(z)
    assert (result.codes != 3).all()
    assert result.restarted >= 1
    assert result.usage.item() == pytest.approx(1 - result.restarted / 4)
    vectors = z.transpose(1, 2).reshape(-1, 2)
    assert torch.isclose(vectors, q.codebook[3]).all(dim=1).any(), "code 3 must now equal one of the encoder outputs"
    assert q.cluster_size[3].item() == pytest.approx(1.0)


def test_quantiser_validates_arguments():
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(8, 4, decay=1.0)
    with pytest.raises(ValueError, match="expected z"):
        VectorQuantizer(8, 4)(torch.zeros(1, 3, 5))


# ------------------------------------------------------------------ levels
def test_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    level = VQVAELevel(VQVAELevelConfig(hop_length=8, codebook_size=16, code_dim=4, width=8, depth=2)).train()
    audio = torch.randn(2, 1, 256) * 0.3
    out = level(audio)
    # reconstruction only (no commitment term): the encoder learns only through the straight-through path
    (out.reconstruction - audio).pow(2).mean().backward()
    grads = [p.grad for p in level.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert level.quantizer.codebook.grad is None  # the codebook is a buffer moved by EMA, not by gradients


def test_shapes_at_each_level():
    torch.manual_seed(0)
    model = VQVAEHierarchy(VQVAEConfig.tiny()).eval()
    audio = torch.randn(2, 1, 1024) * 0.3
    codes = model.encode(audio)
    assert [tuple(c.shape) for c in codes] == [(2, 128), (2, 32), (2, 8)]  # T/8, T/32, T/128
    for level, c in enumerate(codes):
        assert model.decode(c, level).shape == (2, 1, 1024)
    with pytest.raises(ValueError, match="multiple of 32"):
        model.levels[1].encode(torch.zeros(1, 1, 1000))


def test_wavenet_decoder_level_shapes():
    torch.manual_seed(0)
    model = VQVAEHierarchy(_tiny_config("wavenet")).eval()
    out = model.levels[1](torch.randn(2, 1, 256) * 0.3)
    assert out.logits.shape == (2, 256, 256) and out.reconstruction is None
    codes = model.levels[1].encode(torch.randn(1, 1, 64) * 0.3)
    assert model.decode(codes, 1).shape == (1, 1, 64)


@pytest.mark.parametrize("decoder", ["feedforward", "wavenet"])
def test_decoder_conditioned_on_the_level_above(decoder):
    torch.manual_seed(0)
    config = _tiny_config(decoder)
    config.condition_on_above = True
    model = VQVAEHierarchy(VQVAEConfig.from_dict(config.to_dict())).eval()
    assert [lv.conditioned for lv in model.levels] == [True, True, False]  # the top has nothing above
    assert [lv.above_ratio for lv in model.levels[:2]] == [4, 4]
    audio = torch.randn(1, 1, 512) * 0.3
    codes = model.encode(audio)
    def output(above_codes):
        out = model.levels[1](audio, model.above_vectors(1, above_codes))
        return out.reconstruction if decoder == "feedforward" else out.logits

    assert output(codes[2]).shape[-1] == 512
    assert not torch.allclose(output(codes[2]), output((codes[2] + 1) % 32))  # the level above's codes reach the output
    with pytest.raises(ValueError, match="give that level's codes"):
        model.decode(codes[1], 1)
    assert model.decode(codes[1], 1, above_codes=codes[2]).shape == (1, 1, 512)
    with pytest.raises(ValueError, match="needs the level above's vectors"):
        model.levels[1].decode(codes[1], model.above_vectors(1, codes[2][:, :2]))
    assert model.sample(300).shape == (1, 1, 300)  # top-down: level 0 decoded with level 1's codes


def test_conditioned_autoencoder_stage_trains_after_the_level_above(monkeypatch):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="train the levels top-down"):
        _task(stage="autoencoder", level=0, condition_on_above=True).setup("fit")
    task = _task(stage="autoencoder", level=0, condition_on_above=True)
    task.model.trained[1, 0] = 1
    monkeypatch.setattr(task, "log", lambda *a, **k: None)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    _one_step(task, torch.randn(2, 1, 2048) * 0.3)  # long enough for the 2048-point STFT loss
    changed = {k for k, v in task.model.state_dict().items() if not torch.equal(before[k], v)}
    assert "levels.0.decoder.net.0.weight" in changed and not any(k.startswith("levels.1.") for k in changed)
    assert task.model.levels[0].decoder.net[0].in_channels == 8  # its own 4-dim vectors + level 1's 4


def test_decode_command_needs_the_codes_above_for_a_conditioned_level(tmp_path):
    from waveforge.inference.families.vqvae import decode_codes
    from waveforge.errors import BadInputError

    torch.manual_seed(0)
    config = VQVAEConfig.tiny()
    config.condition_on_above = True
    model = VQVAEHierarchy(config).eval()
    codes = model.encode(torch.randn(1, 1, 256) * 0.3)
    arrays = {f"codes_{i}": c[0].numpy() for i, c in enumerate(codes)}
    assert decode_codes(model, arrays, level=0).shape == (1, 1, 256)
    with pytest.raises(BadInputError, match="conditioned on level 1"):
        decode_codes(model, {"codes_0": arrays["codes_0"]}, level=0)


def test_config_round_trips_and_validates():
    config = VQVAEConfig.tiny()
    assert VQVAEConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="power of stride"):
        VQVAELevelConfig(hop_length=12)
    with pytest.raises(ValueError, match="hop lengths must increase"):
        VQVAEConfig(levels=[VQVAELevelConfig(hop_length=32), VQVAELevelConfig(hop_length=8)])
    with pytest.raises(ValueError, match="divisible by heads"):
        PriorConfig(width=30, heads=4)


def test_paper_config_constructs():
    with torch.device("meta"):  # shapes only: no memory for the 1.6B-parameter priors
        model = VQVAEHierarchy(VQVAEConfig.paper())
    assert model.config.hops == [8, 32, 128]
    assert model.levels[0].quantizer.codebook.shape == (2048, 64)
    assert model.upsamplers[0].config.cond_ratio == 4 and model.upsamplers[0].config.cond_codebook_size == 2048
    n_params = sum(p.numel() for p in model.top_prior.parameters())
    assert 1.0e9 < n_params < 2.0e9


# ------------------------------------------------------------------ priors
def _prior(conditional: bool, context: int = 32) -> TransformerPrior:
    torch.manual_seed(0)
    config = PriorConfig(codebook_size=16, context=context, width=32, layers=2, heads=4,
                         cond_codebook_size=8 if conditional else 0, cond_ratio=4 if conditional else 1)
    return TransformerPrior(config).eval()


@pytest.mark.parametrize("conditional", [False, True])
def test_prior_is_causal(conditional):
    prior = _prior(conditional)
    tokens = torch.randint(0, 16, (1, 32))
    cond = torch.randint(0, 8, (1, 8)) if conditional else None
    j = 13
    perturbed = tokens.clone()
    perturbed[0, j] = (tokens[0, j] + 1) % 16
    a, b = prior(tokens, cond), prior(perturbed, cond)
    assert torch.equal(a[:, : j + 1], b[:, : j + 1]), "logits up to j must not see token j"
    assert not torch.allclose(a[:, j + 1], b[:, j + 1])


@pytest.mark.parametrize("conditional", [False, True])
def test_cached_steps_equal_the_full_pass(conditional):
    prior = _prior(conditional)
    tokens = torch.randint(0, 16, (2, 32))
    cond = torch.randint(0, 8, (2, 8)) if conditional else None
    full = prior(tokens, cond)
    cache = prior.new_cache(2)
    vectors = prior.cond_vectors(cond, 32)
    inputs = prior.shift_right(tokens)
    first = prior.extend(inputs[:, :5], cache, vectors)  # a primed chunk, then single steps
    steps = [prior.extend(inputs[:, t : t + 1], cache, vectors) for t in range(5, 32)]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_full_passes_across_windows():
    prior = _prior(True, context=8)  # 20 tokens: windows [0, 8), [4, 12), [8, 16), [12, 20)
    cond = torch.randint(0, 8, (1, 5))
    generated = prior.generate(20, cond=cond, temperature=0.0)
    window_start = 0
    for t in range(20):
        if t - window_start == 8:
            window_start += 4
        window_len = min(8, 20 - window_start)
        # causal, so the window's later tokens do not affect position t
        logits = prior(generated[:, window_start : window_start + window_len], cond[:, window_start // 4 : (window_start + window_len) // 4])
        assert int(logits[0, t - window_start].argmax()) == int(generated[0, t]), f"token {t}"
    assert window_start == 12


def test_top_down_sampling_end_to_end():
    torch.manual_seed(0)
    model = VQVAEHierarchy(VQVAEConfig.tiny()).eval()
    codes = model.sample_codes(300, batch_size=2)  # 3 top codes cover 384 samples
    assert [tuple(c.shape) for c in codes] == [(2, 48), (2, 12), (2, 3)]
    assert all(int(c.min()) >= 0 and int(c.max()) < 32 for c in codes)
    audio = model.sample(300, batch_size=2, temperature=0.9, top_p=0.9)
    assert audio.shape == (2, 1, 300) and torch.isfinite(audio).all()


# ------------------------------------------------------------------ task stages
def _task(codebook_size=16, width=8, restart_threshold=(1.0, 1.0), condition_on_above=False, **overrides):
    """A two-level hierarchy (hops 8, 32) through the task's architecture mapping; the keywords change every level."""
    from waveforge.tasks.vqvae import VQVAETask

    levels = [dict(hop_length=h, codebook_size=codebook_size, code_dim=4, width=width, depth=2, restart_threshold=t)
              for h, t in zip((8, 32), restart_threshold)]
    settings = dict(sample_rate=SR, architecture=dict(preset="tiny", levels=levels, condition_on_above=condition_on_above), warmup_steps=1,
                    lr=1e-2, top_prior=dict(context=16, width=16, layers=1, heads=2), upsampler=dict(context=16, width=16, layers=1, heads=2))
    return VQVAETask(**{**settings, **overrides})


def _one_step(task, audio):
    task.setup("fit")
    task.train()
    opt = task.configure_optimizers()["optimizer"]
    loss = task.training_step({"audio": audio}, 0)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def test_autoencoder_stage_trains_only_its_level(monkeypatch):
    torch.manual_seed(0)
    task = _task(stage="autoencoder", level=1)
    monkeypatch.setattr(task, "log", lambda *a, **k: None)
    monkeypatch.setattr(task, "log_dict", lambda *a, **k: None)
    audio = torch.sin(torch.linspace(0, 200, 512)).reshape(1, 1, -1).repeat(2, 1, 1) * 0.5
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    losses = [_one_step(task, audio).item() for _ in range(3)]
    assert losses[-1] < losses[0]
    after = task.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("levels.1.encoder") for k in changed)
    assert "levels.1.quantizer.codebook" in changed
    assert not any(k.startswith(("levels.0.", "top_prior.", "upsamplers.")) for k in changed), sorted(changed)[:5]
    assert task.model.trained.tolist() == [[0, 0], [3, 0]]


def test_prior_stage_needs_trained_autoencoders_and_loads_previous_stage(tmp_path, monkeypatch):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="needs trained autoencoders"):
        _task(stage="prior", level=0).setup("fit")
    previous = _task(stage="autoencoder", level=0)
    previous.model.trained[:, 0] = 1
    save_model_file(tmp_path / "ae.safetensors", previous.model_file())
    task = _task(stage="prior", level=0, init_from=str(tmp_path / "ae.safetensors"))
    monkeypatch.setattr(task, "log", lambda *a, **k: None)
    audio = torch.randn(2, 1, 256) * 0.3
    _one_step(task, audio)
    state = task.model.state_dict()
    for k, v in previous.model.state_dict().items():
        if k.startswith("levels."):
            assert torch.equal(state[k], v), k  # loaded and frozen
    assert not torch.equal(state["upsamplers.0.head.weight"], previous.model.state_dict()["upsamplers.0.head.weight"])
    with pytest.raises(ValueError, match="model config differs"):
        _task(stage="prior", level=0, codebook_size=32, init_from=str(tmp_path / "ae.safetensors")).setup("fit")


def test_restart_threshold_per_level():
    task = _task(restart_threshold=[1.0, 0.1])
    assert [level.quantizer.restart_threshold for level in task.model.levels] == [1.0, 0.1]
    assert [c.restart_threshold for c in task.model.config.levels] == [1.0, 0.1]


def _stage_file(path, trained_level, seed, **overrides):
    torch.manual_seed(seed)
    task = _task(stage="autoencoder", level=trained_level, **overrides)
    task.model.trained[trained_level, 0] = 5 + trained_level
    return save_model_file(path, task.model_file()), task.model.state_dict()


def test_init_from_several_files_takes_each_part_from_the_file_that_trained_it(tmp_path):
    first, first_state = _stage_file(tmp_path / "ae0.safetensors", 0, seed=1)
    second, second_state = _stage_file(tmp_path / "ae1.safetensors", 1, seed=2)
    task = _task(stage="prior", level=0, init_from=[str(first), str(second)])
    task.setup("fit")
    state = task.model.state_dict()
    for key in state:
        if key.startswith("levels.0."):
            assert torch.equal(state[key], first_state[key]), key
        if key.startswith("levels.1."):
            assert torch.equal(state[key], second_state[key]), key
    assert task.model.trained.tolist() == [[5, 0], [6, 0]]
    # a prior must come with the autoencoders it was trained on
    stale_prior = _task(stage="prior", level=0)
    stale_prior.model.load_state_dict(task.model.state_dict())
    stale_prior.model.trained[1, 1] = 4  # its top prior, trained on these autoencoders
    with torch.no_grad():
        stale_prior.model.top_prior.head.weight.add_(1.0)
    stale = save_model_file(tmp_path / "prior.safetensors", stale_prior.model_file())
    _, retrained_state = _stage_file(tmp_path / "ae1-again.safetensors", 1, seed=3)
    merged = _task(stage="prior", level=0, init_from=[str(stale), str(first), str(second)])
    merged.setup("fit")  # the same autoencoder 1 as the prior's file
    with pytest.raises(ValueError, match="trained on another level-1 autoencoder"):
        _task(stage="prior", level=0, init_from=[str(stale), str(tmp_path / "ae1-again.safetensors")]).setup("fit")
    # the order decides only between files that trained the same part
    both = _task(stage="prior", level=0, init_from=[str(second), str(first)])
    both.setup("fit")
    assert torch.equal(both.model.levels[0].quantizer.codebook, first_state["levels.0.quantizer.codebook"])


def test_training_only_settings_are_checked_only_where_the_file_trained_the_level(tmp_path):
    path, _ = _stage_file(tmp_path / "ae0.safetensors", 0, seed=1)  # level 0 trained at threshold 1.0, level 1 not
    _task(stage="autoencoder", level=1, restart_threshold=[1.0, 0.1], init_from=str(path)).setup("fit")
    _task(stage="autoencoder", level=0, restart_threshold=[0.5, 1.0], init_from=str(path)).setup("fit")  # retrains level 0
    with pytest.raises(ValueError, match=r"levels.*restart_threshold"):
        _task(stage="autoencoder", level=1, restart_threshold=[0.5, 1.0], init_from=str(path)).setup("fit")
    with pytest.raises(ValueError, match="model config differs"):
        _task(stage="autoencoder", level=1, width=16, init_from=str(path)).setup("fit")


def _stage_checkpoint(path, stage, level, seed):
    """A checkpoint as Lightning writes it, of a stage that trained its part for a few steps."""
    import lightning as L

    from waveforge.tasks.base import TASK_KEY

    torch.manual_seed(seed)
    task = _task(stage=stage, level=level)
    task.model.trained[level, 0 if stage == "autoencoder" else 1] = 3
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams), "pytorch-lightning_version": L.__version__,
                TASK_KEY: "waveforge.tasks.vqvae.VQVAETask"}, path)
    return task.model.state_dict()


def test_export_merges_stages_trained_in_parallel(tmp_path):
    ae = _stage_checkpoint(tmp_path / "ae.ckpt", "autoencoder", 0, seed=1)
    up = _stage_checkpoint(tmp_path / "up.ckpt", "prior", 0, seed=2)
    out = tmp_path / "merged.safetensors"
    assert main(["export", str(tmp_path / "ae.ckpt"), str(tmp_path / "up.ckpt"), "-o", str(out)]) == 0
    merged = read_model_file(out)
    assert merged.extra["trained"] == [[3, 3], [0, 0]]
    for key, value in merged.state_dict.items():
        if key.startswith("levels.0."):
            assert torch.equal(value, ae[key]), key
        if key.startswith("upsamplers.0."):
            assert torch.equal(value, up[key]), key


# ------------------------------------------------------------------ CLI
@pytest.fixture
def tiny_model_file(tmp_path):
    torch.manual_seed(0)
    model = VQVAEHierarchy(VQVAEConfig.tiny()).eval()
    path = save_model_file(tmp_path / "vq.safetensors", ModelFile("vqvae", model.config.to_dict(), None, SR, model.state_dict()))
    return path, model


def test_encode_decode_cli_round_trip(tmp_path, tiny_model_file, capsys):
    path, model = tiny_model_file
    rng = np.random.default_rng(0)
    audio = (0.3 * np.sin(np.arange(1000) * 0.05) + 0.01 * rng.standard_normal(1000)).astype(np.float32)
    sf.write(tmp_path / "in.wav", audio, SR, subtype="FLOAT")
    assert main(["encode", str(path), str(tmp_path / "in.wav"), "-o", str(tmp_path / "codes.npz")]) == 0
    codes = np.load(tmp_path / "codes.npz")
    assert codes["codes_0"].shape == (128,) and codes["codes_1"].shape == (32,) and codes["codes_2"].shape == (8,)
    assert int(codes["n_samples"]) == 1000
    padded = torch.nn.functional.pad(torch.from_numpy(audio).reshape(1, 1, -1), (0, 24))
    assert np.array_equal(codes["codes_0"], model.encode(padded)[0][0].numpy())
    for level in (None, 2):
        args = ["decode", str(path), str(tmp_path / "codes.npz"), "-o", str(tmp_path / "out.wav")]
        assert main(args + ([] if level is None else ["--level", str(level)])) == 0
        out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
        expected = model.decode(model.encode(padded)[level or 0], level or 0)[0, 0, :1000].clamp(-1, 1).numpy()
        assert sr == SR and out.shape == (1000,)
        np.testing.assert_allclose(out, expected, atol=1.5 / 32768)  # 16-bit PCM


def test_sample_cli_writes_the_requested_length(tmp_path, tiny_model_file):
    path, _ = tiny_model_file
    assert main(["sample", str(path), "--seconds", "0.1", "--seed", "1", "-o", str(tmp_path / "s.wav")]) == 0
    out, sr = sf.read(tmp_path / "s.wav")
    assert sr == SR and out.shape == (800,)


def test_encode_with_a_model_of_another_family_fails_with_one_line(tmp_path, capsys):
    from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig

    config = MelGANGeneratorConfig.tiny()
    save_model_file(tmp_path / "melgan.safetensors", ModelFile("melgan", config.to_dict(), None, SR, MelGANGenerator(config).state_dict()))
    sf.write(tmp_path / "in.wav", np.zeros(256, dtype=np.float32), SR)
    capsys.readouterr()
    code = main(["encode", str(tmp_path / "melgan.safetensors"), str(tmp_path / "in.wav"), "-o", str(tmp_path / "c.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("waveforge: error:") and "melgan" in err and "vqvae" in err
    assert not (tmp_path / "c.npz").exists()


def test_decode_rejects_codes_for_another_hierarchy(tmp_path, tiny_model_file, capsys):
    path, _ = tiny_model_file
    np.savez(tmp_path / "bad.npz", codes_0=np.zeros(4, dtype=np.int64), hops=np.array([4, 16]))
    capsys.readouterr()
    assert main(["decode", str(path), str(tmp_path / "bad.npz"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "hops" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_exported_hierarchy_round_trips(tiny_model_file):
    path, model = tiny_model_file
    mf = read_model_file(path)
    from waveforge.inference.families.vqvae import ADAPTER

    rebuilt = ADAPTER.build(mf.model_config, mf.state_dict)
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v)


def test_evaluate_hierarchy_reports_usage_mr_stft_and_prior_bits(tmp_path, tiny_model_file, capsys):
    import pretty_midi

    from waveforge.data.maestro import write_metadata
    from waveforge.vqvae_eval import evaluate_hierarchy

    path, model = tiny_model_file
    (tmp_path / "2018").mkdir()
    audio = (0.3 * np.sin(np.arange(2048) * 0.07)).astype(np.float32)
    sf.write(tmp_path / "2018" / "piece.wav", audio, SR, subtype="FLOAT")
    pretty_midi.PrettyMIDI().write(str(tmp_path / "2018" / "piece.midi"))
    write_metadata(tmp_path, [dict(canonical_composer="Synth", canonical_title="piece", split="test", year=2018,
                                   midi_filename="2018/piece.midi", audio_filename="2018/piece.wav", duration=2048 / SR)])
    result = evaluate_hierarchy(path, tmp_path, split="test")
    codes = model.encode(torch.from_numpy(audio).reshape(1, 1, -1))
    assert result["pieces"] == 1 and len(result["levels"]) == 3
    for level, row in enumerate(result["levels"]):
        assert row["codebook_usage"] == pytest.approx(len(torch.unique(codes[level])) / 32)
        assert row["mr_stft"] > 0 and np.isfinite(row["mr_stft"])
        assert 0 < row["prior_bits_per_code"] < 20
    # `waveforge eval` on a hierarchy gives the same per-level figures
    capsys.readouterr()
    assert main(["eval", str(path), "--data", str(tmp_path), "--split", "test", "-o", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["levels"] == result["levels"]


def test_codebook_perplexity_counts_equally_used_codes():
    assert float(codebook_perplexity(torch.tensor([5.0, 5.0, 5.0, 5.0, 0.0]))) == pytest.approx(4.0)
    assert float(codebook_perplexity(torch.tensor([0, 7, 0]))) == pytest.approx(1.0)
    assert float(codebook_perplexity(torch.zeros(8))) == 0.0
    counts = torch.tensor([1.0, 3.0])
    entropy = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert float(codebook_perplexity(counts)) == pytest.approx(np.exp(entropy), rel=1e-6)


def test_stage_merging_lives_outside_the_training_task():
    """export merges stages through models.vqvae_stages, so tasks.export never imports tasks.vqvae
    (and inference/ no longer holds the hierarchy's evaluation)."""
    import inspect

    import waveforge.inference.families.vqvae as family
    import waveforge.tasks.export as export

    assert "tasks.vqvae" not in inspect.getsource(export) and "merge_stages" in inspect.getsource(export)
    assert not hasattr(family, "evaluate_hierarchy")


def test_task_architecture_mappings_build_the_hierarchy_and_its_priors():
    from waveforge.models.config import ConfigError
    from waveforge.models.prior import PriorConfig
    from waveforge.tasks.vqvae import build_vqvae_config

    assert build_vqvae_config({"preset": "small"}) == VQVAEConfig.small()
    assert build_vqvae_config(None) == VQVAEConfig.paper()
    # a prior mapping without a preset changes the hierarchy preset's prior; with one, starts from it
    config = build_vqvae_config({"preset": "small"}, {"layers": 2}, {"preset": "tiny"})
    assert config.top_prior == PriorConfig.small(context=256, layers=2) and config.upsampler == PriorConfig.tiny()
    with pytest.raises(ConfigError, match="^architecture: top_prior is a task argument of its own"):
        build_vqvae_config({"top_prior": {"layers": 2}})
    with pytest.raises(ConfigError, match="^upsampler: PriorConfig has no field 'layer'"):
        build_vqvae_config(None, None, {"layer": 2})
    with pytest.raises(ConfigError, match="^architecture: .*unexpected keyword argument 'codebook'"):
        build_vqvae_config({"levels": [{"hop_length": 8, "codebook": 16}]})
