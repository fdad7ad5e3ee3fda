"""``waveforge export``: a Lightning checkpoint (for resuming) -> a ``.safetensors`` model (for use)."""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from pathlib import Path

import torch

from waveforge.errors import BadInputError
from waveforge.inference.modelfile import save_model_file
from waveforge.tasks.base import TASK_KEY, WaveformTask


def load_task(checkpoint: str | os.PathLike, map_location: str = "cpu") -> WaveformTask:
    """Rebuild the training task a checkpoint was written by.

    Checkpoints are the user's own training state and use pickle (Lightning's format); exported
    models never do.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise BadInputError(path, "no such checkpoint")
    if not zipfile.is_zipfile(path):  # torch checkpoints are zip archives; never unpickle anything else
        raise BadInputError(path, "not a Lightning checkpoint (not a torch zip archive)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as e:
        raise BadInputError(path, f"not a Lightning checkpoint ({str(e).splitlines()[0][:100]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise BadInputError(path, "not a Lightning checkpoint (no state_dict)")
    class_path = ckpt.get(TASK_KEY) or ckpt.get("hyper_parameters", {}).get("_class_path")
    if not class_path:
        raise BadInputError(path, "checkpoint was not written by a waveforge task")
    module_name, _, class_name = class_path.rpartition(".")
    task_cls = getattr(importlib.import_module(module_name), class_name)
    # weights_only=False as above: a DataModule's hyper-parameters (MelSettings) are pickled classes
    return task_cls.load_from_checkpoint(path, map_location=map_location, weights_only=False)


def export_checkpoint(checkpoint: str | os.PathLike | list, output: str | os.PathLike) -> Path:
    """Write the model of one checkpoint, or merge several stages of a VQ-VAE hierarchy.

    Several checkpoints are only meaningful for a hierarchy whose stages trained in parallel: each
    part is taken from the last checkpoint that trained it (:meth:`VQVAETask.load_previous_stage`).
    """
    checkpoints = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
    task = load_task(checkpoints[-1])
    if len(checkpoints) > 1:
        from waveforge.tasks.vqvae import VQVAETask

        if not isinstance(task, VQVAETask):
            raise BadInputError(checkpoints[-1], f"only VQ-VAE stages can be merged; this is a {task.family} checkpoint")
        try:
            task.load_previous_stage(checkpoints)
        except ValueError as e:
            raise BadInputError(checkpoints[-1], str(e)) from None
    task.eval()
    return save_model_file(output, task.model_file())
