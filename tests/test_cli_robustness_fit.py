"""``waveforge fit`` and ``export`` under faults: resume picks the newest checkpoint, saves are atomic
beside the target, errors are one line with exit 2, checkpoints are not trusted code (issue 19)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from waveforge.errors import BadInputError
from waveforge.tasks.cli import AtomicCheckpointIO, checkpoint_step, newest_checkpoint
from robustness_helpers import refused as _refused

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "recipes" / "melgan" / "smoke.yaml"


def _fit_cmd(corpus, run, *extra):
    return [sys.executable, "-m", "waveforge", "fit", "--config", str(SMOKE), "--data.root", str(corpus), "--trainer.default_root_dir", str(run),
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", *extra]


def _fit(corpus, run, *extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    proc = subprocess.run(_fit_cmd(corpus, run, *extra), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_corpus):
    """A 4-step run of the MelGAN smoke recipe."""
    tmp = tmp_path_factory.mktemp("fit")
    _fit(tiny_corpus, tmp / "first", "--trainer.max_steps", "4")
    return tmp


@pytest.mark.slow
def test_a_moved_run_resumes_and_last_ckpt_stays_the_newest(first_run, tiny_corpus):
    shutil.copytree(first_run / "first", first_run / "moved")
    second = _fit(tiny_corpus, first_run / "moved", "--trainer.max_steps", "6")
    assert "resuming from" in second.stdout
    checkpoints = sorted(p.name for p in (first_run / "moved" / "checkpoints").iterdir())
    assert checkpoints == ["last.ckpt"], checkpoints  # never last-v1.ckpt beside an older last.ckpt
    assert checkpoint_step(first_run / "moved" / "checkpoints" / "last.ckpt") == 6


def _with_step(src, dst, step):
    state = torch.load(src, map_location="cpu", weights_only=False)
    state["global_step"] = step
    torch.save(state, dst)
    return dst


def test_resume_picks_the_newest_checkpoint_by_global_step(first_run, tmp_path):
    last = first_run / "first" / "checkpoints" / "last.ckpt"
    _with_step(last, tmp_path / "last.ckpt", 4)
    _with_step(last, tmp_path / "last-v1.ckpt", 8)
    _with_step(last, tmp_path / "epoch=0-step=5.ckpt", 5)
    assert newest_checkpoint(tmp_path).name == "last-v1.ckpt"


def test_a_checkpoint_that_does_not_open_falls_back_to_the_previous_one(first_run, tmp_path, capsys):
    last = first_run / "first" / "checkpoints" / "last.ckpt"
    _with_step(last, tmp_path / "epoch=0-step=4.ckpt", 4)
    (tmp_path / "last.ckpt").write_bytes(b"")  # what a kill during a cross-filesystem save left
    assert newest_checkpoint(tmp_path).name == "epoch=0-step=4.ckpt"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "last.ckpt" in err[0] and "skipping" in err[0], err


def test_checkpoints_are_written_beside_the_target_and_a_failed_save_keeps_the_old_one(tmp_path, monkeypatch):
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr("tempfile.tempdir", None)
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, folder / "last.ckpt")
    assert checkpoint_step(folder / "last.ckpt") == 1
    assert list(elsewhere.iterdir()) == []

    def killed(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt  # a signal during the save

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {}, "global_step": 2}, folder / "last.ckpt")
    assert checkpoint_step(folder / "last.ckpt") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"] and list(elsewhere.iterdir()) == []




def test_fit_errors_are_one_line(tmp_path, capsys, tiny_corpus):
    _refused(capsys, _fit_cmd(tmp_path / "nowhere", tmp_path / "run")[3:], "nowhere")
    _refused(capsys, _fit_cmd(tiny_corpus, tmp_path / "run", "--ckpt_path", tmp_path / "missing.ckpt")[3:], "missing.ckpt", "no such checkpoint")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    _refused(capsys, _fit_cmd(tiny_corpus, tmp_path / "run", "--ckpt_path", tmp_path / "empty.ckpt")[3:], "empty.ckpt")


def test_fit_on_a_corpus_with_a_truncated_wav_is_one_line(tmp_path, capsys, tiny_corpus):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    wav = sorted(corpus.glob("*/*.wav"))[0]
    wav.write_bytes(wav.read_bytes()[:2000])
    _refused(capsys, _fit_cmd(corpus, tmp_path / "run")[3:], wav.name, "truncated")


def test_export_refuses_a_diverged_checkpoint(first_run, tmp_path, capsys):
    state = torch.load(first_run / "first" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    name = next(k for k in state["state_dict"] if k.startswith("generator.") and state["state_dict"][k].is_floating_point())
    state["state_dict"][name] = torch.full_like(state["state_dict"][name], float("nan"))
    torch.save(state, tmp_path / "nan.ckpt")
    _refused(capsys, ["export", tmp_path / "nan.ckpt", "-o", tmp_path / "m.safetensors"], "nan.ckpt", "NaN")
    assert not (tmp_path / "m.safetensors").exists()


class _Payload:
    def __reduce__(self):
        return (os.mkdir, (os.environ["WAVEFORGE_TEST_MARKER"],))


def test_export_never_runs_a_booby_trapped_checkpoint(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv("WAVEFORGE_TEST_MARKER", str(marker))
    torch.save({"state_dict": {}, "payload": _Payload()}, tmp_path / "trap.ckpt")
    _refused(capsys, ["export", tmp_path / "trap.ckpt", "-o", tmp_path / "m.safetensors"], "trap.ckpt", "allowlist")
    assert not marker.exists()


def test_export_accepts_task_classes_only_from_waveforge_tasks(first_run, tmp_path, capsys):
    state = torch.load(first_run / "first" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    from waveforge.tasks.base import TASK_KEY

    state[TASK_KEY] = "os.system"
    state.setdefault("hyper_parameters", {})["_class_path"] = "os.system"
    torch.save(state, tmp_path / "foreign.ckpt")
    _refused(capsys, ["export", tmp_path / "foreign.ckpt", "-o", tmp_path / "m.safetensors"], "foreign.ckpt", "waveforge.tasks")
    with pytest.raises(BadInputError):
        checkpoint_step(tmp_path / "nothing.ckpt")
