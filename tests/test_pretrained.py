"""Shipped models: names resolve to package files, render / vocode default to them, float16 storage, the demo's first part."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import waveforge
import waveforge.pretrained
from waveforge.audio.io import load_audio
from waveforge.audio.mel import MelConfig
from waveforge.cli import main
from waveforge.errors import BadInputError
from waveforge.inference.families.notes2mel import VOCODER_PREFIX
from waveforge.inference.modelfile import ModelFile, convert_model_file, read_model_file, save_model_file
from waveforge.inference.twostage import ComposedRenderer, compose_model_file
from waveforge.midi.roll import PianoRollConfig
from waveforge.models.melgan import MelGANGenerator, MelGANGeneratorConfig
from waveforge.models.notes2mel import Notes2Mel, Notes2MelConfig
from waveforge.pretrained import SHIPPED

from robustness_helpers import error_lines, write_wav

FIXTURE_MIDI = Path(__file__).parent / "fixtures" / "scale.mid"
CARD_TEMPLATE = Path(__file__).parents[1] / "recipes" / "piano" / "model-card-template.md"
REAL_FOLDER = waveforge.pretrained.folder()
MEL = MelConfig()  # 22.05 kHz, hop 256, 80 bands: the shipped models' and the demo corpus's settings


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _vocoder_file() -> ModelFile:
    torch.manual_seed(1)
    model = MelGANGenerator(MelGANGeneratorConfig.tiny(cond_channels=MEL.n_mels, upsample_factors=[4, 4, 4, 4], initial_channels=16))
    return ModelFile("melgan", model.config.to_dict(), MEL, MEL.sample_rate, model.state_dict())


def _renderer_file() -> ModelFile:
    torch.manual_seed(2)
    notes = Notes2Mel(Notes2MelConfig.tiny(n_mels=MEL.n_mels))
    config = {"objective": "regression", "notes2mel": notes.config.to_dict(), "mel": MEL.to_dict()}
    notes_file = ModelFile("notes2mel", config, PianoRollConfig(), MEL.sample_rate, notes.state_dict())
    return compose_model_file(notes_file, _vocoder_file())


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """The pretrained folder replaced by one holding tiny float16 models and their cards."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    save_model_file(tmp_path / "vocoder32.safetensors", _vocoder_file())
    save_model_file(tmp_path / "piano32.safetensors", _renderer_file())
    convert_model_file(tmp_path / "vocoder32.safetensors", folder / "piano-vocoder.safetensors", "float16")
    convert_model_file(tmp_path / "piano32.safetensors", folder / "piano.safetensors", "float16")
    (folder / "piano.md").write_text("# piano: a tiny test renderer\n\nmore\n")
    (folder / "piano-vocoder.md").write_text("\n## piano-vocoder: a tiny test vocoder\n")
    monkeypatch.setattr(waveforge.pretrained, "folder", lambda: folder)
    return folder


@pytest.fixture
def none_shipped(tmp_path, monkeypatch):
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.setattr(waveforge.pretrained, "folder", lambda: folder)
    return folder


# -- names ------------------------------------------------------------------------------------------


def test_a_name_loads_the_package_file_and_a_path_still_works(shipped, tmp_path, monkeypatch):
    vocoder = waveforge.load("piano-vocoder")
    assert vocoder.family == "melgan" and vocoder.sample_rate == MEL.sample_rate
    renderer = waveforge.load("piano")
    assert isinstance(renderer, ComposedRenderer)
    by_path = waveforge.load(shipped / "piano-vocoder.safetensors")
    for (name, a), (_, b) in zip(vocoder.model.state_dict().items(), by_path.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # a file that happens to carry a shipped name is that file, not the package's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "piano").write_bytes(b"not a model")
    with pytest.raises(BadInputError, match="not a safetensors model file"):
        waveforge.load("piano")


def test_an_absent_shipped_model_is_one_line(none_shipped, tmp_path, capsys):
    with pytest.raises(BadInputError, match="'piano' is not in this install"):
        waveforge.load("piano")
    midi, wav = FIXTURE_MIDI, write_wav(tmp_path / "song.wav")
    for argv, name in ((["render", str(midi), "-o", str(tmp_path / "x.wav")], "piano"),
                       (["vocode", str(wav), "-o", str(tmp_path / "out")], "piano-vocoder"),
                       (["eval", "piano", "--data", str(tmp_path)], "piano"),
                       (["export", "a.ckpt", "--vocoder", "piano-vocoder", "-o", str(tmp_path / "p.safetensors")], "piano-vocoder")):
        assert main(argv) == 2, argv
        lines, err = error_lines(capsys)
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"the shipped model '{name}' is not in this install" in lines[0]
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "out").exists()


