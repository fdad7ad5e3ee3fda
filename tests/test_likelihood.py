"""Held-out likelihood: baselines, the adapters' exact log-likelihoods, and `waveforge eval` for them."""

import json
import math

import numpy as np
import pytest
import torch

from waveforge.audio.mel import MelConfig
from waveforge.inference.modelfile import ModelFile, save_model_file
from waveforge.likelihood import LikelihoodKind, bin_edges, fit_baselines, laplace_bin_log_prob

MULAW = LikelihoodKind("mulaw", 8)


@pytest.mark.parametrize("kind", [MULAW, LikelihoodKind("linear", 16)])
def test_bin_edges_bracket_each_class(kind):
    edges = bin_edges(kind)
    assert np.all(np.diff(edges) > 0) and edges[0] == -np.inf and edges[-1] == np.inf
    x = torch.linspace(-0.999, 0.999, 5001, dtype=torch.float64)
    k = kind.classes(x.float()).numpy()
    assert np.all(edges[k] <= x.numpy() + 1e-6) and np.all(x.numpy() <= edges[k + 1] + 1e-6)


def test_laplace_bin_masses_sum_to_one():
    edges = bin_edges(MULAW)
    classes = np.arange(256)
    for pred, scale in [(0.0, 0.01), (0.3, 0.1), (-0.9, 0.001)]:
        total = np.exp(laplace_bin_log_prob(np.full(256, pred), classes, edges, scale)).sum()
        assert total == pytest.approx(1.0, abs=1e-6)


def _ar2(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    e = rng.laplace(0, 0.002, n)
    for t in range(2, n):
        x[t] = 1.8 * x[t - 1] - 0.9 * x[t - 2] + e[t]
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def test_linear_predictor_recovers_an_ar2_process_and_beats_the_unigram():
    kind = LikelihoodKind("continuous")
    base = fit_baselines([_ar2(20000, 0), _ar2(20000, 1)], kind)
    assert base.lpc[:2] == pytest.approx([1.8, -0.9], abs=0.02)
    assert np.abs(base.lpc[2:]).max() < 0.05
    test = _ar2(8000, 2)
    assert base.linear_predictor_nats(test) < base.unigram_nats(test) - 8000  # > 1 nat/sample better
    discrete = fit_baselines([_ar2(20000, 0)], MULAW)
    # a discrete distribution costs >= 0 nats; the linear predictor beats the class histogram
    assert 0 < discrete.linear_predictor_nats(test) < discrete.unigram_nats(test)


def test_unigram_matches_the_class_entropy():
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, 200_000).astype(np.float32)
    base = fit_baselines([audio], MULAW)
    classes = MULAW.classes(torch.from_numpy(audio)).numpy()
    p = np.bincount(classes, minlength=256) / classes.size
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    assert base.unigram_nats(audio) / audio.size == pytest.approx(entropy, rel=1e-3)


# ------------------------------------------------------------------ adapters: exact log-likelihoods
def test_wavenet_log_likelihood_equals_the_training_loss(one_thread):
    from waveforge.inference.families.wavenet import ADAPTER
    from waveforge.models.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(0)
    model = WaveNet(WaveNetConfig.tiny(cond_channels=4, hop_length=16)).eval()
    audio = torch.rand(2, 1, 320) * 1.6 - 0.8
    cond = torch.randn(2, 4, 20)
    targets = MULAW.classes(audio[:, 0])
    with torch.no_grad():
        expected = -model.loss(model(model.shift_right(targets), cond), targets) * 320
        got = ADAPTER.log_likelihood(model, audio, cond)
    assert got.shape == (2,)
    assert float(got.mean()) == pytest.approx(float(expected), rel=1e-5)


def test_samplernn_chunked_log_likelihood_equals_one_pass(one_thread):
    from waveforge.inference.families.samplernn import ADAPTER
    from waveforge.models.samplernn import SampleRNN, SampleRNNConfig

    torch.manual_seed(0)
    model = SampleRNN(SampleRNNConfig.tiny()).eval()
    audio = torch.rand(2, 1, 512) * 1.6 - 0.8
    whole = ADAPTER.log_likelihood(model, audio, None)  # one chunk (the default is 16384 samples)
    chunked = model.log_prob(audio, None, chunk=64).double().sum(dim=-1)
    assert whole.shape == chunked.shape == (2,)
    assert torch.allclose(whole, chunked, rtol=1e-6)
    classes = MULAW.classes(audio[:, 0])
    padded = torch.cat([torch.full((2, 16), model.silence), classes], dim=1)
    assert float(whole.mean()) == pytest.approx(-float(model.loss(model(padded).logits, classes)) * 512, rel=1e-5)


