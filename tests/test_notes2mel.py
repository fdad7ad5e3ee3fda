"""The two-stage MIDI renderer: notes-to-mel models, their tasks, and composition with a mel vocoder."""

from __future__ import annotations

import math

import pretty_midi
import pytest
import torch

import waveforge
import waveforge.cli
from waveforge.audio.mel import MelConfig, MelSpectrogram
from waveforge.diffusion import CFGDenoiser, Denoiser, SamplingConfig, get_sampler, get_sigmas
from waveforge.errors import BadInputError
from waveforge.inference.families import SynthesisOptions
from waveforge.inference.families.notes2mel import Notes2MelStage, frame_noise, sampler_evaluations
from waveforge.inference.modelfile import ModelFile, read_model_file, save_model_file
from waveforge.inference.twostage import ComposedRenderer, NotesToMelSynthesizer, band_variance, compose_model_file
from waveforge.midi.roll import PianoRollConfig, piano_roll
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig
from waveforge.models.notes2mel import NotePrior, Notes2Mel, Notes2MelConfig, Notes2MelDenoiser, harmonic_templates

# a tiny world: 8 kHz, hop 16, 16 mel bands, so a second is 500 frames
MEL = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=16, f_min=0.0, f_max=4000.0)
ROLL = PianoRollConfig(sample_rate=8000, hop_length=16)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _randomise(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Every parameter random (the zero-initialised output convs would hide the trunk's reach)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def _roll(n_frames: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    roll = (torch.rand(batch, 264, n_frames, generator=g) < 0.05).float()
    roll[:, 176:] *= torch.rand(batch, 88, n_frames, generator=g)
    return roll


# the note prior at test size: 12-frame templates, damped over 4 frames
PRIOR = dict(note_frames=12, release_frames=4)


def _regression_stage(seed: int = 0, **prior) -> Notes2MelStage:
    model = _randomise(Notes2Mel(Notes2MelConfig.tiny(n_mels=MEL.n_mels, **prior)), seed).eval()
    return Notes2MelStage("regression", model, MEL).eval()


def _diffusion_stage(seed: int = 0, steps: int = 3, sampler: str = "dpmpp_2m", **prior) -> Notes2MelStage:
    model = _randomise(Notes2MelDenoiser(Notes2MelConfig.tiny(n_mels=MEL.n_mels, **prior)), seed, scale=0.1).eval()
    return Notes2MelStage("diffusion", model, MEL, Denoiser(model, "v", 1.0), SamplingConfig(sampler=sampler, steps=steps)).eval()


def _midi(path, seconds: float = 1.0):
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate((60, 64, 67, 72)):
        start = i * seconds / 5
        piano.notes.append(pretty_midi.Note(velocity=90 - 10 * i, pitch=pitch, start=start, end=start + seconds / 3))
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def _notes_file(stage: Notes2MelStage) -> ModelFile:
    config = {"objective": stage.objective, "notes2mel": stage.model.config.to_dict(), "mel": MEL.to_dict()}
    if stage.objective == "diffusion":
        config.update(prediction="v", sigma_data=1.0, sampling=stage.sampling.to_dict())
    return ModelFile("notes2mel", config, ROLL, MEL.sample_rate, stage.model.state_dict())


def _vocoder_file(mel: MelConfig = MEL, feature=None) -> ModelFile:
    torch.manual_seed(1)
    model = MelGANGenerator(MelGANGeneratorConfig.tiny(cond_channels=mel.n_mels, upsample_factors=[4, mel.hop_length // 4]))
    return ModelFile("melgan", model.config.to_dict(), feature if feature is not None else mel, mel.sample_rate, model.state_dict())


@pytest.fixture
def files(tmp_path):
    notes = save_model_file(tmp_path / "notes.safetensors", _notes_file(_regression_stage()))
    vocoder = save_model_file(tmp_path / "vocoder.safetensors", _vocoder_file())
    return notes, vocoder


# -- the model -----------------------------------------------------------------------------------


def test_shapes_and_frame_alignment_with_the_vocoders_mel():
    stage = _regression_stage()
    roll = _roll(37, batch=2)
    mel = stage.mel(roll, SynthesisOptions())
    assert mel.shape == (2, MEL.n_mels, 37)
    # the vocoder turns those 37 frames into 37 hops, and the mel of that audio has 37 frames again
    vocoder = MelGANGenerator(MelGANGeneratorConfig.tiny(cond_channels=MEL.n_mels, upsample_factors=[4, 4])).eval()
    audio = vocoder(mel)
    assert audio.shape == (2, 1, 37 * MEL.hop_length)
    assert MelSpectrogram(MEL)(audio).shape == (2, MEL.n_mels, 37)
    diffusion = _diffusion_stage().mel(roll, SynthesisOptions(seed=0))
    assert diffusion.shape == (2, MEL.n_mels, 37)


def _change_per_frame(model, kind: str, roll: torch.Tensor, t0: int, channels: slice) -> torch.Tensor:
    """``(F,)``: how much each output frame moves when ``roll[:, channels, t0]`` is flipped."""
    changed = roll.clone()
    changed[:, channels, t0] = 1.0 - changed[:, channels, t0]
    if kind == "regression":
        run = model
    else:
        x, c_noise = torch.randn(1, MEL.n_mels, roll.shape[-1], generator=torch.Generator().manual_seed(5)), torch.tensor([0.3])
        run = lambda r: model(x, c_noise, model.prepare(r))  # noqa: E731
    with torch.no_grad():
        return (run(changed) - run(roll)).abs().amax(dim=1)[0]


@pytest.mark.parametrize("kind", ["regression", "denoiser"])
def test_non_causal_within_the_receptive_field_and_not_beyond(kind):
    config = Notes2MelConfig.tiny(n_mels=MEL.n_mels)
    model = _randomise(Notes2Mel(config) if kind == "regression" else Notes2MelDenoiser(config)).eval()
    rf = model.receptive_field_frames
    n, t0 = 4 * rf + 8, 2 * rf + 4
    diff = _change_per_frame(model, kind, _roll(n), t0, slice(None))
    assert diff[t0 - rf] > 1e-6 and diff[t0 - 1] > 1e-6  # earlier frames hear a later change: non-causal...
    assert diff[t0 + rf] > 1e-6
    assert float(diff[: t0 - rf].abs().max()) == 0.0  # ...as far as the receptive field, exactly, and no further
    assert float(diff[t0 + rf + 1 :].abs().max()) == 0.0


def test_receptive_field_adds_up_the_blocks():
    config = Notes2MelConfig.tiny()  # width-3 input conv, dilated blocks 1, 2, 1, then one attention block of window 3
    convs = config.dilations()[: config.n_layers - config.attention_layers]
    assert Notes2Mel(config).receptive_field_frames == 1 + sum(convs) + config.attention_window


def test_an_empty_roll_gives_silence_from_the_start_and_after_training():
    torch.manual_seed(0)
    config = Notes2MelConfig.tiny(n_mels=MEL.n_mels)
    model = Notes2Mel(config)
    silence = torch.zeros(1, 264, 40)
    with torch.no_grad():
        assert float((model(silence) - config.floor).abs().max()) < 1e-4  # the output conv starts at the floor
    # a few steps on notes (loud where a note sounds) and silence keep the silence silent
    notes = torch.zeros(1, 264, 40)
    notes[0, 40, 5] = notes[0, 88 + 40, 5:25] = 1.0
    notes[0, 176 + 40, 5:25] = 0.8
    target_notes = torch.full((1, MEL.n_mels, 40), config.floor)
    target_notes[..., 5:25] = -2.0
    rolls, targets = torch.cat([notes, silence]), torch.cat([target_notes, torch.full_like(target_notes, config.floor)])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(60):
        optimizer.zero_grad()
        loss = (model(rolls) - targets).abs().mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = model(rolls)
    assert float(out[0, :, 10:20].mean()) > config.floor + 3.0  # it learned the notes...
    assert float((out[1] - config.floor).abs().max()) < 0.5  # ...and silence stayed near the floor


# -- the note prior --------------------------------------------------------------------------------


def _prior(seed: int = 0, note_frames: int = 12, release_frames: int = 4) -> NotePrior:
    prior = NotePrior(MEL.n_mels, note_frames, release_frames, MEL.log_floor, band_hz=torch.linspace(60, 3800, MEL.n_mels))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # random templates and brightness, a known release rate
        prior.template.copy_(torch.randn(prior.template.shape, generator=g) - 1.0)
        prior.loud_gain.copy_(torch.rand(prior.loud_gain.shape, generator=g) + 0.5)
    return prior


def _dense_prior(prior: NotePrior, roll: torch.Tensor) -> torch.Tensor:
    """The prior's definition, note by note and frame by frame."""
    b, _, n = roll.shape
    damper = prior.damper(roll[:, 88:176])
    power = torch.zeros(b, MEL.n_mels, n)
    for i in range(b):
        for key in range(88):
            for f in range(n):
                if roll[i, key, f] > 0.5:
                    v = roll[i, 176 + key, f]
                    for k in range(prior.note_frames):
                        if f + k < n:
                            quiet = torch.exp(prior.template[key, :, k])
                            magnitude = quiet * ((1 - v) + v * torch.exp(prior.loud_gain[key]))
                            power[i, :, f + k] += (magnitude * damper[i, key, f + k]) ** 2
    power = power + torch.exp(2 * prior.noise_floor)[None, :, None]
    return 0.5 * torch.log(power.clamp(min=MEL.log_floor**2))


def test_note_prior_equals_its_definition_note_by_note():
    prior = _prior()
    roll = _roll(40, batch=2)
    roll[:, 88:176] = (torch.rand(2, 88, 40, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(prior(roll), _dense_prior(prior, roll), rtol=0, atol=1e-5)


def test_note_prior_puts_a_note_on_its_onset_frame_and_no_earlier():
    prior = _prior()
    roll = torch.zeros(1, 264, 40)
    key, onset, release = 30, 10, 16  # held for frames 10..15
    roll[0, key, onset] = 1.0
    roll[0, 88 + key, onset:release] = 1.0
    roll[0, 176 + key, onset:release] = 0.7
    with torch.no_grad():
        out, floor = prior(roll)[0], prior(torch.zeros(1, 264, 40))[0]
    raised = (out - floor).amax(dim=0)  # (F,)
    assert float(raised[:onset].max()) == 0.0  # nothing before the onset...
    assert float(raised[onset]) > 1.0  # ...the attack on its frame
    assert float(raised[release + prior.release_frames - 1 :].max()) == 0.0  # the damper has stopped it
    rate = float(torch.nn.functional.softplus(prior.release_rate[key].detach()))
    # after the release the note decays at the key's damper rate: the magnitude ratio to the undamped template
    with torch.no_grad():
        undamped = prior(torch.cat([roll[:, :88], torch.ones(1, 88, 40), roll[:, 176:]], dim=1))[0]
    mag, free, fl = out.exp().square(), undamped.exp().square(), floor.exp().square()
    ratio = ((mag - fl) / (free - fl)).sqrt()[:, release + 1]  # one frame after the last held frame (release - 1) + 1
    torch.testing.assert_close(ratio, torch.full_like(ratio, math.exp(-2 * rate)), rtol=1e-3, atol=0)


def test_note_prior_louder_notes_are_louder_in_every_band():
    prior = _prior()
    roll = torch.zeros(2, 264, 20)
    roll[:, 40, 2] = 1.0
    roll[:, 128, 2:12] = 1.0
    roll[0, 216, 2:12], roll[1, 216, 2:12] = 0.3, 0.9
    with torch.no_grad():
        quiet, loud = prior(roll)[:, :, 2:12]
    assert bool((loud > quiet).all())


@pytest.mark.parametrize("kind", ["regression", "denoiser"])
def test_with_the_note_prior_the_reach_is_the_prior_then_the_trunk(kind):
    config = Notes2MelConfig.tiny(n_mels=MEL.n_mels, **PRIOR)
    # weights at 0.1: at 0.3 the prior's loud log-mel saturates the trunk, and the far edge of its reach rounds to zero
    model = _randomise(Notes2Mel(config) if kind == "regression" else Notes2MelDenoiser(config), scale=0.1).eval()
    trunk = model.trunk.receptive_field_frames + 2  # the roll's and the prior's width-3 input convs
    assert model.receptive_field_frames == 1 + model.trunk.receptive_field_frames + config.note_frames - 1
    rf = model.receptive_field_frames
    n, t0 = 4 * rf + 8, 2 * rf + 4
    roll = _roll(n)
    roll[:, 88:176] = 1.0  # every key held: a template sounds its whole length
    diff = _change_per_frame(model, kind, roll, t0, slice(0, 88))  # the onsets at t0 flipped
    assert diff[t0 - 1] > 1e-6 and float(diff[: t0 - trunk].max()) == 0.0  # before: non-causal, the trunk's reach only
    assert diff[t0 + config.note_frames - 1] > 1e-6  # after: as far as the template (beyond the trunk's own reach)...
    assert config.note_frames - 1 > trunk
    assert float(diff[t0 + rf + 1 :].max()) == 0.0  # ...and never beyond the receptive field


def test_an_empty_roll_gives_the_prior_noise_floor_from_the_start():
    config = Notes2MelConfig.tiny(n_mels=MEL.n_mels, **PRIOR)
    model = Notes2Mel(config)
    with torch.no_grad():
        out = model(torch.zeros(1, 264, 30))
        torch.testing.assert_close(out, model.prior.noise_floor[None, :, None].expand_as(out), rtol=0, atol=1e-6)
    assert float(out.max()) < config.floor + 3.0  # near silence: 10x the log floor at the start


def test_note_prior_starting_templates_put_each_key_in_its_band():
    band_hz = torch.as_tensor([50.0 * 1.1**i for i in range(60)])
    templates = harmonic_templates(band_hz, note_frames := 8)
    assert templates.shape == (88, 60, note_frames)
    a4 = 69 - 21
    loudest = int(templates[a4, :, 0].argmax())
    assert abs(float(band_hz[loudest]) - 440.0) < 0.1 * 440.0  # the fundamental's band
    assert bool((templates[:, :, 1:] < templates[:, :, :-1]).all())  # every partial decays


def test_guidance_scale_one_is_the_conditional_model():
    stage = _diffusion_stage()
    model, denoiser = stage.model, stage.denoiser
    roll = _roll(30, batch=2)
    x = torch.randn(2, MEL.n_mels, 30, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.5, 2.0])
    with torch.no_grad():
        conditional = denoiser(x, sigma, denoiser.prepare(roll))
        guided_one = CFGDenoiser(denoiser, 1.0)(x, sigma, roll)
        guided_two = CFGDenoiser(denoiser, 2.0)(x, sigma, roll)
        unconditional = denoiser(x, sigma, denoiser.prepare(roll, torch.ones(2, dtype=torch.bool)))
    torch.testing.assert_close(guided_one, conditional, rtol=0, atol=1e-5)
    torch.testing.assert_close(guided_two, 2 * conditional - unconditional, rtol=0, atol=1e-5)
    assert float((guided_two - conditional).abs().max()) > 1e-3  # the null condition is a different condition
    # and through the sampler: the stage at guidance 1 is sampling the conditional denoiser
    options = SynthesisOptions(seed=3, guidance=1.0)
    sigmas = get_sigmas("vp_cosine", 3)
    noise = frame_noise(2, MEL.n_mels, 0, 30, 3)
    by_hand = get_sampler("dpmpp_2m")(CFGDenoiser(denoiser, 1.0), noise * sigmas[0], sigmas, roll)
    with torch.no_grad():
        torch.testing.assert_close(stage.mel(roll, options, seed=3), model.denormalise(by_hand).clamp_min(model.config.floor), rtol=0, atol=1e-4)


# -- chunking ------------------------------------------------------------------------------------


def test_frame_noise_is_the_same_whichever_chunk_asks():
    whole = frame_noise(2, 4, 0, 300, seed=9)
    torch.testing.assert_close(torch.cat([frame_noise(2, 4, 0, 70, 9), frame_noise(2, 4, 70, 300, 9)], -1), whole, rtol=0, atol=0)
    assert not torch.equal(frame_noise(2, 4, 0, 300, seed=10), whole)


@pytest.mark.parametrize("prior", [{}, PRIOR], ids=["trunk", "note-prior"])
def test_chunked_mel_equals_whole_regression(prior):
    stage = _regression_stage(**prior)
    roll = _roll(150)
    options = SynthesisOptions()
    with torch.no_grad():
        whole = stage.mel(roll, options)
        chunked = stage.mel_chunked(roll, options, chunk_frames=17)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    # with less context than the receptive field the seams show: the test can fail
    stage.context_frames = lambda options: stage.receptive_field_frames // 2
    with torch.no_grad():
        assert float((stage.mel_chunked(roll, options, chunk_frames=17) - whole).abs().max()) > 1e-3


@pytest.mark.parametrize("sampler,prior", [("dpmpp_2m", {}), ("heun", {}), ("dpmpp_2m", PRIOR)], ids=["dpmpp_2m", "heun", "note-prior"])
def test_chunked_mel_equals_whole_diffusion(sampler, prior):
    stage = _diffusion_stage(steps=3, sampler=sampler, **prior)
    assert stage.context_frames(SynthesisOptions()) == sampler_evaluations(sampler, 3) * stage.receptive_field_frames
    roll = _roll(2 * stage.context_frames(SynthesisOptions()) + 40)
    options = SynthesisOptions(seed=4)
    with torch.no_grad():
        whole = stage.mel(roll, options, seed=4)
        chunked = stage.mel_chunked(roll, options, chunk_frames=23)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-4)


def test_composed_render_chunked_equals_whole(files, tmp_path):
    notes, vocoder_path = files
    synth = waveforge.load(notes)
    vocoder = waveforge.load(vocoder_path)
    midi = _midi(tmp_path / "song.mid")
    whole = synth.render(midi, vocoder=vocoder)
    synth.mel_chunk_frames, vocoder.chunk_frames = 40, 48  # both stages in many chunks
    chunked = synth.render(midi, vocoder=vocoder)
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-4)


# -- composition -----------------------------------------------------------------------------------


def test_composed_render_length_is_the_vocoders_output_for_that_mel(files, tmp_path):
    notes, vocoder_path = files
    synth = waveforge.load(notes)
    assert isinstance(synth, NotesToMelSynthesizer) and synth.family == "notes2mel"
    vocoder = waveforge.load(vocoder_path)
    midi = _midi(tmp_path / "song.mid")
    audio = synth.render(midi, vocoder=vocoder_path)
    mel = synth.render_mel(midi)
    n_frames = piano_roll(pretty_midi.PrettyMIDI(str(midi)), ROLL).shape[-1] + math.ceil(0.5 * ROLL.frame_rate)
    assert mel.shape == (1, MEL.n_mels, n_frames)
    assert audio.shape == vocoder.synthesize(mel).shape == (1, 1, n_frames * MEL.hop_length)
    torch.testing.assert_close(audio, vocoder.synthesize(mel), rtol=0, atol=0)


def test_one_file_holds_both_and_renders_the_same(files, tmp_path):
    notes, vocoder_path = files
    out = tmp_path / "piano.safetensors"
    assert waveforge.cli.main(["export", str(notes), "--vocoder", str(vocoder_path), "-o", str(out)]) == 0
    composed = waveforge.load(out)
    assert isinstance(composed, ComposedRenderer)
    assert composed.feature == ROLL and composed.sample_rate == MEL.sample_rate  # a piano-roll renderer to `eval`
    midi = _midi(tmp_path / "song.mid")
    torch.testing.assert_close(composed.render(midi), waveforge.load(notes).render(midi, vocoder=vocoder_path), rtol=0, atol=0)
    roll = _roll(25)
    assert composed.synthesize(roll).shape == (1, 1, 25 * MEL.hop_length)
    wav = tmp_path / "song.wav"
    assert waveforge.cli.main(["render", str(out), str(midi), "-o", str(wav)]) == 0
    assert wav.is_file()


def _error_line(capsys, argv) -> str:
    assert waveforge.cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("waveforge: error: ")
    return err


def test_one_line_errors_for_missing_and_mismatched_vocoders(files, tmp_path, capsys):
    notes, vocoder = files
    midi, wav = _midi(tmp_path / "song.mid"), tmp_path / "out.wav"
    assert "give a mel vocoder" in _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav)])
    assert "no such vocoder" in _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav), "--vocoder", str(tmp_path / "none.safetensors")])
    other_hop = save_model_file(tmp_path / "hop.safetensors", _vocoder_file(MelConfig(8000, 64, 32, 64, 16, 0.0, 4000.0)))
    err = _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav), "--vocoder", str(other_hop)])
    assert "hop_length 32 (notes model: 16)" in err and str(other_hop) in err
    other_rate = save_model_file(tmp_path / "rate.safetensors", _vocoder_file(MelConfig(16000, 64, 16, 64, 16, 0.0, 4000.0)))
    assert "sample_rate 16000 (notes model: 8000)" in _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav), "--vocoder", str(other_rate)])
    other_mel = save_model_file(tmp_path / "fmax.safetensors", _vocoder_file(MelConfig(8000, 64, 16, 64, 16, 0.0, 3000.0)))
    assert "f_max 3000.0" in _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav), "--vocoder", str(other_mel)])
    roll_model = _vocoder_file()
    roll_model = save_model_file(tmp_path / "roll.safetensors", ModelFile("melgan", {**roll_model.model_config, "cond_channels": 264}, ROLL, 8000,
                                 MelGANGenerator(MelGANGeneratorConfig(**{**roll_model.model_config, "cond_channels": 264})).state_dict()))
    assert "not a mel vocoder" in _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav), "--vocoder", str(roll_model)])
    assert "not a mel vocoder" in _error_line(capsys, ["render", str(notes), str(midi), "-o", str(wav), "--vocoder", str(notes)])
    assert "not a mel vocoder" in _error_line(capsys, ["export", str(notes), "--vocoder", str(roll_model), "-o", str(tmp_path / "x.safetensors")])
    assert "--vocoder goes with a notes-to-mel model" in _error_line(capsys, ["render", str(roll_model), str(midi), "-o", str(wav), "--vocoder", str(notes)])
    assert not wav.exists() and not (tmp_path / "x.safetensors").exists()
    with pytest.raises(BadInputError, match="give a mel vocoder"):
        waveforge.load(notes).render(midi)


