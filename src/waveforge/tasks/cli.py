"""``waveforge fit --config recipes/<family>/<recipe>.yaml``: LightningCLI with waveforge defaults.

* The DataModule states the sample rate and features once; they are linked into the task.
* ``trainer.default_root_dir`` is the run folder: TensorBoard logs go there, checkpoints to
  ``<run>/checkpoints`` (``last.ckpt`` every ``checkpoint_every`` steps and at each validation).
* Pointing ``fit`` at a run folder that has ``checkpoints/last.ckpt`` resumes from it
  (``--ckpt_path`` overrides; ``--no_resume true`` starts afresh).
* Multi-GPU / multi-node is Lightning's DDP (``--trainer.devices``, ``--trainer.num_nodes``,
  SLURM or torchrun); recipe batch sizes are per device.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from waveforge.data.module import SegmentEpochCallback, WaveformDataModule
from waveforge.features import feature_to_dict
from waveforge.tasks.base import WaveformTask
from waveforge.tasks.callbacks import AudioLogger


class WaveforgeCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.sample_rate", "model.init_args.sample_rate", apply_on="instantiate")
        parser.link_arguments("data.feature", "model.init_args.feature", compute_fn=feature_to_dict, apply_on="instantiate")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from this checkpoint")
        parser.add_argument("--no_resume", type=bool, default=False, help="ignore <run>/checkpoints/last.ckpt")
        parser.add_argument("--checkpoint_every", type=int, default=500, help="save last.ckpt every N training steps")
        parser.add_argument("--audio_examples", type=int, default=2, help="validation clips logged to TensorBoard")

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
                ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=self.config["checkpoint_every"])
            )
        if not any(isinstance(c, SegmentEpochCallback) for c in callbacks):
            callbacks.append(SegmentEpochCallback())
        if not any(isinstance(c, AudioLogger) for c in callbacks):
            callbacks.append(AudioLogger(n_examples=self.config["audio_examples"]))
        if kwargs.get("logger", trainer_cfg.get("logger")) and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor())
        kwargs["callbacks"] = callbacks
        if trainer_cfg.get("strategy") == "ddp" and not self.model.automatic_optimization:
            # GAN tasks take a discriminator and a generator backward pass per batch, each touching
            # only part of the parameters: DDP must be told to expect unused parameters.
            kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
        return super().instantiate_trainer(**kwargs)

    def resume_checkpoint(self) -> str | None:
        if self.config.get("ckpt_path"):
            return self.config["ckpt_path"]
        last = self.run_dir / "checkpoints" / "last.ckpt"
        if last.is_file() and not self.config.get("no_resume"):
            return str(last)
        return None


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
