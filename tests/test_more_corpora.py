"""The third writer's set (tests/labelled_extra/), the real-text set (tests/labelled_real/), the
ordinary-text negatives (tests/labelled_general/) and the neutral medical text
(tests/labelled_medical/) are well formed, distinct from the other sets, and as large as
docs/corpus.md says."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.corpus_format import CATEGORIES, FIELDS, KINDS, load_jsonl

TESTS = Path(__file__).parent
LANGS = ("en", "ja", "zh")
SETS = {
    # folder: (id prefix letter, extra fields, minimum items per language)
    "labelled_extra": ("x", frozenset(), 300),
    "labelled_real": ("r", frozenset({"source_url"}), 240),
    "labelled_general": ("g", frozenset({"source_url"}), 150),
    "labelled_medical": ("m", frozenset({"source_url"}), 250),
}
CLAIM_SETS = ("labelled_extra", "labelled_real")
MIN_NEGATIVE_SHARE = 0.40


def load(folder: str, lang: str) -> list[dict]:
    return load_jsonl(TESTS / folder / f"{lang}.jsonl", allow_blank_lines=False)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("folder", SETS)
def test_items_have_the_documented_shape(folder: str, lang: str) -> None:
    prefix, extra, minimum = SETS[folder]
    items = load(folder, lang)
    assert len(items) >= minimum
    assert [i["id"] for i in items] == [f"{prefix}{lang}-{n:04d}" for n in range(1, len(items) + 1)]
    for item in items:
        assert set(item) == FIELDS | extra, item["id"]
        assert item["lang"] == lang and item["text"].strip() == item["text"] != "", item["id"]
        assert set(item["labels"]) <= CATEGORIES, item["id"]
        assert len(set(item["labels"])) == len(item["labels"]), item["id"]
        assert item["kind"] in KINDS, item["id"]
        assert isinstance(item["hedged"], bool) and isinstance(item["note"], str), item["id"]
        if "source_url" in extra:
            assert item["source_url"].startswith(("http://", "https://")), item["id"]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("folder", CLAIM_SETS)
def test_negatives_are_plentiful_and_every_category_is_present(folder: str, lang: str) -> None:
    items = load(folder, lang)
    negatives = sum(1 for i in items if not i["labels"])
    assert negatives / len(items) >= MIN_NEGATIVE_SHARE
    counts = Counter(label for i in items for label in i["labels"])
    assert set(counts) == CATEGORIES
    assert counts["efficacy_promise"] >= 30


@pytest.mark.parametrize("lang", LANGS)
def test_the_medical_set_is_neutral_medical_text(lang: str) -> None:
    items = load("labelled_medical", lang)
    assert sum(1 for i in items if not i["labels"]) / len(items) >= 0.95
    neutral = Counter(i["kind"] for i in items)
    assert neutral["disease_description"] + neutral["neutral_procedure"] >= len(items) / 2


@pytest.mark.parametrize("lang", LANGS)
def test_the_general_set_is_ordinary_text_with_no_claims(lang: str) -> None:
    items = load("labelled_general", lang)
    assert all(i["labels"] == [] and i["kind"] == "other" for i in items)


def test_no_text_is_shared_between_any_two_sets() -> None:
    owners: dict[str, str] = {}
    for folder in ("labelled", "labelled_fresh", *SETS):
        for path in sorted((TESTS / folder).glob("*.jsonl")):
            for item in load_jsonl(path):
                text = " ".join(item["text"].split())
                assert text not in owners or owners[text] == folder, (text, owners.get(text))
                owners[text] = folder
