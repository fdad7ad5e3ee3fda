"""Every recipe YAML parses with `waveforge fit`'s CLI and builds its task, model and data module."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: building these takes tens of seconds (paper-size priors); they run with `make test-slow`
SLOW = {"vqvae/maestro.yaml"}
RECIPES = [
    pytest.param(p, marks=pytest.mark.slow) if f"{p.parent.name}/{p.name}" in SLOW else p
    for p in sorted(REPO.glob("recipes/*/*.yaml"))
]
RECIPE_PATHS = sorted(REPO.glob("recipes/*/*.yaml"))
#: the model family each recipe folder trains
FAMILY = {"melgan": "melgan", "wavenet": "wavenet", "samplernn": "samplernn", "diffwave": "diffwave", "waveglow": "waveglow", "vqvae": "vqvae",
          "notes2mel": "notes2mel"}


def test_every_family_has_its_recipes():
    names = {(p.parent.name, p.stem) for p in RECIPE_PATHS}
    for family in FAMILY:
        assert {(family, "smoke"), (family, "cpu"), (family, "maestro")} <= names, family
    assert {("melgan", "maestro-midi"), ("wavenet", "maestro-midi"), ("waveglow", "maestro-midi"),
            ("diffwave", "maestro-midi"), ("diffwave", "uncond"), ("notes2mel", "cpu-diffusion")} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_builds(recipe, tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["waveforge"])
    from waveforge.tasks.cli import make_cli

    cli = make_cli([
        "--config", str(recipe), "--data.root", str(tiny_corpus),
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
    ])
    assert cli.model.family == FAMILY[recipe.parent.name]
    assert sum(p.numel() for p in cli.model.parameters()) > 0
    conditioning = cli.config["data"]["conditioning"]
    assert (cli.model.feature is None) == (conditioning == "none")
