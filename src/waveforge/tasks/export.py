"""``waveforge export``: a Lightning checkpoint (for resuming) -> a ``.safetensors`` model (for use)."""

from __future__ import annotations

import importlib
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from waveforge.errors import BadInputError
from waveforge.inference.modelfile import cast_model_file, save_model_file
from waveforge.inference.validation import check_tensors
from waveforge.tasks.base import TASK_KEY, WaveformTask
from waveforge.tasks.legacy import upgrade_hyperparameters


TASK_MODULE = "waveforge.tasks"


def _allowed_globals() -> list:
    """Types a Lightning checkpoint of a waveforge task holds besides tensors and plain containers."""
    import pathlib

    from lightning.fabric.utilities.data import AttributeDict

    from waveforge.audio.mel import MelConfig
    from waveforge.data.module import MelSettings
    from waveforge.midi.roll import PianoRollConfig

    # waveforge's frozen config dataclasses (a DataModule's hyper-parameters): plain fields, no code
    configs = [MelSettings, MelConfig, PianoRollConfig]
    return [AttributeDict, pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath, *configs]


def load_checkpoint_dict(path: Path, map_location: str = "cpu") -> dict:
    """Unpickle a checkpoint with ``weights_only=True`` and an allowlist: no code in the file runs.

    A checkpoint is pickle, and pickle is code: a full unpickle of a file from elsewhere runs
    whatever it was made to run. Only tensors, plain containers and the few Lightning types
    above are accepted."""
    if not path.is_file():
        raise BadInputError(path, "no such checkpoint")
    if not zipfile.is_zipfile(path):  # torch checkpoints are zip archives; never unpickle anything else
        raise BadInputError(path, "not a Lightning checkpoint (not a torch zip archive)")
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling failed"
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found or "global" in str(e).lower():
            what = found.group(1) if found else first[:100]
            raise BadInputError(path, f"checkpoint holds a Python object outside the allowlist ({what}), refused unread: a checkpoint is code, export only your own") from None
        raise BadInputError(path, f"not a Lightning checkpoint ({first[:100]})") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as e:
        raise BadInputError(path, f"not a Lightning checkpoint ({(str(e).splitlines() or [type(e).__name__])[0][:100]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise BadInputError(path, "not a Lightning checkpoint (no state_dict)")
    return ckpt


def load_task(checkpoint: str | os.PathLike, map_location: str = "cpu") -> WaveformTask:
    """Rebuild the training task a checkpoint was written by.

    Checkpoints are the user's own training state and use pickle (Lightning's format), read here
    with ``weights_only=True`` and an allowlist; the task class must live in ``waveforge.tasks``.
    Exported models never use pickle.
    """
    path = Path(checkpoint)
    ckpt = load_checkpoint_dict(path, map_location)
    class_path = ckpt.get(TASK_KEY) or (ckpt.get("hyper_parameters") or {}).get("_class_path")
    if not class_path or not isinstance(class_path, str):
        raise BadInputError(path, "checkpoint was not written by a waveforge task")
    module_name, _, class_name = class_path.rpartition(".")
    if not (module_name == TASK_MODULE or module_name.startswith(TASK_MODULE + ".")):
        raise BadInputError(path, f"task class {class_path!r} is not a waveforge task (only classes from {TASK_MODULE} are loaded)")
    try:
        task_cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise BadInputError(path, f"task class {class_path!r} does not exist in this waveforge") from None
    if not (isinstance(task_cls, type) and issubclass(task_cls, WaveformTask)):
        raise BadInputError(path, f"{class_path!r} is not a waveforge task")
    # a checkpoint written before the tasks took one ``architecture`` mapping: the same model, today's arguments
    upgraded = upgrade_hyperparameters(class_name, ckpt.get("hyper_parameters") or {})
    with torch.serialization.safe_globals(_allowed_globals()):
        return task_cls.load_from_checkpoint(path, map_location=map_location, weights_only=True, **upgraded)


def export_checkpoint(checkpoint: str | os.PathLike | list, output: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write the model of one checkpoint, or merge several stages of a VQ-VAE hierarchy, with its
    floating-point weights stored as ``dtype`` (``"float16"`` halves the file; it loads as float32).

    Several checkpoints are only meaningful for a hierarchy whose stages trained in parallel: each
    part is taken from the last checkpoint that trained it (:func:`waveforge.models.vqvae_stages.merge_stages`).
    """
    checkpoints = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
    task = load_task(checkpoints[-1])
    if len(checkpoints) > 1:
        from waveforge.models.vqvae_stages import StageSource, merge_stages

        if task.family != "vqvae":
            raise BadInputError(checkpoints[-1], f"only VQ-VAE stages can be merged; this is a {task.family} checkpoint")
        sources = []
        for path in checkpoints:
            stage = task if path is checkpoints[-1] else load_task(path)
            if stage.family != "vqvae":
                raise BadInputError(path, f"only VQ-VAE stages can be merged; this is a {stage.family} checkpoint")
            sources.append(StageSource(str(path), stage.model.config.to_dict(), stage.model.state_dict()))
        try:
            merge_stages(task.model, sources, retrained_level=task.level if task.stage == "autoencoder" else None)
        except ValueError as e:
            raise BadInputError(checkpoints[-1], str(e)) from None
    task.eval()
    model_file = task.model_file()
    check_tensors(str(checkpoints[-1]), model_file.state_dict)  # a diverged run exports nothing
    return save_model_file(output, cast_model_file(model_file, dtype, output))
