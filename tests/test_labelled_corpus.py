"""The labelled evaluation corpus (tests/labelled/*.jsonl) is well formed and big enough."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpus_format import CATEGORIES, FIELDS, KINDS, load_jsonl

LABELLED = Path(__file__).parent / "labelled"
MIN_ITEMS = {"en": 260, "ja": 260, "zh": 180}
MIN_PER_CATEGORY = {"en": 25, "ja": 25, "zh": 15}
MIN_MAIN_CATEGORIES = {"en": 60, "ja": 60}  # efficacy_promise and registry_endorsement
LANGS = tuple(MIN_ITEMS)


def load(lang: str) -> list[dict]:
    """Every item of one language's file."""
    return load_jsonl(LABELLED / f"{lang}.jsonl", allow_blank_lines=True)


@pytest.fixture(scope="module", params=LANGS)
def corpus(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, load(request.param)


def test_items_have_the_documented_shape(corpus: tuple[str, list[dict]]) -> None:
    lang, items = corpus
    for item in items:
        assert set(item) == FIELDS, item["id"]
        assert item["lang"] == lang, item["id"]
        assert item["id"].startswith(f"{lang}-"), item["id"]
        assert item["text"].strip() == item["text"] and item["text"], item["id"]
        assert set(item["labels"]) <= CATEGORIES, item["id"]
        assert len(set(item["labels"])) == len(item["labels"]), item["id"]
        assert item["kind"] in KINDS, item["id"]
        assert isinstance(item["hedged"], bool) and isinstance(item["note"], str), item["id"]
        assert all(isinstance(c, str) and c for c in item["conditions"]), item["id"]


def test_hedged_only_on_claims(corpus: tuple[str, list[dict]]) -> None:
    _, items = corpus
    assert all(item["labels"] for item in items if item["hedged"])
    assert any(item["hedged"] for item in items)


def test_clinic_kind_items_are_claims(corpus: tuple[str, list[dict]]) -> None:
    """Negatives are drawn from the hard kinds; an item in the clinic's own voice is a claim."""
    _, items = corpus
    for item in items:
        if item["kind"] == "clinic":
            assert item["labels"], item["id"]


def test_ids_and_texts_are_unique() -> None:
    items = [item for lang in LANGS for item in load(lang)]
    ids = [item["id"] for item in items]
    texts = [item["text"] for item in items]
    assert len(ids) == len(set(ids))
    assert len(texts) == len(set(texts))


def test_sizes_and_negative_share(corpus: tuple[str, list[dict]]) -> None:
    lang, items = corpus
    assert len(items) >= MIN_ITEMS[lang]
    negatives = sum(not item["labels"] for item in items)
    assert negatives / len(items) >= 0.45


def test_every_category_has_enough_positives(corpus: tuple[str, list[dict]]) -> None:
    lang, items = corpus
    for category in CATEGORIES:
        positives = sum(category in item["labels"] for item in items)
        wanted = MIN_PER_CATEGORY[lang]
        if category in ("efficacy_promise", "registry_endorsement"):
            wanted = MIN_MAIN_CATEGORIES.get(lang, wanted)
        assert positives >= wanted, (lang, category, positives)


def test_corpus_totals() -> None:
    items = [item for lang in LANGS for item in load(lang)]
    assert len(items) >= 700
    assert sum(not item["labels"] for item in items) / len(items) >= 0.45


def test_chinese_has_simplified_and_traditional_text() -> None:
    texts = "".join(item["text"] for item in load("zh"))
    assert any(ch in texts for ch in "这们疗获")  # simplified-only forms
    assert any(ch in texts for ch in "這們療獲")  # traditional-only forms
