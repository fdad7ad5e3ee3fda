"""The default thread count follows the free cores (issue 19: thread oversubscription)."""

import pytest
import torch

from waveforge.cli import main
from waveforge.errors import BadInputError
from waveforge.utils.threads import THREADS_ENV, choose_threads, free_cores


def test_free_cores_subtract_the_load():
    assert free_cores(cores=2, load=0.3) == 2
    assert free_cores(cores=2, load=1.2) == 1
    assert free_cores(cores=2, load=19.6) == 1  # never zero
    assert free_cores(cores=16, load=4.9) == 12


def test_explicit_settings_win(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads() is None  # PyTorch already follows OMP_NUM_THREADS
    monkeypatch.setenv(THREADS_ENV, "5")
    assert choose_threads() == 5
    assert choose_threads(2) == 2
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(BadInputError, match=THREADS_ENV):
        choose_threads()
    monkeypatch.delenv(THREADS_ENV)
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.getloadavg", lambda: (50.0, 50.0, 50.0))
    assert choose_threads() == 1


def test_the_threads_flag_reaches_torch(tmp_path, capsys, monkeypatch):
    threads = torch.get_num_threads()
    try:
        # the command fails after the threads are set (no such model); the flag is applied first
        assert main(["sample", str(tmp_path / "none.safetensors"), "--seconds", "1", "-o", str(tmp_path / "x.wav"), "--threads", "1"]) == 2
        assert torch.get_num_threads() == 1
        assert main(["sample", str(tmp_path / "none.safetensors"), "--seconds", "1", "-o", str(tmp_path / "x.wav"), "--threads", "0"]) == 2
        assert "--threads must be at least 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
