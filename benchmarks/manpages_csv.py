"""A multi-class set of long technical texts: the English manual pages installed under
/usr/share/man/man1..man8 (Debian's `manpages`, `manpages-dev` and whatever else is installed),
labelled by their section. Each page is rendered offline with groff and written as one CSV row:
`section` (the folder's number, so 3p and 3ssl count as 3), `name` (the NAME line), `text`
(the rest of the page as plain text, a heading or paragraph a line) and `page` (the NAME line, then
the rest: the whole page as one text), for `mlflow run . -P dataset=<the CSV>`.
Aliases (`.so` pages, links), exact duplicates and pages outside --min-words..--max-words are left out; it writes
no text of its own. Rows are sorted by path, and capped sections sampled with a fixed seed.

    python benchmarks/manpages_csv.py /tmp/manpages.csv
"""

import gzip
import os
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pandas as pd

FOLDER = Path("/usr/share/man")
# Continuous rendering (one header, one footer), 100 columns, no hyphenation, no overstrike or colour.
GROFF = ["groff", "-mandoc", "-k", "-t", "-Tutf8", "-P-cbou", "-rcR=1", "-rLL=100n", "-rHY=0"]


def render(path: Path) -> dict | None:
    """The page's NAME line and body as plain text, or None for an alias of another page."""
    if path.is_symlink():
        return None
    source = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = [line for line in source.splitlines() if line.strip() and not re.match(rb"^['.]\\\"", line)]
    if not lines or lines[0].startswith(b".so "):
        return None
    output = subprocess.run(GROFF, input=source, capture_output=True, cwd=FOLDER,
                            env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout.decode("utf-8", "replace")
    rendered = "\n".join(output.strip("\n").splitlines()[1:-1])  # less the page header and footer
    rendered = re.sub(r"\u2010\n\s*", "", rendered)  # words that pages' own .hy still split
    # Paragraphs are separated by blank lines; headings start in column 0, NAME's line follows it.
    parts = re.split(r"\n\s*\n|^(\S.*)$", rendered, flags=re.MULTILINE)
    paragraphs = [" ".join(paragraph.split()) for paragraph in parts if paragraph]
    paragraphs = [paragraph for paragraph in paragraphs if paragraph]
    at = paragraphs.index("NAME") if "NAME" in paragraphs[:-1] else None
    name = paragraphs[at + 1] if at is not None else ""
    text = paragraphs[:at] + paragraphs[at + 2:] if at is not None else paragraphs
    return {"section": path.parent.name[3:], "name": name, "path": str(path), "text": "\n".join(text)}


@click.command(help=__doc__)
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--per-section", default=450, show_default=True, help="At most this many pages a section.")
@click.option("--min-pages", default=60, show_default=True, help="Drop sections with fewer usable pages.")
@click.option("--min-words", default=50, show_default=True, help="Drop pages with a shorter body.")
@click.option("--max-words", default=0, show_default=True,
              help="Drop pages with a longer body (0: keep all): bounds chunks' training windows.")
@click.option("--exclude", default=r"^gcloud", show_default=True,
              help="Regex on file names to leave out ('' for none): gcloud's 16,000 generated pages "
                   "would otherwise swamp section 1.")
@click.option("--seed", default=0, show_default=True, help="Seed of the per-section sampling.")
def main(output, per_section, min_pages, min_words, max_words, exclude, seed):
    paths = sorted(path for path in FOLDER.glob("man[1-8]/*")
                   if not (exclude and re.search(exclude, path.name)))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        pages = pd.DataFrame([page for page in pool.map(render, paths) if page])
    words = pages["text"].str.split().str.len()
    pages = pages[(words >= min_words) & ((words <= max_words) | (max_words == 0))].drop_duplicates("text")
    counts = pages["section"].value_counts()
    pages = pages[pages["section"].isin(counts[counts >= min_pages].index)]
    rng = random.Random(seed)
    frame = pd.concat([group.loc[sorted(rng.sample(list(group.index), min(per_section, len(group))))]
                       for _, group in pages.groupby("section")]).sort_values("path")
    frame["page"] = frame["name"] + "\n" + frame["text"]
    frame[["section", "name", "text", "page"]].to_csv(output, index=False)
    words = frame["text"].str.split().str.len()
    click.echo(f"{len(frame)} pages written to {output} (of {len(paths)} files; dropped sections: "
               f"{', '.join(f'{s} {n}' for s, n in counts[counts < min_pages].items()) or 'none'}): "
               + ", ".join(f"{s} {n}" for s, n in frame["section"].value_counts().sort_index().items()))
    click.echo(f"words a page: median {words.median():.0f}, p90 {words.quantile(0.9):.0f}, max {words.max()}")


if __name__ == "__main__":
    main()
