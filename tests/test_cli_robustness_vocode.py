"""``waveforge vocode`` under bad input: nothing lost, one line and exit 2, no tracebacks (issue 19)."""

import os

import numpy as np
import pytest
import torch

import waveforge
from waveforge.cli import main
from waveforge.errors import BadInputError
from robustness_helpers import refused as _refused, tiny_melgan, tiny_renderer, write_wav


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_melgan(tmp_path_factory.mktemp("model") / "m.safetensors")




def test_output_folder_equal_to_the_input_folder_never_overwrites_the_input(model, tmp_path, capsys, one_thread):
    song = write_wav(tmp_path / "song.wav")
    before = song.read_bytes()
    _refused(capsys, ["vocode", model, song, "-o", tmp_path], "would overwrite the input")
    _refused(capsys, ["vocode", model, song, "-o", tmp_path, "--overwrite"], "would overwrite the input")
    assert song.read_bytes() == before


def test_two_inputs_with_one_stem_are_refused_before_any_work(model, tmp_path, capsys, one_thread):
    a, b = write_wav(tmp_path / "a" / "song.wav"), write_wav(tmp_path / "b" / "song.wav")
    np.save(tmp_path / "song.npy", np.zeros((80, 8), np.float32))
    _refused(capsys, ["vocode", model, a, b, tmp_path / "song.npy", "-o", tmp_path / "out"], "song.wav", "both")
    assert not (tmp_path / "out" / "song.wav").exists()


def test_every_item_of_a_mel_batch_is_written(model, tmp_path, capsys, one_thread):
    mels = torch.randn(2, 80, 6).numpy() - 4
    np.save(tmp_path / "pair.npy", mels)
    assert main(["vocode", str(model), str(tmp_path / "pair.npy"), "-o", str(tmp_path / "out")]) == 0
    synth = waveforge.load(model)
    for i in range(2):
        written = waveforge.audio.load_audio(tmp_path / "out" / f"pair-{i:03d}.wav")
        expected = synth.vocode(torch.from_numpy(mels[i]))[0]
        assert written.shape == expected.shape == (1, 6 * 256)
        assert torch.allclose(written, expected, atol=1.5 / 32768)
    assert not (tmp_path / "out" / "pair.wav").exists()


def test_an_existing_output_is_kept_unless_overwrite(model, tmp_path, capsys, one_thread):
    song = write_wav(tmp_path / "in" / "song.wav")
    out = tmp_path / "out" / "song.wav"
    out.parent.mkdir()
    out.write_bytes(b"earlier result")
    _refused(capsys, ["vocode", model, song, "-o", out.parent], "already exists", "--overwrite")
    assert out.read_bytes() == b"earlier result"
    assert main(["vocode", str(model), str(song), "-o", str(out.parent), "--overwrite"]) == 0
    assert waveforge.audio.audio_info(out).frames == 11025 // 256 * 256


def test_a_second_writer_of_one_name_fails_clearly(tmp_path):
    from waveforge.audio.io import save_audio

    out = tmp_path / "song.wav"
    save_audio(out, np.zeros(100), 22050, overwrite=False)  # the first writer wins
    with pytest.raises(BadInputError, match="already exists"):
        save_audio(out, np.ones(100) * 0.5, 22050, overwrite=False)
    assert waveforge.audio.load_audio(out).abs().max() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["song.wav"]  # no temporary left behind


def test_a_huge_mel_value_is_refused_not_written_as_dc(model, tmp_path, capsys, one_thread):
    np.save(tmp_path / "loud.npy", np.full((80, 6), 1e30, np.float32))
    _refused(capsys, ["vocode", model, tmp_path / "loud.npy", "-o", tmp_path / "out"], "loud.npy", "mel values reach 1e+30")
    assert not (tmp_path / "out" / "loud.wav").exists()


def test_the_python_api_refuses_a_waveform_holding_nan(model):
    synth = waveforge.load(model)
    audio = torch.zeros(1, 4096)
    audio[0, 100] = float("nan")
    with pytest.raises(BadInputError, match="NaN"):
        synth.vocode(audio)


