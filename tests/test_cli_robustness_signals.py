"""Signals and leftovers: SIGTERM unwinds like Ctrl-C, stale temporaries are swept (issue 19)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from waveforge.audio.io import save_audio, load_audio
from waveforge.utils.atomic import sweep_stale_temps
from robustness_helpers import tiny_melgan, write_wav

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, signal, sys, time
import soundfile
from waveforge import cli
real_write = soundfile.write
def write_then_get_killed(*args, **kwargs):
    real_write(*args, **kwargs)  # the temporary is on disk, not yet renamed
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
soundfile.write = write_then_get_killed
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow  # a subprocess: imports torch afresh
def test_sigterm_during_a_write_leaves_no_temporary(tmp_path):
    model = tiny_melgan(tmp_path / "m.safetensors")
    wav = write_wav(tmp_path / "in" / "song.wav")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "vocode", str(model), str(wav), "-o", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "waveforge: terminated"
    assert list((tmp_path / "out").iterdir()) == []


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_the_same_output_are_swept(tmp_path):
    stale = tmp_path / f".song.{_dead_pid()}.x1y2.tmp.wav"  # what SIGKILL left mid-write
    live = tmp_path / f".song.{os.getppid()}.a1b2.tmp.wav"  # another process writing right now
    other = tmp_path / f".other.{_dead_pid()}.c3d4.tmp.wav"  # a different output's
    for p in (stale, live, other):
        p.write_bytes(b"RIFF partial")
    save_audio(tmp_path / "song.wav", np.zeros(64), 22050)
    assert not stale.exists() and live.exists() and other.exists()
    assert load_audio(tmp_path / "song.wav").shape == (1, 64)
    assert sweep_stale_temps(tmp_path / "other.wav") == [other]
