"""The README and the pages under docs/: every relative link leads to a file of the project, the
README stays short, links every page, and names the test commands that CI and a newcomer run."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 150
FULL_TESTS = "python -m pytest -q -n 2 --dist loadfile"
FAST_TESTS = 'python -m pytest -q -n 2 -m "not slow"'

# [text](target) or [text](target "title"), and ![alt](target); code spans and fenced blocks removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def links(markdown: str) -> list[str]:
    """The link targets of a markdown text, outside code."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", markdown)))


def relative_target(page: Path, target: str) -> Path | None:
    """The file a relative link points to, or None for a web or mail link and a same-page anchor."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
        return None
    return (page.parent / target.split("#", 1)[0].split("?", 1)[0]).resolve()


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", page.read_text(encoding="utf-8")), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_link_extraction():
    text = ("[a](docs/a.md#x) ![b](../img.png) [web](https://example.org) [mail](mailto:x@example.org) "
            "[self](#top) `[code](no.md)`\n```\n[fenced](no.md)\n```\n")
    assert links(text) == ["docs/a.md#x", "../img.png", "https://example.org", "mailto:x@example.org", "#top"]
    assert relative_target(ROOT / "README.md", "docs/a.md#x") == ROOT / "docs" / "a.md"
    assert relative_target(ROOT / "README.md", "https://example.org") is None
    assert relative_target(ROOT / "README.md", "#top") is None
    assert "how-trains-defaults-were-chosen" in anchors(ROOT / "docs" / "speed.md")


def test_there_are_docs_pages():
    assert PAGES, "docs/ holds no markdown page"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = [target for target in links(page.read_text(encoding="utf-8"))
              if (path := relative_target(page, target)) is not None and not path.exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_each_page_starts_with_a_title_and_a_summary(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and lines[0][2:].strip(), f"{page.name}: first line is not a title"
    assert len(lines) > 2 and not lines[1].strip() and lines[2].strip(), f"{page.name}: no summary under the title"


def test_readme_is_short():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, f"README.md has {count} lines (at most {MAX_README_LINES})"


def test_readme_links_every_docs_page():
    linked = {relative_target(README, target) for target in links(README.read_text(encoding="utf-8"))}
    missing = [page.name for page in PAGES if page.resolve() not in linked]
    assert not missing, f"README.md links no page {missing}"


def test_readme_names_both_test_commands():
    text = README.read_text(encoding="utf-8")
    assert FULL_TESTS in text
    assert FAST_TESTS in text


def test_ci_runs_the_readme_full_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(command.removeprefix("python3 ").removeprefix("python ") == FULL_TESTS.removeprefix("python ")
               for command in commands), ".ci/run does not run the README's full test command"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: str(page.relative_to(ROOT)))
def test_anchors_of_links_to_pages_exist(page):
    broken = [target for target in links(page.read_text(encoding="utf-8"))
              if "#" in target and (path := relative_target(page, target)) is not None and path.suffix == ".md"
              and path.exists() and target.split("#", 1)[1] not in anchors(path)]
    assert not broken, f"{page.relative_to(ROOT)} links to headings that are not there: {broken}"


def test_the_parameter_table_is_mains_options_with_their_defaults():
    """docs/parameters.md lists every option of main, no other, and a single-name row's literal
    default is the option's (the options come from the specs: steps/core/specs.py)."""
    from steps import main

    options = {option.name: option.default for option in main.main.params}
    rows = re.findall(r"^\| (`[^|]+) \| ([^|]+) \|", (ROOT / "docs" / "parameters.md").read_text(), re.MULTILINE)
    documented = {}
    for names, default in rows:
        for name in re.findall(r"`(\w+)`", names):
            documented[name] = default.strip() if names.count("`") == 2 else None
    assert set(documented) == set(options)
    for name, default in documented.items():
        literal = re.fullmatch(r"`([^`]*)`", default or "")
        if literal:
            value = options[name]
            assert (float(literal[1]) == float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                    else literal[1] == str(value).lower()), (name, default, value)
