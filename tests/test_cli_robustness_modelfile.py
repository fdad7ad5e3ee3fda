"""Malformed and self-contradicting model files: one line naming the file, exit 2, before allocating (issue 19)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import waveforge
from waveforge.cli import main
from waveforge.errors import BadInputError
from waveforge.inference.modelfile import METADATA_KEY
from robustness_helpers import error_lines, tiny_melgan, write_wav


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return tiny_melgan(tmp_path_factory.mktemp("good") / "m.safetensors")


def _rewrite(good, out, tensors=None, meta=None):
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        metadata = dict(f.metadata())
    state = load_file(str(good))
    if tensors is not None:
        state = tensors(state)
    if meta is not None:
        metadata[METADATA_KEY] = json.dumps(meta(json.loads(metadata[METADATA_KEY])))
    save_file(state, str(out), metadata=metadata)
    return out


def _set(path_keys, value):
    def edit(meta):
        node = meta
        for key in path_keys[:-1]:
            node = node[key]
        node[path_keys[-1]] = value
        return meta

    return edit


def _first_weight(state):
    return next(k for k in state if "weight" in k)


CASES = {
    "wrong-shape": dict(tensors=lambda s: {**s, _first_weight(s): torch.zeros(3, 3, 3)}, needle="size mismatch"),
    "missing-tensor": dict(tensors=lambda s: {k: v for k, v in s.items() if k != _first_weight(s)}, needle="Missing key"),
    "extra-tensor": dict(tensors=lambda s: {**s, "stowaway": torch.zeros(2)}, needle="Unexpected key"),
    "nan-weights": dict(tensors=lambda s: {**s, _first_weight(s): torch.full_like(s[_first_weight(s)], float("nan"))}, needle="NaN"),
    "integer-weights": dict(tensors=lambda s: {**s, _first_weight(s): s[_first_weight(s)].round().to(torch.int32)}, needle="floating point"),
    "unknown-config-key": dict(meta=_set(["model_config", "frobnicate"], 3), needle="frobnicate"),
    "wrong-config-type": dict(meta=_set(["model_config", "initial_channels"], "sixteen"), needle="does not fit"),
    "bad-enum": dict(meta=_set(["model_config", "upsampling"], "cubic"), needle="upsampling"),
    "upsample-factors-0": dict(meta=_set(["model_config", "upsample_factors"], [0]), needle="upsample_factors"),
    "huge-config": dict(meta=_set(["model_config", "initial_channels"], 200_000 * 16), needle="does not fit"),
    "metadata-list": dict(meta=lambda m: [m], needle="not an object"),
    "sample-rate-0": dict(meta=_set(["sample_rate"], 0), needle="sample rate 0"),
    "feature-hop-contradicts-model": dict(meta=_set(["feature", "hop_length"], 128), needle="hop_length"),
    "sample-rate-contradicts-feature": dict(meta=_set(["sample_rate"], 44100), needle="contradicts"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_model_file_is_one_line(good, tmp_path, capsys, case):
    spec = dict(CASES[case])
    needle = spec.pop("needle")
    bad = _rewrite(good, tmp_path / f"{case}.safetensors", **spec)
    with pytest.raises(BadInputError, match=needle) as info:
        waveforge.load(bad)
    assert str(bad) in str(info.value)
    wav = write_wav(tmp_path / "song.wav")
    assert main(["vocode", str(bad), str(wav), "-o", str(tmp_path / "out")]) == 2
    lines, err = error_lines(capsys)
    assert len(lines) == 1 and "Traceback" not in err and f"{case}.safetensors" in lines[0], err
    assert not (tmp_path / "out" / "song.wav").exists()


def test_the_good_file_still_loads_and_vocodes(good, tmp_path):
    synth = waveforge.load(good)
    assert synth.vocode(write_wav(tmp_path / "song.wav")).shape == (1, 1, 11025 // 256 * 256)
