"""The multi-label demonstration data: Debian's package descriptions, tagged by Debtags. The `debtags`
package (`apt-get install debtags`) ships Debian's tag database, /usr/share/debtags/tags-current.gz
(`package: facet::tag, ...`); the English long descriptions come from apt's Translation-en lists, which
this machine fetches with `apt-get update -o Acquire::Languages=en`. A package whose description
is in the lists and that has a tag of the chosen facets (default what it is for, `use::`, and what it
works with, `works-with::`) becomes one row: `text` (the synopsis, then the description, a paragraph
a line) and `tags` (its tags of those facets joined by `|`, empty once all of them are dropped as rare).
Packages that share a description make one row with the union of their tags. It writes no text of
its own; for `mlflow run . -P dataset=<the CSV> -P label_column=tags -P label_separator='|'`.

    python benchmarks/debtags_csv.py /tmp/debtags.csv
"""

import gzip
import subprocess
from collections import Counter
from pathlib import Path

import click
import pandas as pd

TAGS = Path("/usr/share/debtags/tags-current.gz")  # where the debtags package installs its database
APT = ["apt-get", "-o", "Acquire::Languages=en"]


def descriptions() -> dict[str, str]:
    """Each package's English synopsis and long description, from apt's Translation-en lists."""
    files = subprocess.run(APT + ["indextargets", "--format", "$(FILENAME)", "Created-By: Translations",
                                  "Language: en"], capture_output=True, text=True, check=True).stdout.split()
    found = {}
    for name in filter(lambda name: Path(name).is_file(), files):
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", name], capture_output=True, text=True,
                              check=True).stdout
        for stanza in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.split("\n") if line[:1].strip() and ": " in line)
            if "Package" not in fields or "Description-en: " not in stanza or fields["Package"] in found:
                continue
            lines = stanza.split("Description-en: ", 1)[1].split("\n")
            body = [line.strip() for line in lines[1:] if line.startswith(" ")]
            paragraphs = " ".join("\n" if line == "." else line for line in body).split("\n")
            found[fields["Package"]] = "\n".join(" ".join(part.split())
                                                 for part in [lines[0], *paragraphs] if part.strip())
    return found


@click.command(help=__doc__)
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--facets", default="use,works-with", show_default=True, help="Comma-separated Debtags facets.")
@click.option("--min-texts", default=40, show_default=True, help="Keep only tags that this many texts carry.")
@click.option("--top", default=30, show_default=True, help="Keep at most this many tags, the most frequent.")
def main(output, facets, min_texts, top):
    if not TAGS.is_file():
        raise click.ClickException(f"no {TAGS}: apt-get install debtags")
    texts = descriptions()
    if not texts:
        raise click.ClickException("no English package descriptions in apt's lists: "
                                   "apt-get update -o Acquire::Languages=en")
    wanted = tuple(f"{facet}::" for facet in facets.split(","))
    tagged: dict[str, set[str]] = {}  # text -> tags, in the order of the tag database
    with gzip.open(TAGS, "rt", encoding="utf-8") as lines:
        for line in lines:
            package, _, tags = line.partition(":")
            chosen = {tag.strip() for tag in tags.split(",") if tag.strip().startswith(wanted)}
            if chosen and package in texts:
                tagged.setdefault(texts[package], set()).update(chosen)
    counts = Counter(tag for tags in tagged.values() for tag in tags)
    kept = {tag for tag, count in counts.most_common(top) if count >= min_texts}
    frame = pd.DataFrame({"text": list(tagged),
                          "tags": ["|".join(sorted(tags & kept)) for tags in tagged.values()]})
    frame.to_csv(output, index=False)
    sizes = Counter(min(len(tags & kept), 2) for tags in tagged.values())
    click.echo(f"{len(frame)} descriptions written to {output}, {len(kept)} tags; texts with 0/1/2+ tags: "
               f"{sizes[0]}/{sizes[1]}/{sizes[2]}; "
               + ", ".join(f"{tag} {counts[tag]}" for tag in sorted(kept, key=counts.get, reverse=True)))


if __name__ == "__main__":
    main()
