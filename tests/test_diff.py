"""The pure diff: unchanged, changed (similar edited sentence), new and removed claims."""

from dataclasses import dataclass

import pytest

from monitor.diff import match_claims, similarity
from monitor.records import ExtractedClaim


@dataclass
class Known:
    category: str
    key: str
    text: str = ""


def seen(category: str, key: str) -> ExtractedClaim:
    return ExtractedClaim(
        category=category,
        text=key,
        key=key,
        lang="en",
        trigger="",
        trigger_start=0,
        trigger_end=0,
        rule_id="test",
    )


def test_identical_claims_are_unchanged():
    diff = match_claims(
        [Known("efficacy_promise", "works in 60% of patients")],
        [seen("efficacy_promise", "works in 60% of patients")],
    )
    assert len(diff.unchanged) == 1 and diff.is_empty


def test_edited_sentence_is_changed_not_removed_and_new():
    old = Known("efficacy_promise", "symptoms improved in 60% of als patients")
    diff = match_claims(
        [old], [seen("efficacy_promise", "symptoms improved in 70% of als patients")]
    )
    assert [(k.key, o.key) for k, o in diff.changed] == [
        (old.key, "symptoms improved in 70% of als patients")
    ]
    assert not diff.new and not diff.removed


def test_same_text_in_another_category_is_not_a_change():
    diff = match_claims(
        [Known("price", "treatment costs 14,500 usd")],
        [seen("efficacy_promise", "treatment costs 14,500 usd")],
    )
    assert len(diff.new) == 1 and len(diff.removed) == 1 and not diff.changed


def test_unrelated_sentences_are_removed_and_new():
    diff = match_claims(
        [Known("efficacy_promise", "repairs damaged cartilage")],
        [seen("efficacy_promise", "our patients with copd breathe freely again")],
    )
    assert [c.key for c in diff.new] == ["our patients with copd breathe freely again"]
    assert [k.key for k in diff.removed] == ["repairs damaged cartilage"]


def test_best_pairs_win_when_several_sentences_change():
    known = [
        Known("efficacy_promise", "als improved in 60% of patients"),
        Known("efficacy_promise", "stroke recovery in 8 of 10 patients"),
    ]
    observed = [
        seen("efficacy_promise", "stroke recovery in 9 of 10 patients"),
        seen("efficacy_promise", "als improved in 65% of patients"),
    ]
    pairs = {k.key: o.key for k, o in match_claims(known, observed).changed}
    assert pairs == {
        "als improved in 60% of patients": "als improved in 65% of patients",
        "stroke recovery in 8 of 10 patients": "stroke recovery in 9 of 10 patients",
    }


def test_duplicate_observations_count_once():
    diff = match_claims([], [seen("price", "150万円"), seen("price", "150万円")])
    assert len(diff.new) == 1


@pytest.mark.parametrize(
    ("a", "b", "alike"),
    [
        ("improved in 60% of patients", "improved in 70% of patients", True),
        ("fda registered laboratory", "we accept credit cards", False),
        ("厚生労働省に届出・受理された治療", "厚生労働省に届出・受理された安全な治療", True),
    ],
)
def test_similarity_threshold(a, b, alike):
    assert (similarity(a, b) >= 0.6) is alike
