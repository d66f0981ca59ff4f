"""Command-line options made from the Recipe's fields, so that train, tune and main declare no
hyperparameter of their own: `@recipe_options()` adds `--<field>` for each field (its type, range,
default and help from steps/core/recipe.py), and `recipe_from(kwargs)` collects them back; and
the options of training on several processes or machines (launch.Processes)."""

import click

from steps.core.recipe import FIELDS, Recipe, field_type


def option_type(name: str):
    limits, kind = FIELDS[name].metadata, field_type(name)
    if "choices" in limits:
        return click.Choice(limits["choices"])
    if kind is int and "min" in limits:
        return click.IntRange(min=limits["min"], max=limits.get("max"))
    if kind is float and ("min" in limits or "max" in limits):
        return click.FloatRange(min=limits.get("min"), max=limits.get("max"), min_open=limits.get("min_open", False),
                                max_open=limits.get("max_open", False))
    return kind


def recipe_options(exclude=()):
    """A decorator adding an option for each Recipe field not in `exclude`."""
    def decorate(command):
        for name in reversed([name for name in FIELDS if name not in exclude]):
            spec = FIELDS[name]
            command = click.option(f"--{name.replace('_', '-')}", type=option_type(name), default=spec.default,
                                   show_default=True, help=spec.metadata["help"] or None)(command)
        return command
    return decorate


def recipe_from(options: dict, **given) -> Recipe:
    """The Recipe of a command's options (fields it has no option for from `given`, else the defaults)."""
    return Recipe(**{**given, **{name: value for name, value in options.items() if name in FIELDS}})


def process_options(command):
    """accelerate's settings for training on several processes or machines (launch.Processes)."""
    options = [
        click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Training processes on all machines together (one per GPU; on CPUs, up to one per core)."),
        click.option("--num-machines", type=click.IntRange(min=1), default=1, show_default=True),
        click.option("--machine-rank", type=click.IntRange(min=0), default=0, show_default=True,
                     help="This machine's number; 0 is the main one, which logs the run."),
        click.option("--main-process-ip", default="127.0.0.1", show_default=True,
                     help="Address of machine 0, which the others reach."),
        click.option("--main-process-port", type=click.IntRange(1, 65535), default=29500, show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command
