"""Training speed of the recipes: generator steps (batches) per second with the GAN on.

Reads the recipe YAML from the source checkout (``recipes/<family>/<name>.yaml``) so the figure is
for exactly what ``waveforge fit`` trains; skipped when the recipes are not beside the package.
Batches are random tensors of the recipe's shape, so data loading is not part of the figure.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml

from waveforge.bench import BenchContext, register

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def _gan_steps_per_second(recipe: Path, n_steps: int) -> dict:
    import lightning as L

    from waveforge.audio.mel import MelConfig
    from waveforge.data.module import MelSettings
    from waveforge.tasks.gan import GANVocoderTask

    cfg = yaml.safe_load(recipe.read_text())
    data, init = cfg["data"], dict(cfg["model"]["init_args"])
    init["warmup_steps"] = 0  # the steady state: discriminator and generator both train
    mel = MelConfig(sample_rate=data["sample_rate"], hop_length=data["hop_length"], **vars(MelSettings(**data.get("mel", {}))))
    task = GANVocoderTask(sample_rate=data["sample_rate"], feature=mel.to_dict(), **init)
    batch, length = data["batch_size"], data["segment_length"]
    batches = [
        {"audio": torch.randn(batch, 1, length).clamp(-1, 1) * 0.3, "cond": torch.randn(batch, mel.n_mels, length // mel.hop_length) - 5}
        for _ in range(2)
    ]
    loader = torch.utils.data.DataLoader(batches * (n_steps + 2), batch_size=None)
    times: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *args):
            self.t = time.perf_counter()

        def on_train_batch_end(self, *args):
            times.append(time.perf_counter() - self.t)

    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=2 * (n_steps + 2), logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Clock()], limit_val_batches=0,
    )
    trainer.fit(task, train_dataloaders=loader)
    steady = sorted(times[2:])[len(times[2:]) // 2]  # median after two warm-up batches
    seconds_per_step = steady
    return {
        "steps_per_s": round(1.0 / seconds_per_step, 3),
        "batch": batch,
        "segment_length": length,
        "x_realtime": round(batch * length / data["sample_rate"] / seconds_per_step, 3),
    }


@register("melgan-train")
def bench_melgan_training(ctx: BenchContext):
    for name in ("smoke", "cpu"):
        recipe = RECIPES / "melgan" / f"{name}.yaml"
        if recipe.is_file():
            torch.set_grad_enabled(True)
            try:
                yield {"name": f"melgan-{name}/train", **_gan_steps_per_second(recipe, 3 if ctx.quick else 8)}
            finally:
                torch.set_grad_enabled(False)
