"""The model card's pieces (steps/core/card.py): sections in a reader's order whichever step writes
them, a step run again rewriting its own part, and the figures a card derives from the data."""

from huggingface_hub import ModelCard

from steps.core import card
from steps.core.task import Task

TOPICS = Task(("food", "law", "love"))


def test_sections_keep_the_readers_order_and_a_rewrite_replaces_its_own():
    model_card = card.with_limits(card.new_card("news.csv"), "cut at 128 tokens")
    model_card = card.with_section(model_card, "Evaluation", "first verdict")
    model_card = card.with_section(model_card, "What it is", "A classifier.")
    model_card = card.with_section(model_card, "Evaluation", "second verdict")
    model_card = card.with_limits(model_card, "cut at 128 tokens", "few test rows")
    again = ModelCard(str(model_card))  # what the next step reads back
    assert again.data.datasets == ["news.csv"] and again.data.pipeline_tag == "text-classification"
    assert card.split_sections(again.text) == {"": "", "What it is": "A classifier.", "Evaluation": "second verdict",
                                               "Limits": "- cut at 128 tokens\n- few test rows"}


def test_scripts_name_the_writing_systems_of_the_letters():
    assert card.scripts(["Hello there", "12 34 !!"]) == "Latin 100.0%"
    assert card.scripts(["abcd", "Привет"]) == "Cyrillic 60.0%, Latin 40.0%"
    assert card.scripts(["1234", "🙂"]) == "no letters"


def test_the_most_confused_pairs_and_the_classes_with_few_test_rows():
    assert card.confused_pairs(TOPICS, [0, 0, 0, 1, 2, 2], [1, 1, 0, 1, 0, 2]) == [("food", "law", 2),
                                                                                   ("love", "food", 1)]
    assert card.few_rows_limit({"food": 120, "law": 12, "love": 29}) == (
        "Few test rows, so a wide uncertainty on their F1: `law` 12, `love` 29.")
    assert card.few_rows_limit({"food": 30}) is None


def test_the_summary_says_what_the_version_is_and_links_its_card():
    model_card = card.with_section(card.new_card("fortunes.csv"), "What it is", "A text classifier of topics.\n\n- x")
    assert card.summary(model_card, "topics", "3", "Passed.", card.card_page("1", "abc", "card/README.md")) == (
        "topics version 3: A text classifier of topics. Data: fortunes.csv. Passed. [The model card]"
        "(#/experiments/1/runs/abc/artifacts/card/README.md) (README.md in the Hub's format) is an artifact of this "
        "version's run.")
