"""Lightning DDP on CPU: two processes, different crops per rank, identical weights at the end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_ddp_sees_different_crops_and_ends_with_identical_weights(tmp_path, tiny_corpus):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env["WAVEFORGE_DDP_PROBE"] = str(tmp_path)
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "waveforge", "fit", "--config", str(REPO / "recipes" / "melgan" / "smoke.yaml"),
        "--data.root", str(tiny_corpus), "--trainer.default_root_dir", str(tmp_path / "run"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_steps", "6", "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+=ddp_probe.CropProbe",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    crops0, crops1 = (set(map(tuple, r["crops"])) for r in ranks)
    assert crops0 and crops1 and not (crops0 & crops1), "the two ranks trained on overlapping crops"
    assert ranks[0]["weights"] == ranks[1]["weights"], "DDP ranks ended with different generator weights"