def _huge_npy_header(path):
    """A header-only .npy (a few hundred bytes) that asks for 8e9 float32 values."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (80, 100_000_000)})


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: write_wav(p.with_suffix(".wav"), seconds=200 / 22050), "shorter than one analysis window"),
        (lambda p: np.save(p, np.zeros((80, 0), np.float32)), "no frames"),
        (lambda p: np.save(p, np.array([["a"] * 4] * 80)), "not numbers"),
        (lambda p: np.save(p, np.zeros((80, 6), np.complex64)), "complex"),
        (_huge_npy_header, "over the limit"),
    ],
    ids=["wav-under-one-window", "mel-80x0", "npy-strings", "npy-complex", "npy-huge-header"],
)
def test_small_and_odd_inputs_are_one_line(model, tmp_path, capsys, make, needle, one_thread):
    path = tmp_path / "odd.npy"
    made = make(path)
    path = made if made is not None and hasattr(made, "suffix") else path
    _refused(capsys, ["vocode", model, path, "-o", tmp_path / "out"], path.name, needle)


def test_a_renderer_given_a_mel_is_one_line(tmp_path, capsys):
    renderer = tiny_renderer(tmp_path / "r.safetensors")
    np.save(tmp_path / "m.npy", np.zeros((80, 6), np.float32))
    _refused(capsys, ["vocode", renderer, tmp_path / "m.npy", "-o", tmp_path / "out"], "m.npy", "cannot vocode")


def test_output_paths_are_checked_before_the_work(model, tmp_path, capsys):
    song = write_wav(tmp_path / "song.wav")
    (tmp_path / "afile").write_text("x")
    _refused(capsys, ["vocode", model, song, "-o", tmp_path / "afile"], "afile", "is a file")
    _refused(capsys, ["vocode", model, song, "-o", tmp_path / "afile" / "below"], "afile")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        _refused(capsys, ["vocode", model, song, "-o", ro], "cannot write")


def test_cuda_without_a_gpu_is_one_line(model, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _refused(capsys, ["vocode", model, write_wav(tmp_path / "song.wav"), "-o", tmp_path / "out", "--device", "cuda"], "no CUDA GPU")


def test_a_full_disk_is_one_line_and_leaves_no_temporary(model, tmp_path, capsys, monkeypatch, one_thread):
    import errno

    import soundfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    song = write_wav(tmp_path / "in" / "song.wav")
    monkeypatch.setattr(soundfile, "write", full)
    _refused(capsys, ["vocode", model, song, "-o", tmp_path / "out"], "song.wav", "No space left")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_model_over_the_parameter_limit_is_refused_before_building(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WAVEFORGE_MAX_PARAMETERS", "1000")
    _refused(capsys, ["vocode", model, write_wav(tmp_path / "song.wav"), "-o", tmp_path / "out"], "m.safetensors", "over the limit of 1,000")


def test_a_wav_declaring_1_hz_is_refused(model, tmp_path, capsys):
    import soundfile

    soundfile.write(str(tmp_path / "slow.wav"), np.zeros(100, np.float32), 1, subtype="FLOAT")
    _refused(capsys, ["vocode", model, tmp_path / "slow.wav", "-o", tmp_path / "out"], "slow.wav", "sample rate 1 Hz is outside")


def test_a_prime_sample_rate_resamples_without_a_giant_kernel(tmp_path):
    from waveforge.audio.io import MAX_POLYPHASE_RATIO, load_audio

    rate = 7919  # prime: torchaudio's polyphase kernel would be 7919 x 22050 phases
    assert rate > MAX_POLYPHASE_RATIO
    path = write_wav(tmp_path / "prime.wav", seconds=1.0, sample_rate=rate)
    audio = load_audio(path, 22050)[0].numpy()
    assert audio.shape == (-(-rate * 22050 // rate),) == (22050,)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    assert abs(np.argmax(spectrum) * 22050 / audio.size - 440.0) <= 1.0  # the 440 Hz tone stays at 440 Hz


def test_non_finite_synthesis_is_refused_and_nothing_is_written(model, tmp_path, capsys, monkeypatch, one_thread):
    from waveforge.inference.families.melgan import MelGANAdapter

    def diverged(self, model, cond, n_samples, options):
        return torch.full((cond.shape[0], 1, n_samples), float("nan"))

    monkeypatch.setattr(MelGANAdapter, "synthesize", diverged)
    with pytest.raises(BadInputError, match="NaN or infinite"):
        waveforge.load(model).vocode(torch.zeros(1, 4096))
    song = write_wav(tmp_path / "in" / "song.wav")
    _refused(capsys, ["vocode", model, song, "-o", tmp_path / "out"], "song.wav", "NaN or infinite")
    assert not (tmp_path / "out" / "song.wav").exists()
    from waveforge.audio.io import save_audio

    with pytest.raises(BadInputError, match="NaN"):
        save_audio(tmp_path / "direct.wav", np.full(10, np.nan), 22050)


def test_an_unwritable_folder_is_refused_before_the_work(model, tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    def denied(*args, **kwargs):  # what a read-only or immutable folder answers (the tests may run as root)
        raise PermissionError(errno.EACCES, "Permission denied")

    song = write_wav(tmp_path / "song.wav")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    _refused(capsys, ["vocode", model, song, "-o", tmp_path / "locked"], "locked", "cannot write here (Permission denied)")