def test_waveglow_log_likelihood_equals_the_flow_nll(one_thread):
    from waveforge.inference.families.waveglow import ADAPTER
    from waveforge.losses.flow import flow_nll
    from waveforge.models.waveglow import WaveGlow, WaveGlowConfig

    torch.manual_seed(0)
    config = WaveGlowConfig.tiny()
    model = WaveGlow(config).eval()
    audio = torch.rand(1, 1, 16 * config.hop_length) * 0.2 - 0.1
    cond = torch.randn(1, config.cond_channels, 16)
    out = model(audio, cond)
    expected = -flow_nll(out.z, out.log_det, sigma=config.sigma).nats_per_sample * audio.numel()
    assert float(ADAPTER.log_likelihood(model, audio, cond)[0]) == pytest.approx(float(expected), rel=1e-5)


# ------------------------------------------------------------------ waveforge eval
def test_eval_reports_likelihood_for_an_unconditional_samplernn(tmp_path, tiny_corpus, capsys, one_thread):
    from waveforge.cli import main as cli_main
    from waveforge.models.samplernn import SampleRNN, SampleRNNConfig

    torch.manual_seed(0)
    model = SampleRNN(SampleRNNConfig.tiny())
    path = save_model_file(tmp_path / "s.safetensors", ModelFile("samplernn", model.config.to_dict(), None, 22050, model.state_dict()))
    assert cli_main(["eval", str(path), "--data", str(tiny_corpus), "--seconds", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    lik = result["likelihood"]
    assert lik["kind"] == "mulaw-8" and lik["samples"] > 0
    bits = lik["bits_per_sample"]
    assert set(bits) == {"model", "unigram", "linear_predictor"}
    # an untrained model is close to uniform over 256 classes; the fitted baselines do better
    assert bits["model"] == pytest.approx(8.0, abs=0.5)
    assert bits["linear_predictor"] < bits["unigram"] < 8.0


def test_eval_adds_likelihood_to_a_wavenet_vocoders_metrics(tmp_path, tiny_corpus, capsys, one_thread):
    from waveforge.cli import main as cli_main
    from waveforge.models.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(0)
    feature = MelConfig(sample_rate=8000, n_fft=256, win_length=256, hop_length=64, n_mels=20, f_max=4000.0)
    model = WaveNet(WaveNetConfig.tiny(cond_channels=20, hop_length=64))
    path = save_model_file(tmp_path / "w.safetensors", ModelFile("wavenet", model.config.to_dict(), feature, 8000, model.state_dict()))
    assert cli_main(["eval", str(path), "--data", str(tiny_corpus), "--seconds", "0.25", "--max-pieces", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["metrics"]) == {"model", "griffin_lim"}
    assert math.isfinite(result["likelihood"]["bits_per_sample"]["model"])


def test_training_objectives_are_the_models_log_prob(one_thread):
    """The tasks' NLL is -mean(model.log_prob): the same function waveforge eval sums."""
    from waveforge.models.samplernn import SampleRNN, SampleRNNConfig
    from waveforge.models.wavenet import WaveNet, WaveNetConfig
    from waveforge.models.waveglow import WaveGlow, WaveGlowConfig
    from waveforge.tasks.autoregressive import WaveNetTask
    from waveforge.tasks.flow import FlowVocoderTask

    torch.manual_seed(0)
    audio = torch.rand(2, 1, 512) * 1.6 - 0.8
    for output in ("mulaw", "logistic"):
        model = WaveNet(WaveNetConfig.tiny(output=output)).eval()
        task = WaveNetTask.__new__(WaveNetTask)
        torch.nn.Module.__init__(task)
        task.model = model
        with torch.no_grad():
            lp = model.log_prob(audio)
            assert lp.shape == (2, 512)
            torch.testing.assert_close(task._nll({"audio": audio}), -lp.mean())
            targets = model.targets(audio)
            torch.testing.assert_close(model.loss(model(model.shift_right(targets)), targets), -lp.mean())
    rnn = SampleRNN(SampleRNNConfig.tiny()).eval()
    with torch.no_grad():
        pieces = [rnn.log_prob_of(rnn(s).logits, t) for s, t, _ in rnn.subsequences(audio, None, 512)]
        torch.testing.assert_close(torch.cat(pieces, -1), rnn.log_prob(audio))
    config = WaveGlowConfig.tiny()
    flow = WaveGlow(config).eval()
    sound = torch.rand(2, 1, 16 * config.hop_length) * 0.2 - 0.1
    mel = torch.randn(2, config.cond_channels, 16)
    with torch.no_grad():
        nll = flow.nll(sound, mel)
        assert flow.log_prob(sound, mel).shape == (2,)
        assert float(-flow.log_prob(sound, mel).sum() / sound.numel()) == pytest.approx(float(nll.loss), rel=1e-5)
    task = FlowVocoderTask.__new__(FlowVocoderTask)
    torch.nn.Module.__init__(task)
    task.model = flow
    with torch.no_grad():
        assert float(task._nll({"audio": sound, "cond": mel}).loss) == float(nll.loss)
