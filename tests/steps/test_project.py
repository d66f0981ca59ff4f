"""The MLproject, the steps' command lines and the two requirement lists agree."""

import importlib
import os

import optuna

import pytest
import yaml

from tests.helpers import PROJECT, PROJECT_DIR

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


def spec_commands():
    """Each spec, and the commands that take its fields as options (some fields excepted)."""
    from steps import main, prepare, register, tokenize, train, tune, validate
    from steps.core.reading import Reading
    from steps.core.recipe import SEARCHED, Recipe
    from steps.core.specs import Gate, Preparation, Serving

    return [(Recipe, ((train.main, ()), (main.main, ("device",)), (tune.main, SEARCHED))),
            (Reading, ((tokenize.main, ()), (main.main, ()))),
            (Preparation, ((prepare.main, ()), (main.main, ()))),
            (Serving, ((register.main, ()), (main.main, ("device",)))),
            (Gate, ((validate.main, ()), (main.main, ())))]


@pytest.mark.parametrize("spec, commands", spec_commands(), ids=lambda value: getattr(value, "__name__", ""))
def test_each_setting_is_declared_once_and_every_command_takes_it_with_its_default(spec, commands):
    """A field of a spec is an option of each command that takes the spec (main included), with the
    field's default, type and help; the test above holds MLproject to those options, so main's
    defaults and each step's are the same."""
    from dataclasses import fields

    for command, excluded in commands:
        options = {p.name: p for p in command.params}
        for field in fields(spec):
            if field.name in excluded:
                continue
            assert field.name in options, (command.name, field.name)
            assert options[field.name].default == field.default, (command.name, field.name)
            assert options[field.name].help == (field.metadata["help"] or None), (command.name, field.name)


def test_tune_searches_the_recipe_fields_it_names_and_runs_trials_long_enough_to_stop_early():
    from steps import tune
    from steps.core.recipe import SEARCHED

    trial = {"learning_rate": 1e-4, "batch_size": 8, "epochs": 1, "warmup_ratio": 0.0, "weight_decay": 0.0}
    assert set(tune.suggest(optuna.trial.FixedTrial(trial), 0)) == set(SEARCHED)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: tune.suggest(trial, 2)["epochs"], n_trials=30)
    assert {trial.params["epochs"] for trial in study.trials} == {3, 4, 5}  # patience 2: 3 epochs at least


def test_importing_the_steps_sets_nothing_up_and_running_a_step_does():
    """No import-time set-up: after every entry point is imported, none of the project's environment
    variables, warning filters or log filters (steps/plumbing/environment.py) is in place; configure()
    puts each in place."""
    import subprocess
    import sys

    script = ("import logging, os, warnings\n"
              f"for name in {ENTRY_POINTS!r}: __import__(f'steps.{{name}}')\n"
              "from steps.plumbing import environment\n"
              "def state():\n"
              "    messages = {f[1].pattern for f in warnings.filters if f[1] is not None}\n"
              "    return ([v for v in {**environment.QUIET, **environment.PATIENT} if v in os.environ],\n"
              "            [m for m in environment.UNHELPFUL_WARNINGS if m in messages],\n"
              "            len(logging.getLogger('mlflow.transformers').filters))\n"
              "print(state())\n"
              "environment.configure()\n"
              "print(state())")
    import ast

    from steps.plumbing import environment

    variables = [*environment.QUIET, *environment.PATIENT]
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=300, env={k: v for k, v in os.environ.items() if k not in variables})
    imported, configured = map(ast.literal_eval, result.stdout.strip().splitlines()[-2:])
    assert imported == ([], [], 0), result.stderr[-2000:]
    assert configured == (variables, list(environment.UNHELPFUL_WARNINGS), 1)
