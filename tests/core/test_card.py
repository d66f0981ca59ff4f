"""The model card's pieces (steps/core/card.py): sections in a reader's order whichever step writes
them, a step run again rewriting its own part, and the figures a card derives from the data."""

from huggingface_hub import ModelCard

from steps.core import card, gate
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


def test_the_evaluation_sets_the_version_beside_the_baseline_and_the_champion():
    scores = {"accuracy": 0.8, "f1": 0.75, "macro_f1": 0.75, "f1_food": 0.7, "f1_law": 0.9, "f1_love": 0.65}
    evidence = gate.Evidence(TOPICS, scores, {"accuracy": 0.6, "f1": 0.5, "f1_food": 0.4, "f1_law": 0.6, "f1_love": 0.5},
                             champion="2", champion_scores={**scores, "f1": 0.74, "f1_food": 0.72},
                             test_counts={"food": 40, "law": 41, "love": 12}, confusions=[("food", "law", 5)])
    section = card.evaluation_section(evidence, "rejected: test macro F1 0.7500 < min_f1 0.8.")
    assert section.splitlines()[0] == "On the held-out test split (93 rows; f1 is the macro F1):"
    assert "|  | this version | TF-IDF baseline | champion (version 2) |" in section
    assert "| f1 | 0.7500 | 0.5000 | 0.7400 |" in section and "| macro F1 |" not in section  # one row: it is the f1
    assert "| F1 `food` (40 test rows) | 0.7000 | 0.4000 | 0.7200 |" in section
    assert "Most confused: `food` read as `law` 5x." in section and "Behaviour checks" not in section
    assert section.endswith("**Verdict:** rejected: test macro F1 0.7500 < min_f1 0.8.")
    assert "another split" not in section
    evidence.champion_rows, evidence.scores_beside_champion = 30, {**scores, "f1": 0.7712}
    assert ("The champion trained on another split: its column is its score on the 30 test rows it did not train on, "
            "where this version's macro F1 is 0.7712.") in card.evaluation_section(evidence, "passed the gate.")


def test_the_long_text_limit_never_rounds_a_few_cut_texts_to_none():
    assert card.reading_limit(128, "head", 0.0013).startswith("0.13% of the texts were longer than 128 tokens")
    assert card.reading_limit(128, "head_tail", 0.87) == (
        "87% of the texts were longer than 128 tokens: the model reads only the start and the end of a longer text.")
