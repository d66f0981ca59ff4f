"""Command-line options made from the core's specs (steps/core/specs.py, the Recipe and the
Reading), so that no step declares a setting of its own:
`@spec_options(Recipe)` adds `--<field>` for each field (its type, range, default and help), and
`spec_from(Recipe, kwargs)` collects them back; and the options of training on several processes
or machines (launch.Processes)."""

from dataclasses import fields

import click

from steps.core.specs import AUTO, field_type


def summary(doc: str) -> str:
    """A step's --help: the first paragraph of its module docstring (the rest, what it reads and
    logs, is for readers of the code and docs/steps.md), and its options."""
    return doc.split("\n\n", 1)[0] + "\n\nWhat it reads, logs and outputs: docs/steps.md."


class AutoOr(click.ParamType):
    """"auto", or a value of `numbers` (a click type)."""

    def __init__(self, numbers):
        self.numbers, self.name = numbers, f"auto|{numbers.name}"

    def convert(self, value, param, ctx):
        return AUTO if str(value).strip().lower() == AUTO else self.numbers.convert(value, param, ctx)


def option_type(spec_field):
    limits, kind = spec_field.metadata, field_type(spec_field)
    if "auto" in limits:
        return AutoOr(click.FloatRange(min=limits.get("min"), max=limits.get("max")))
    if "choices" in limits:
        return click.Choice(limits["choices"])
    if kind is int and "min" in limits:
        return click.IntRange(min=limits["min"], max=limits.get("max"))
    if kind is float and ("min" in limits or "max" in limits):
        return click.FloatRange(min=limits.get("min"), max=limits.get("max"), min_open=limits.get("min_open", False),
                                max_open=limits.get("max_open", False))
    return kind


def spec_options(spec, exclude=()):
    """A decorator adding an option for each field of the dataclass `spec` not in `exclude`."""
    def decorate(command):
        for spec_field in reversed([f for f in fields(spec) if f.name not in exclude]):
            command = click.option(f"--{spec_field.name.replace('_', '-')}", type=option_type(spec_field),
                                   default=spec_field.default, show_default=True,
                                   help=spec_field.metadata["help"] or None)(command)
        return command
    return decorate


def spec_from(spec, options: dict, **given):
    """The `spec` of a command's options (fields it has no option for from `given`, else the defaults)."""
    names = {f.name for f in fields(spec)}
    return spec(**{**given, **{name: value for name, value in options.items() if name in names}})


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