def test_an_unknown_name_says_which_names_exist(none_shipped, capsys):
    with pytest.raises(BadInputError, match="nor a shipped model .shipped: piano, piano-vocoder"):
        waveforge.load("pianoo")


def test_models_lists_what_is_shipped(shipped, capsys):
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == set(SHIPPED)
    for name, does in (("piano", "a tiny test renderer"), ("piano-vocoder", "a tiny test vocoder")):
        row = rows[name]
        path = shipped / SHIPPED[name].filename
        with safe_open(str(path), framework="pt") as f:
            parameters = sum(f.get_tensor(k).numel() for k in f.keys())
        assert row["present"] and row["does"] == does and row["sample_rate"] == MEL.sample_rate
        assert row["parameters"] == parameters and row["size_mb"] == round(path.stat().st_size / 1e6, 2)
        assert row["dtypes"] == ["float16"]
    assert rows["piano"]["family"] == "notes2mel" and rows["piano-vocoder"]["family"] == "melgan"
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"piano-vocoder +melgan, 22050 Hz, [0-9.]+ M parameters \(float16\), [0-9.]+ MB", text)


def test_models_says_when_a_file_is_absent(none_shipped, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "piano          not shipped in this install (piano.safetensors absent)" in out
    assert "a MelGAN piano mel vocoder" in out  # what it does, from the registry when there is no card


# -- defaults on the command line ----------------------------------------------------------------


def test_render_and_vocode_without_a_model_use_the_shipped_ones(shipped, tmp_path):
    assert main(["render", str(FIXTURE_MIDI), "-o", str(tmp_path / "default.wav")]) == 0
    assert main(["render", str(shipped / "piano.safetensors"), str(FIXTURE_MIDI), "-o", str(tmp_path / "path.wav")]) == 0
    assert main(["render", "piano", str(FIXTURE_MIDI), "-o", str(tmp_path / "name.wav")]) == 0
    default = load_audio(tmp_path / "default.wav")
    assert default.shape[-1] > MEL.sample_rate  # the whole piece, not an empty file
    torch.testing.assert_close(default, load_audio(tmp_path / "path.wav"), rtol=0, atol=0)
    torch.testing.assert_close(default, load_audio(tmp_path / "name.wav"), rtol=0, atol=0)

    a, b = write_wav(tmp_path / "in" / "a.wav"), write_wav(tmp_path / "in" / "b.wav", seconds=0.3)
    assert main(["vocode", str(a), str(b), "-o", str(tmp_path / "default")]) == 0
    assert main(["vocode", str(shipped / "piano-vocoder.safetensors"), str(a), str(b), "-o", str(tmp_path / "path")]) == 0
    for stem in ("a", "b"):
        torch.testing.assert_close(load_audio(tmp_path / "default" / f"{stem}.wav"), load_audio(tmp_path / "path" / f"{stem}.wav"), rtol=0, atol=0)


def test_every_command_taking_a_model_takes_a_name(shipped, tiny_corpus, tmp_path, capsys):
    renderer = _renderer_file()
    notes = ModelFile("notes2mel", {k: v for k, v in renderer.model_config.items() if k != "vocoder"}, renderer.feature,
                      renderer.sample_rate, {k: v for k, v in renderer.state_dict.items() if not k.startswith(VOCODER_PREFIX)})
    save_model_file(tmp_path / "notes.safetensors", notes)
    assert main(["render", str(tmp_path / "notes.safetensors"), str(FIXTURE_MIDI), "--vocoder", "piano-vocoder", "-o", str(tmp_path / "r.wav")]) == 0
    assert main(["export", str(tmp_path / "notes.safetensors"), "--vocoder", "piano-vocoder", "-o", str(tmp_path / "c.safetensors")]) == 0
    assert isinstance(waveforge.load(tmp_path / "c.safetensors"), ComposedRenderer)
    assert main(["vocode", "piano-vocoder", str(write_wav(tmp_path / "s.wav")), "-o", str(tmp_path / "v")]) == 0
    assert main(["eval", "piano-vocoder", "--data", str(tiny_corpus), "--max-pieces", "1", "--seconds", "1",
                 "-o", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["pieces"] == 1
    assert main(["export", "piano-vocoder", "--dtype", "float32", "-o", str(tmp_path / "v32.safetensors")]) == 0
    assert read_model_file(tmp_path / "v32.safetensors").extra["weights_dtype"] == "float32"


def test_vocoder_weights_without_a_vocoder_config_are_refused(tmp_path):
    renderer = _renderer_file()
    config = {k: v for k, v in renderer.model_config.items() if k != "vocoder"}
    save_model_file(tmp_path / "odd.safetensors", ModelFile("notes2mel", config, renderer.feature, renderer.sample_rate, renderer.state_dict))
    with pytest.raises(BadInputError, match="config names no vocoder"):
        waveforge.load(tmp_path / "odd.safetensors")


def test_a_model_alone_is_refused_in_one_line(shipped, tmp_path, capsys):
    assert main(["render", "piano", "-o", str(tmp_path / "x.wav")]) == 2
    lines, _ = error_lines(capsys)
    assert len(lines) == 1 and "is a model; render needs an input file" in lines[0]


# -- float16 storage ------------------------------------------------------------------------------


def test_float16_file_loads_as_float32_and_vocodes_within_its_rounding(tmp_path):
    full = save_model_file(tmp_path / "v32.safetensors", _vocoder_file())
    half = convert_model_file(full, tmp_path / "v16.safetensors", "float16")
    n_weights = sum(t.numel() for t in read_model_file(full).state_dict.values())
    assert half.stat().st_size <= full.stat().st_size - 2 * n_weights + 100  # two bytes a weight saved (the header barely changes)
    with safe_open(str(half), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    stored = read_model_file(full).state_dict
    for name, tensor in read_model_file(half).state_dict.items():  # float32 again, exactly the rounded weights
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(tensor, stored[name].half().float(), rtol=0, atol=0)
    assert read_model_file(half).extra["weights_dtype"] == "float16"
    v32, v16 = waveforge.load(full), waveforge.load(half)
    assert all(p.dtype == torch.float32 for p in v16.model.parameters())
    mel = v32.mel(load_audio(write_wav(tmp_path / "s.wav", seconds=0.5)))
    a32, a16 = v32.synthesize(mel), v16.synthesize(mel)
    difference = float((a32 - a16).abs().max())
    assert 0 < difference <= 1e-2 * float(a32.abs().max())


def test_export_dtype_converts_an_exported_model_and_keeps_integer_weights_refused(tmp_path, capsys):
    full = save_model_file(tmp_path / "v32.safetensors", _vocoder_file())
    assert main(["export", str(full), "--dtype", "float16", "-o", str(tmp_path / "v16.safetensors")]) == 0
    assert read_model_file(tmp_path / "v16.safetensors").extra["weights_dtype"] == "float16"
    assert main(["export", str(full), "--dtype", "float16", "-o", str(full)]) == 2  # never over its input
    assert "would overwrite the input" in error_lines(capsys)[0][0]
    model_file = read_model_file(full)
    name = next(k for k, v in model_file.state_dict.items() if v.dim() > 1)
    model_file.state_dict[name] = model_file.state_dict[name].round().to(torch.int32)
    save_model_file(tmp_path / "int.safetensors", model_file)
    convert_model_file(tmp_path / "int.safetensors", tmp_path / "int16.safetensors", "float16")
    with safe_open(str(tmp_path / "int16.safetensors"), framework="pt") as f:
        assert f.get_tensor(name).dtype == torch.int32  # integers are not converted ...
    with pytest.raises(BadInputError, match="floating point"):
        waveforge.load(tmp_path / "int16.safetensors")  # ... and still refused where weights are float
    model_file = read_model_file(full)
    model_file.state_dict[name] = model_file.state_dict[name] * 0 + 1e5
    save_model_file(tmp_path / "big.safetensors", model_file)
    with pytest.raises(BadInputError, match="beyond float16's range"):
        convert_model_file(tmp_path / "big.safetensors", tmp_path / "big16.safetensors", "float16")


# -- the demo's first part ------------------------------------------------------------------------


def test_demo_runs_the_shipped_models_on_a_held_out_piece(shipped, tiny_corpus, tmp_path, capsys):
    from waveforge.data.maestro import MaestroIndex
    from waveforge.demo import shipped_demo

    piece = MaestroIndex(tiny_corpus).split("test")[0]
    metrics = shipped_demo(tmp_path / "shipped", piece, notes=False, seconds=3.0)
    names = ("reference", "piano", "piano-vocoder", "griffin-lim", "fluidsynth")
    lengths = {load_audio(tmp_path / "shipped" / f"{n}.wav").shape[-1] for n in names}
    assert lengths == {int(3.0 * MEL.sample_rate) // 256 * 256}
    assert (tmp_path / "shipped" / "spectrograms.png").stat().st_size > 1000
    assert json.loads((tmp_path / "shipped" / "metrics.json").read_text()) == metrics
    assert set(metrics["against_reference"]) == set(names) - {"reference"}
    assert "piano-vocoder.wav: the recording's mel-spectrogram turned back into sound" in capsys.readouterr().out


def test_demo_without_shipped_models_says_so_in_one_line(none_shipped, tiny_corpus, tmp_path, capsys):
    from waveforge.data.maestro import MaestroIndex
    from waveforge.demo import shipped_demo

    assert shipped_demo(tmp_path / "shipped", MaestroIndex(tiny_corpus).split("test")[0]) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no shipped models in this install" in out[0]
    assert not (tmp_path / "shipped").exists()


# -- the real package files (added by recipes/piano/run.sh) --------------------------------------


@pytest.mark.skipif(not (REAL_FOLDER / "piano.safetensors").is_file(),
                    reason="the shipped piano.safetensors is absent from src/waveforge/pretrained/ (recipes/piano/run.sh makes it)")
def test_render_a_fixture_midi_with_no_model_argument(tmp_path):
    out = tmp_path / "x.wav"
    assert main(["render", str(FIXTURE_MIDI), "-o", str(out)]) == 0
    audio = load_audio(out)
    assert audio.shape[-1] > 4 * 22050 and float(audio.abs().max()) > 1e-3  # the whole scale, and not silence


def test_every_shipped_file_has_a_card_and_all_fit_in_25_mb():
    template_headings = [line for line in CARD_TEMPLATE.read_text().splitlines() if line.startswith("## ")]
    assert template_headings  # the template names the sections every card carries
    present = [m for m in SHIPPED.values() if (REAL_FOLDER / m.filename).is_file()]
    for model in present:
        card = REAL_FOLDER / model.card
        assert card.is_file(), f"{model.filename} is shipped without its card {model.card}"
        headings = [line for line in card.read_text().splitlines() if line.startswith("## ")]
        assert headings == template_headings, f"{model.card} does not follow {CARD_TEMPLATE.name}"
        assert "TODO" not in card.read_text(), f"{model.card} still has TODOs: fill them in from recipes/piano/run.sh's results"
        read_model_file(REAL_FOLDER / model.filename)  # a valid model file
    assert sum((REAL_FOLDER / m.filename).stat().st_size for m in present) <= 25_000_000
    assert {p.name for p in REAL_FOLDER.glob("*.safetensors")} <= {m.filename for m in SHIPPED.values()}


@pytest.mark.slow
def test_demo_scores_the_shipped_models_notes_with_the_transcriber(shipped, tiny_corpus, tmp_path):
    from waveforge.data.maestro import MaestroIndex
    from waveforge.demo import shipped_demo
    from waveforge.notes import notes_available

    if not notes_available():
        pytest.skip("the notes extra (transkun, mir_eval) is not installed")
    metrics = shipped_demo(tmp_path / "shipped", MaestroIndex(tiny_corpus).split("test")[0], notes=True, seconds=3.0)
    assert set(metrics["onset_f1"]) == {"reference", "piano", "piano-vocoder", "fluidsynth"}
    assert metrics["onset_f1"]["reference"] > 0.5  # the transcriber hears the reference's notes: the scoring is wired up
    assert all(0.0 <= f1 <= 1.0 for f1 in metrics["onset_f1"].values())
