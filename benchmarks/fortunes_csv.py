"""The multi-class demonstration data: Debian's `fortunes` package (`apt-get install fortunes`)
holds real quotations, jokes and verse filed by topic, one file per topic with entries separated
by lines holding `%`. This writes the chosen topics as one CSV, `text` and `label` (the topic),
for `mlflow run . -P dataset=<the CSV>`; it writes no text of its own.

    python benchmarks/fortunes_csv.py /tmp/fortunes.csv
"""

import re
from pathlib import Path

import click
import pandas as pd

FOLDER = Path("/usr/share/games/fortunes")  # where Debian installs them
TOPICS = "computers,education,food,law,love,medicine,politics,science,sports"


def entries(path: Path) -> list[str]:
    """A fortune file's entries, each on one line (a fortune's line breaks are layout, not meaning)."""
    parts = re.split(r"^%$", path.read_text(encoding="utf-8", errors="replace"), flags=re.MULTILINE)
    return [" ".join(part.split()) for part in parts if part.strip()]


@click.command(help=__doc__)
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--topics", default=TOPICS, show_default=True, help="Comma-separated topic files of the package.")
def main(output, topics):
    missing = [topic for topic in topics.split(",") if not (FOLDER / topic).is_file()]
    if missing:
        raise click.ClickException(f"no {', '.join(missing)} in {FOLDER}: apt-get install fortunes, and pick "
                                   f"topics among its files")
    frame = pd.concat([pd.DataFrame({"text": entries(FOLDER / topic), "label": topic})
                       for topic in topics.split(",")], ignore_index=True)
    frame.to_csv(output, index=False)
    click.echo(f"{len(frame)} fortunes written to {output}: "
               + ", ".join(f"{topic} {count}" for topic, count in frame["label"].value_counts().items()))


if __name__ == "__main__":
    main()
