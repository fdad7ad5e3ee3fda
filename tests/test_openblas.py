"""waveforge._openblas: AVX-512 OpenBLAS kernels on AMD CPUs that OpenBLAS's dispatch does not know."""

import pytest

from waveforge._openblas import choose_core

AVX512 = "fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl"


def _cpuinfo(tmp_path, vendor: str, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 26\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


def test_sets_skylakex_on_avx512_amd(tmp_path):
    env = {}
    assert choose_core(env, _cpuinfo(tmp_path, "AuthenticAMD", AVX512)) == "SkylakeX"
    assert env == {"OPENBLAS_CORETYPE": "SkylakeX"}


def test_leaves_a_users_choice_alone(tmp_path):
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    assert choose_core(env, _cpuinfo(tmp_path, "AuthenticAMD", AVX512)) is None
    assert env == {"OPENBLAS_CORETYPE": "Haswell"}


def test_no_change_without_every_avx512_subset_or_on_intel(tmp_path):
    for vendor, flags in [("AuthenticAMD", "avx2 avx512f avx512cd"), ("GenuineIntel", AVX512)]:
        env = {}
        assert choose_core(env, _cpuinfo(tmp_path, vendor, flags)) is None
        assert env == {}


def test_no_cpuinfo(tmp_path):
    env = {}
    assert choose_core(env, str(tmp_path / "missing")) is None and env == {}


@pytest.mark.slow  # a fresh interpreter importing torch: several seconds
def test_importing_waveforge_changes_no_environment():
    """Only the command and the bench choose OpenBLAS's kernels; importing the library (models,
    inference, kernels) neither calls nor imports the chooser, and leaves os.environ as it was."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    # third-party libraries may set variables of their own on import (threadpoolctl: KMP_DUPLICATE_LIB_OK)
    code = ("import os, sys, numpy, torch, threadpoolctl; before = dict(os.environ); import waveforge, waveforge.models, waveforge.inference, waveforge.kernels.wavenet; "
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items()); "
            "assert 'waveforge._openblas' not in sys.modules")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_command_chooses_the_core_first(monkeypatch, tmp_path, capsys):
    import waveforge._openblas as openblas
    from waveforge.cli import main

    calls = []
    monkeypatch.setattr(openblas, "choose_core", lambda *a, **k: calls.append(a))
    assert main(["data", "list", str(tmp_path / "missing")]) == 2  # any command, even one that fails
    assert calls == [()]
