"""The MLproject, the steps' command lines and the two requirement lists agree."""

import importlib

import optuna

import pytest
import yaml

from tests.conftest import PROJECT, PROJECT_DIR

ENTRY_POINTS = ["main", "prepare", "tokenize", "tune", "train", "register", "validate", "predict", "reproduce"]


def test_entry_points_and_environment():
    assert sorted(PROJECT.get_entry_point(name).name for name in ENTRY_POINTS) == sorted(ENTRY_POINTS)
    assert PROJECT.env_config_path.endswith("conda.yaml")


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_mlproject_parameters_are_the_commands_options_with_the_same_defaults(entry_point):
    spec = PROJECT.get_entry_point(entry_point)
    assert spec.command.startswith(f"python -m steps.{entry_point} ")
    options = {p.name: p for p in importlib.import_module(f"steps.{entry_point}").main.params}
    assert set(options) == set(spec.parameters)
    for name, parameter in spec.parameters.items():
        assert f"--{name.replace('_', '-')} {{{name}}}" in spec.command
        default, option_default = parameter.default, options[name].default
        if parameter.type in ("float", "int"):
            assert float(default) == float(option_default), name
        elif default is None:
            assert options[name].required, name
        else:
            assert str(default).lower() == str(option_default).lower(), name


def test_conda_pip_section_is_requirements_txt():
    conda = yaml.safe_load((PROJECT_DIR / "conda.yaml").read_text())
    [pip_section] = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)]
    requirements = [line.strip() for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert pip_section == requirements
    # A whole version: given only 3.11, MLflow's virtualenv manager asks pyenv to download the newest 3.11.
    assert "python=3.11.7" in conda["dependencies"] and "pip" in conda["dependencies"]


def test_the_recipe_is_declared_once_and_every_training_command_takes_it():
    """A field of the Recipe is an option of train and main (tune: those it does not search), with
    the field's default; the test above holds MLproject to those options."""
    from dataclasses import fields

    from steps import main, train, tune
    from steps.core.recipe import SEARCHED, Recipe

    defaults = {field.name: field.default for field in fields(Recipe)}
    for command, names in ((train.main, set(defaults)), (main.main, set(defaults) - {"device"}),
                           (tune.main, set(defaults) - set(SEARCHED))):
        options = {p.name: p.default for p in command.params}
        assert {name: options.get(name) for name in names} == {name: defaults[name] for name in names}, command.name
    assert set(tune.suggest(optuna.trial.FixedTrial(
        {"learning_rate": 1e-4, "batch_size": 8, "epochs": 1, "warmup_ratio": 0.0, "weight_decay": 0.0}))) == \
        set(SEARCHED)
