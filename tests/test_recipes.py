"""Every recipe YAML (and the demo's) parses with `waveforge fit`'s CLI and builds its task, model and data
module, so a key a task no longer takes fails here; a bad architecture mapping is one line, exit 2."""

from pathlib import Path

import lightning.pytorch  # noqa: F401  imported before any capture: its log handler binds to the real stderr
import pytest

REPO = Path(__file__).resolve().parents[1]
#: building these takes tens of seconds (paper-size priors); they run with `make test-slow`
SLOW = {"vqvae/maestro.yaml"}
RECIPES = [
    pytest.param(p, marks=pytest.mark.slow) if f"{p.parent.name}/{p.name}" in SLOW else p
    for p in sorted(REPO.glob("recipes/*/*.yaml"))
] + [REPO / "src" / "waveforge" / "demo.yaml"]
RECIPE_PATHS = sorted(REPO.glob("recipes/*/*.yaml"))
#: the model family each recipe folder trains
FAMILY = {"waveforge": "melgan", "melgan": "melgan", "wavenet": "wavenet", "samplernn": "samplernn", "diffwave": "diffwave", "waveglow": "waveglow", "vqvae": "vqvae",
          "notes2mel": "notes2mel"}


def test_every_family_has_its_recipes():
    names = {(p.parent.name, p.stem) for p in RECIPE_PATHS}
    for family in set(FAMILY) - {"waveforge"}:
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


def _fit_args(recipe, corpus, run, *extra):
    return ["--config", str(recipe), "--data.root", str(corpus), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.strategy", "auto", "--trainer.logger", "false", "--trainer.default_root_dir", str(run), *extra]


def test_every_recipe_states_its_model_as_one_architecture_mapping():
    import yaml

    for recipe in RECIPE_PATHS + [REPO / "src" / "waveforge" / "demo.yaml"]:
        init_args = yaml.safe_load(recipe.read_text())["model"]["init_args"]
        assert isinstance(init_args.get("architecture"), dict), recipe
        assert not {"preset", "overrides", "initial_channels", "residual_channels", "n_layers", "channels", "hops"} & set(init_args), recipe


def test_a_key_the_task_no_longer_takes_fails_the_recipe(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.setattr("sys.argv", ["waveforge"])
    from waveforge.tasks.cli import make_cli

    stale = tmp_path / "stale.yaml"
    stale.write_text((REPO / "recipes" / "wavenet" / "smoke.yaml").read_text().replace("architecture: {preset: tiny}", "preset: tiny"))
    assert "preset: tiny" in stale.read_text()
    with pytest.raises(SystemExit) as exit_info:
        make_cli(_fit_args(stale, tiny_corpus, tmp_path / "run"))
    assert exit_info.value.code == 2


@pytest.mark.parametrize("architecture, message", [
    ("{preset: tiny, layer: 3}", "architecture: WaveNetConfig has no field 'layer' (known: preset, layers, "),
    ("{preset: huge}", "architecture: WaveNetConfig has no preset 'huge' (known: paper, small, tiny)"),
    ("{preset: tiny, hop_length: 128}", "architecture: hop_length is 128, but the data sets it to 256"),
])
def test_a_bad_architecture_is_one_line_naming_the_recipe(architecture, message, tmp_path, tiny_corpus, monkeypatch, capfd):
    monkeypatch.setattr("sys.argv", ["waveforge"])
    from waveforge.cli import main as cli_main

    recipe = REPO / "recipes" / "wavenet" / "maestro-midi.yaml"  # conditioned: hop 256 from the data
    argv = ["fit", *_fit_args(recipe, tiny_corpus, tmp_path / "run", "--model.init_args.architecture", architecture)]
    assert cli_main(argv) == 2
    # capfd, not capsys: Lightning's log handler writes to the process's stderr (imported above, before any
    # capture). Its "Seed set to 0" notice comes before the config is read; the error itself is one line.
    err = [line for line in capfd.readouterr().err.strip().splitlines() if not line.startswith("INFO: Seed set to")]
    assert len(err) == 1 and err[0].startswith(f"waveforge: error: {recipe}: {message}"), err


def _train_cases():
    from waveforge.benchmarks.gpu import TRAIN_CASES

    return sorted(TRAIN_CASES.values(), key=lambda case: case.family)


@pytest.mark.parametrize("case", _train_cases(), ids=lambda case: case.family)
def test_the_gpu_checks_tiny_overrides_build_their_recipe(case, tiny_corpus, tmp_path, monkeypatch):
    """``waveforge bench``'s GPU training cases shrink a paper recipe with ``--model.init_args`` overrides."""
    monkeypatch.setattr("sys.argv", ["waveforge"])
    from waveforge.tasks.cli import make_cli

    recipe = REPO / "recipes" / case.family / case.recipe
    cli = make_cli(_fit_args(recipe, tiny_corpus, tmp_path, *case.tiny))
    assert cli.model.family == case.family
    assert sum(p.numel() for p in cli.model.parameters()) < 2_000_000  # tiny, whatever the paper recipe's size


def test_the_benchs_cpu_generator_is_the_cpu_recipes():
    import yaml

    from waveforge.benchmarks.melgan import CPU_SINES_ARCHITECTURE

    recipe = yaml.safe_load((REPO / "recipes" / "melgan" / "cpu.yaml").read_text())
    assert recipe["model"]["init_args"]["architecture"] == CPU_SINES_ARCHITECTURE


def test_the_benchs_notes_to_mel_prior_is_the_cpu_recipes():
    import yaml

    from waveforge.benchmarks.notes2mel import NOTE_PRIOR

    for name in ("cpu", "cpu-diffusion"):
        architecture = yaml.safe_load((REPO / "recipes" / "notes2mel" / f"{name}.yaml").read_text())["model"]["init_args"]["architecture"]
        assert architecture["preset"] == "small" and {k: architecture[k] for k in NOTE_PRIOR} == NOTE_PRIOR
