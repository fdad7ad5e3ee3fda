"""``waveforge demo`` trains from a packaged recipe through ``waveforge fit``'s LightningCLI code."""

from waveforge.demo import DEMO_RECIPE
from waveforge.tasks.cli import make_cli
from waveforge.tasks.gan import GANVocoderTask


def test_demo_recipe_is_packaged_and_builds_through_the_fit_cli(tiny_corpus, tmp_path):
    assert DEMO_RECIPE.is_file() and DEMO_RECIPE.parent.name == "waveforge"  # inside the package
    cli = make_cli(["--config", str(DEMO_RECIPE), "--data.root", str(tiny_corpus), "--data.conditioning", "piano_roll",
                    "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.max_time", "00:00:00:05"])
    task = cli.model
    assert isinstance(task, GANVocoderTask)
    config = task.generator.config
    assert (config.initial_channels, config.upsample_factors, config.upsampling, config.output) == (256, [1, 1], "nearest", "sines")
    assert config.cond_channels == 264  # the conditioning given on the command line reaches the model
    assert task.loss_weights["lsd"] == 2.3 and task.loss_weights["adversarial"] == 1.0
    assert cli.trainer.max_steps == -1 and cli.datamodule.batch_size == 4
