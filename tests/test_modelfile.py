import json

import pytest
import torch
from safetensors.torch import save_file

from waveforge.audio import MelConfig
from waveforge.errors import BadInputError
from waveforge.inference.modelfile import ModelFile, read_model_file, save_model_file
from waveforge.midi import PianoRollConfig


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    lin = torch.nn.Linear(3, 4)
    mf = ModelFile(
        family="melgan",
        model_config={"channels": 8, "factors": [4, 4]},
        feature=MelConfig(n_mels=40),
        sample_rate=22050,
        state_dict=lin.state_dict(),
        extra={"steps": 10},
    )
    path = save_model_file(tmp_path / "m.safetensors", mf)
    back = read_model_file(path)
    assert back.family == "melgan" and back.model_config == mf.model_config and back.extra == {"steps": 10}
    assert back.feature == MelConfig(n_mels=40)
    assert back.sample_rate == 22050
    for k, v in lin.state_dict().items():
        assert torch.equal(back.state_dict[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_piano_roll_and_unconditional_features_round_trip(tmp_path):
    for feature in (PianoRollConfig(sample_rate=16000, hop_length=200), None):
        mf = ModelFile("wavenet", {}, feature, 16000, {"w": torch.zeros(2)})
        assert read_model_file(save_model_file(tmp_path / "m.safetensors", mf)).feature == feature


def test_file_is_not_pickle(tmp_path, monkeypatch):
    mf = ModelFile("melgan", {}, None, 16000, {"w": torch.ones(3)})
    data = save_model_file(tmp_path / "m.safetensors", mf).read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])  # safetensors: 8-byte length, JSON header, raw tensors
    assert json.loads(header["__metadata__"]["waveforge"])["family"] == "melgan"
    # loading never touches pickle or torch.load
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("model loading used pickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert torch.equal(read_model_file(tmp_path / "m.safetensors").state_dict["w"], torch.ones(3))


def test_rejects_non_model_files(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(BadInputError, match="notes.safetensors: not a safetensors model file"):
        read_model_file(text)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign))
    with pytest.raises(BadInputError, match="no waveforge metadata"):
        read_model_file(foreign)
    with pytest.raises(BadInputError, match="no such model file"):
        read_model_file(tmp_path / "missing.safetensors")


def test_unknown_family_is_a_clear_error(tmp_path):
    import waveforge

    path = save_model_file(tmp_path / "m.safetensors", ModelFile("theremin", {}, None, 16000, {"w": torch.zeros(1)}))
    with pytest.raises(BadInputError, match="unknown model family 'theremin'"):
        waveforge.load(path)
