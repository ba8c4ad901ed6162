"""The fresh evaluation set (tests/labelled_fresh/*.jsonl) is well formed and has its promised counts.

The fresh set is an unseen test written by a second hand; see docs/corpus.md, "The fresh set".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.corpus_format import CATEGORIES, FIELDS, KINDS, load_jsonl

FRESH = Path(__file__).parent / "labelled_fresh"
ID_PREFIX = {"en": "fen-", "ja": "fja-", "zh": "fzh-"}
SIZES = {"en": 140, "ja": 130, "zh": 90}
MIN_PER_CATEGORY = {"en": 10, "ja": 10, "zh": 6}
MIN_MAIN_CATEGORIES = {"en": 25, "ja": 25, "zh": 12}  # efficacy_promise and registry_endorsement
MAIN_CATEGORIES = ("efficacy_promise", "registry_endorsement")
MIN_NEGATIVE_SHARE = 0.45
LANGS = tuple(SIZES)


def load(lang: str) -> list[dict]:
    """Every item of one language's file."""
    return load_jsonl(FRESH / f"{lang}.jsonl", allow_blank_lines=False)


@pytest.fixture(scope="module", params=LANGS)
def fresh(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, load(request.param)


def test_items_have_the_documented_shape(fresh: tuple[str, list[dict]]) -> None:
    lang, items = fresh
    for item in items:
        assert set(item) == FIELDS, item
        assert item["lang"] == lang, item["id"]
        assert item["text"] and item["text"].strip() == item["text"], item["id"]
        assert set(item["labels"]) <= CATEGORIES, item["id"]
        assert len(set(item["labels"])) == len(item["labels"]), item["id"]
        assert item["kind"] in KINDS, item["id"]
        assert isinstance(item["hedged"], bool) and isinstance(item["note"], str), item["id"]
        assert all(isinstance(c, str) and c for c in item["conditions"]), item["id"]


def test_ids_are_numbered_in_order(fresh: tuple[str, list[dict]]) -> None:
    """Ids run fen-0001, fen-0002, ... so a missing or duplicated line shows up at once."""
    lang, items = fresh
    expected = [f"{ID_PREFIX[lang]}{number:04d}" for number in range(1, len(items) + 1)]
    assert [item["id"] for item in items] == expected


def test_ids_and_texts_are_unique_across_the_set() -> None:
    items = [item for lang in LANGS for item in load(lang)]
    assert len({item["id"] for item in items}) == len(items)
    assert len({item["text"] for item in items}) == len(items)


def test_fresh_texts_do_not_repeat_the_main_corpus() -> None:
    """An unseen test is only unseen if none of its sentences is in tests/labelled."""
    main = Path(__file__).parent / "labelled"
    seen = {
        json.loads(line)["text"]
        for lang in LANGS
        for line in (main / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    repeated = [item["id"] for lang in LANGS for item in load(lang) if item["text"] in seen]
    assert repeated == []


def test_labels_agree_with_kind_and_hedging(fresh: tuple[str, list[dict]]) -> None:
    """Claims are in the clinic's voice; negatives are of a hard kind and never hedged."""
    _, items = fresh
    for item in items:
        assert bool(item["labels"]) == (item["kind"] == "clinic"), item["id"]
        if item["hedged"]:
            assert item["labels"], item["id"]
    assert any(item["hedged"] for item in items)


def test_size_and_negative_share(fresh: tuple[str, list[dict]]) -> None:
    lang, items = fresh
    assert len(items) == SIZES[lang]
    negatives = sum(not item["labels"] for item in items)
    assert negatives / len(items) >= MIN_NEGATIVE_SHARE, (lang, negatives)


def test_every_category_has_enough_positives(fresh: tuple[str, list[dict]]) -> None:
    lang, items = fresh
    for category in sorted(CATEGORIES):
        positives = sum(category in item["labels"] for item in items)
        wanted = (
            MIN_MAIN_CATEGORIES[lang] if category in MAIN_CATEGORIES else MIN_PER_CATEGORY[lang]
        )
        assert positives >= wanted, (lang, category, positives)


def test_negatives_span_the_hard_kinds(fresh: tuple[str, list[dict]]) -> None:
    """Every negative kind is present, so precision is measured against all of them."""
    _, items = fresh
    assert {item["kind"] for item in items if not item["labels"]} == KINDS - {"clinic"}


def test_chinese_has_simplified_and_traditional_text() -> None:
    texts = "".join(item["text"] for item in load("zh"))
    assert any(ch in texts for ch in "这们疗获")  # simplified-only forms
    assert any(ch in texts for ch in "這們療獲")  # traditional-only forms