def test_export_load_round_trip_both_objectives(tmp_path):
    roll = _roll(60)
    for stage in (_regression_stage(), _diffusion_stage(), _regression_stage(**PRIOR), _diffusion_stage(**PRIOR)):
        name = f"{stage.objective}-{stage.model.config.note_frames}"
        loaded = waveforge.load(save_model_file(tmp_path / f"{name}.safetensors", _notes_file(stage)))
        assert loaded.objective == stage.objective and loaded.mel_config == MEL and loaded.feature == ROLL
        options = SynthesisOptions(seed=1)
        with torch.no_grad():
            torch.testing.assert_close(loaded.mel_from_roll(roll, options), stage.mel_chunked(roll, options), rtol=0, atol=0)


def test_compose_refuses_what_it_cannot_compose(files):
    notes, vocoder = files
    notes_file, vocoder_file = read_model_file(notes), read_model_file(vocoder)
    with pytest.raises(BadInputError, match="not a mel vocoder"):
        compose_model_file(notes_file, notes_file)
    with pytest.raises(BadInputError, match="composes a notes-to-mel model"):
        compose_model_file(vocoder_file, vocoder_file)
    with pytest.raises(BadInputError, match="already holds a vocoder"):
        compose_model_file(compose_model_file(notes_file, vocoder_file), vocoder_file)


def test_the_mel_stage_stays_within_what_audio_can_have():
    """Guidance extrapolates past any mel of real audio; the stage bounds it, so the vocoder never refuses it."""
    from waveforge.audio.mel import log_mel_ceiling

    stage = _regression_stage()
    with torch.no_grad():
        stage.model.output.bias.add_(100.0)  # far above full scale
        mel = stage.mel(_roll(20), SynthesisOptions())
    assert float(mel.max()) == pytest.approx(log_mel_ceiling(MEL))
    diffusion = _diffusion_stage()
    with torch.no_grad():
        loud = diffusion.mel(_roll(20), SynthesisOptions(seed=0, guidance=40.0))
    assert float(loud.max()) <= log_mel_ceiling(MEL) + 1e-6 and float(loud.min()) >= math.log(MEL.log_floor) - 1e-6


def test_band_variance_measures_detail_over_time():
    steady = torch.full((1, 4, 50), -3.0)
    moving = steady + torch.linspace(-1, 1, 50)
    assert band_variance(steady) == 0.0
    assert band_variance(moving) == pytest.approx(float(torch.linspace(-1, 1, 50).var()), rel=1e-5)
