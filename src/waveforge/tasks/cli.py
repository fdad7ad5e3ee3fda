"""``waveforge fit --config recipes/<family>/<recipe>.yaml``: LightningCLI with waveforge defaults.

* The DataModule states the sample rate and features once; they are linked into the task.
* ``trainer.default_root_dir`` is the run folder: TensorBoard logs go there, checkpoints to
  ``<run>/checkpoints`` (``last.ckpt`` every ``checkpoint_every`` steps and at each validation).
* Pointing ``fit`` at a run folder that has checkpoints resumes from the newest by global step
  that opens (one line names any that do not; ``--ckpt_path`` overrides; ``--no_resume true``
  starts afresh). ``last.ckpt`` is always replaced in place, never versioned as ``last-v1.ckpt``,
  and every checkpoint is written beside its target and renamed into place
  (:class:`AtomicCheckpointIO`): a kill during a save leaves the previous checkpoint whole.
* A task's ``architecture`` mapping that names an unknown preset or field, or contradicts the
  data, ends with one line naming the recipe and the key (exit status 2).
* Multi-GPU / multi-node is Lightning's DDP (``--trainer.devices``, ``--trainer.num_nodes``,
  SLURM or torchrun); recipe batch sizes are per device.
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from waveforge.errors import BadInputError
from waveforge.utils.atomic import atomic_path
from waveforge.data.module import SegmentEpochCallback, WaveformDataModule
from waveforge.features import feature_to_dict
from waveforge.models.config import ConfigError
from waveforge.tasks.base import WaveformTask
from waveforge.tasks.callbacks import AudioLogger


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target, synced, then renamed over it.

    Lightning's own save moves a file from ``$TMPDIR`` into place, a copy when ``$TMPDIR`` is
    another filesystem (tmpfs, node-local scratch): a kill during the copy left ``last.ckpt``
    empty and the previous checkpoint gone."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())


def checkpoint_step(path: str | os.PathLike) -> int:
    """The global step a checkpoint was saved at; raises BadInputError if it does not open."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "no such checkpoint")
    if not zipfile.is_zipfile(path):
        raise BadInputError(path, f"not a readable checkpoint ({path.stat().st_size} bytes, not a torch zip archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as e:
        raise BadInputError(path, f"not a readable checkpoint ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise BadInputError(path, "not a Lightning checkpoint (no state_dict)")
    return int(state.get("global_step", 0))


def newest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint in ``folder`` with the highest global step (``last.ckpt`` on ties) that opens;
    one line on stderr for each newer one that does not."""
    steps = []
    broken = []
    for path in sorted(folder.glob("*.ckpt")):
        try:
            steps.append((checkpoint_step(path), path.name.startswith("last"), path.stat().st_mtime, path))
        except BadInputError as e:
            broken.append(e)
    for e in broken:
        print(f"waveforge fit: skipping {e}", file=sys.stderr)
    if not steps:
        return None
    return max(steps)[-1]


def _config_error(error: BaseException) -> ConfigError | None:
    """The :class:`ConfigError` (a bad architecture mapping) that caused ``error``, if one did."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class WaveforgeCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.sample_rate", "model.init_args.sample_rate", apply_on="instantiate")
        parser.link_arguments("data.feature", "model.init_args.feature", compute_fn=feature_to_dict, apply_on="instantiate")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from this checkpoint")
        parser.add_argument("--no_resume", type=bool, default=False, help="ignore <run>/checkpoints/last.ckpt")
        parser.add_argument("--checkpoint_every", type=int, default=500, help="save last.ckpt every N training steps")
        parser.add_argument("--audio_examples", type=int, default=2, help="validation clips logged to TensorBoard")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as e:  # jsonargparse wraps the task's error: find an architecture mistake in the chain
            cause = _config_error(e)
            if cause is None:
                raise
            configs = self.config.get("config") or []
            raise BadInputError(str(configs[-1]) if configs else None, str(cause)) from None

    @property
    def run_dir(self) -> Path:
        return Path(self.config["trainer"].get("default_root_dir") or "runs/default")

    def instantiate_trainer(self, **kwargs):
        trainer_cfg = self.config_init["trainer"]
        run_dir = self.run_dir
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False)
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks.append(
                ModelCheckpoint(
                    dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=self.config["checkpoint_every"],
                    enable_version_counter=False,  # last.ckpt is replaced, never joined by an older last.ckpt and a newer last-v1.ckpt
                )
            )
        if not any(isinstance(c, SegmentEpochCallback) for c in callbacks):
            callbacks.append(SegmentEpochCallback())
        if not any(isinstance(c, AudioLogger) for c in callbacks):
            callbacks.append(AudioLogger(n_examples=self.config["audio_examples"]))
        if kwargs.get("logger", trainer_cfg.get("logger")) and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor())
        kwargs["callbacks"] = callbacks
        plugins = kwargs.get("plugins", trainer_cfg.get("plugins"))
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, TorchCheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        if trainer_cfg.get("strategy") == "ddp" and not self.model.automatic_optimization:
            # GAN tasks take a discriminator and a generator backward pass per batch, each touching
            # only part of the parameters: DDP must be told to expect unused parameters.
            kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
        return super().instantiate_trainer(**kwargs)

    def resume_checkpoint(self) -> str | None:
        if self.config.get("ckpt_path"):
            path = Path(self.config["ckpt_path"])
            checkpoint_step(path)  # it must open: one line, exit 2, rather than Lightning's traceback
            return str(path)
        if self.config.get("no_resume"):
            return None
        newest = newest_checkpoint(self.run_dir / "checkpoints")
        return None if newest is None else str(newest)


def make_cli(argv: list[str]) -> WaveforgeCLI:
    return WaveforgeCLI(
        WaveformTask,
        WaveformDataModule,
        subclass_mode_model=True,
        run=False,
        args=argv,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "waveforge fit", "description": "Train a waveforge model from a recipe."},
    )


def run_fit(argv: list[str]) -> int:
    cli = make_cli(argv)
    ckpt = cli.resume_checkpoint()
    if ckpt:
        print(f"waveforge fit: resuming from {ckpt}")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    return 0
