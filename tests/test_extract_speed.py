"""The extractor's speed machinery changes nothing it finds: literal prefilters, the per-language
literal index, the rejection of exponential patterns, and the single-pass HTML block walk."""

from __future__ import annotations

import codecs
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.encoding import _has_impossible_characters
from monitor.config import ConfigError
from monitor.extract import Extractor, load_extractor
from monitor.extract.branches import top_level_branches
from monitor.extract.fast import (
    LiteralIndex,
    TermAlternation,
    TermFinder,
    WordTermFinder,
    further_required_literals,
    required_literals,
    unbounded_nesting,
)
from monitor.extract.html import decode_body, parse_page, parse_page_bytes
from monitor.extract.matchers import build_matcher
from monitor.extract.rules import DEFAULT_RULES_DIR

LABELLED = Path(__file__).parent / "labelled"


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"\b(cure[sd]?|heal)\b", ("cure", "heal")),
        (r"[ab]c", ("ac", "bc")),
        (r"厚生労働省.{0,12}(届出|受理)", ("厚生労働省",)),
        (r"\d+%", ("%",)),
        (r"^\W*(\w+\W+){0,3}?(is|are) not", ("are not", "is not")),
        (r"(?:x|y)+z", ("z",)),
        (r"(?i)abc", None),  # case-insensitive: a literal test would miss "ABC"
        (r"a(?i:b)c", ("a",)),
        (r"\w+", None),
        (r"cure|\d", None),  # one branch needs no literal at all
        (r"(re)?pair", ("pair",)),
    ],
)
def test_required_literals(pattern: str, literals: tuple[str, ...] | None) -> None:
    assert required_literals(pattern) == literals


@pytest.mark.parametrize(
    ("pattern", "nested"),
    [
        (r"(a+)+", True),
        (r"(\w+\s?)*x", True),
        (r"(?:x(?:y|z+))+", True),
        (r"(\w+\W+){0,3}", False),
        (r"a.{0,40}b|\w+ing", False),
        (r"(ab)+c*", False),
    ],
)
def test_unbounded_nesting(pattern: str, nested: bool) -> None:
    assert unbounded_nesting(pattern) is nested


def _rule_matchers() -> list:
    """Every matcher of every rule file, with and without the language's literal index."""
    matchers = []
    for rules in load_extractor().languages.values():
        for item in [*rules.rules, *rules.exclusions]:
            matchers += [item.matcher] + ([item.unless] if item.unless else [])
        matchers += [m for m in (rules.hedges, rules.negation_before, rules.negation_after) if m]
    return matchers


def _sentences() -> list[str]:
    texts = []
    for path in sorted(LABELLED.glob("*.jsonl")):
        texts += [
            json.loads(line)["text"].lower() for line in path.read_text("utf-8").split("\n") if line
        ]
    for rules in load_extractor().languages.values():
        texts += [e.text.lower() for rule in rules.rules for e in rule.examples]
    return texts


def test_prefiltered_search_finds_what_the_regex_finds() -> None:
    matchers, sentences = _rule_matchers(), _sentences()
    assert len(sentences) > 500
    found = 0
    for sentence in sentences:
        for matcher in matchers:
            expected = matcher.pattern.search(sentence)
            got = matcher.search(sentence)
            assert (got and got.span()) == (expected and expected.span()), matcher.pattern.pattern
            found += got is not None
    assert found > 100  # the corpus does exercise the matchers


SPECS = [
    {"lexicon": ["cure", "heal", "stem cell"]},
    {"regex": r"\b(re)?pair(s|ed)?\b.{0,10}(cartilage|nerves?)"},
    {"near": {"a": ["fda"], "b": "regist\\w*|approv\\w*", "within": 12}},
    {"regex": "改善(し|され)|[0-9]+%"},
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "cure",
                "heal",
                "repair",
                "pair",
                "ed ",
                "cartilage",
                "fda ",
                "regist",
                "approv",
                "stem cell",
                "改善",
                "され",
                "12%",
                " ",
                "x",
                "-",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_prefilter_never_changes_a_match(text: str) -> None:
    index = LiteralIndex()
    for spec in SPECS:
        plain, indexed = build_matcher(spec), build_matcher(spec)
        indexed.use_index(index)
        expected = plain.pattern.search(text)
        for matcher in (plain, indexed):
            got = matcher.search(text)
            assert (got and got.span()) == (expected and expected.span())


def test_literal_index_answers_for_each_text_not_each_object_seen() -> None:
    index = LiteralIndex()
    cure, fda = index.add(("cure",)), index.add(("fda", "irb"))
    first = "a cure"
    assert index.keys_in(first) == {cure}
    assert index.keys_in(first) == {cure}  # the kept answer for the same object
    assert index.keys_in("".join(["an irb ", "and a cure"])) == {cure, fda}
    assert index.keys_in("nothing") == frozenset()


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT_RULES_DIR, tmp_path / "rules"))


def test_nested_unbounded_quantifier_is_a_config_error_naming_file_and_rule(
    rules_copy: Path,
) -> None:
    path = rules_copy / "en.yaml"
    text = path.read_text(encoding="utf-8")
    rule = (
        "  - id: en.efficacy.catastrophic\n"
        "    category: efficacy_promise\n"
        '    match: {regex: "(\\\\w+\\\\s?)+ cures"}\n'
        "    examples:\n"
        '      - {text: "it cures", expect: efficacy_promise}\n'
        '      - {text: "no", expect: null}\n'
    )
    path.write_text(text.replace("\nrules:\n", "\nrules:\n" + rule, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Extractor(rules_copy)
    message = str(info.value)
    assert "en.yaml: rule en.efficacy.catastrophic:" in message
    assert "unbounded quantifier inside another" in message


def test_a_near_miss_on_a_long_sentence_is_linear() -> None:
    # `(a|b)*`-style blow-ups are rejected at load; what remains must survive adversarial input.
    text = ("cure " * 4000 + "no ") * 3 + "<p>" + "improv" * 20_000 + "</p>"
    claims = load_extractor().extract_html(f"<html><body><p>{text}</p></body></html>")
    assert all(c.text for c in claims)


def test_id_and_class_are_read_separately_with_the_same_outcome() -> None:
    html = (
        '<html><body><div id="post-123" class="site-sidebar">Sidebar text here.</div>'
        '<div id="cookie-notice-7" class="x">Cookie text.</div>'
        '<div id="masthead" class="">Header text.</div>'
        '<div class="content"><p hidden>Hidden.</p><p>Main text.</p></div></body></html>'
    )
    blocks = [(b.text, b.location) for b in parse_page(html).blocks]
    assert blocks == [
        ("Sidebar text here.", "aside"),
        ("Header text.", "masthead"),
        ("Main text.", "main"),
    ]


def test_term_finder_reports_terms_in_their_own_order() -> None:
    finder = TermFinder(["heal", "fda", "cur", "fda"])
    assert finder.present("fda-registered cures that heal") == ["heal", "fda", "cur", "fda"]
    assert finder.present("nothing here") == []
    assert finder.occurs_in("it cures") and not finder.occurs_in("nothing")
    assert TermFinder([]).present("anything") == [] and not TermFinder([]).occurs_in("x")
    assert TermFinder(["", "x"]).present("abc") == [""]  # as `"" in text` is always true


def test_anchors_in_agrees_with_testing_each_anchor() -> None:
    for rules in load_extractor().languages.values():
        for text in _sentences()[:300]:
            assert rules.anchors_in(text) == [a for a in rules.anchors if a in text]


def test_rules_for_keeps_every_rule_that_matches() -> None:
    for rules in load_extractor().languages.values():
        for text in _sentences():
            candidates = rules.rules_for(text)
            matching = [r for r in rules.rules if r.matcher.pattern.search(text)]
            assert [r.id for r in candidates if r in matching] == [r.id for r in matching]


def test_word_term_finder_never_misses_a_lexicon_match() -> None:
    attributes = load_extractor().attributes
    lexicons = [attributes.conditions, attributes.interventions, attributes.authorities]
    sentences = _sentences()
    matched = 0
    for lexicon in lexicons:
        for sentence in sentences:
            if lexicon.pattern.search(sentence):
                assert lexicon.finder.occurs_in(sentence), sentence
                matched += 1
    assert matched > 100


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("symptoms improved", False),  # "ed" inside a word is no lexicon match
        ("ed treatment", True),
        ("treats ed.", True),
        ("alsの患者", True),  # kana is not a Latin letter: "als" stands alone
        ("falls", False),
        ("脳卒中の後遺症", True),
    ],
)
def test_word_term_finder_keeps_the_lexicon_boundaries(text: str, found: bool) -> None:
    finder = WordTermFinder(["ed", "als", "脳卒中"])
    assert finder.occurs_in(text) is found
    assert not WordTermFinder([]).occurs_in(text)


@pytest.mark.parametrize(
    "text", ["plain ascii", "当院の治療", "\x80 c1 control", "x\x9fy", "\ue000", "\uf8ff", "\uf900"]
)
def test_impossible_characters_are_c1_controls_and_private_use(text: str) -> None:
    expected = any(0x80 <= ord(c) <= 0x9F or 0xE000 <= ord(c) <= 0xF8FF for c in text)
    assert _has_impossible_characters(text) is expected


def test_blocks_without_anchors_still_give_the_page_its_medical_context() -> None:
    # The gated testimonial needs the page's context, which lives in blocks with no anchor;
    # their language is detected only when that question comes up.
    context = "".join(
        f"<p>{line}</p>"
        for line in ("Patients with arthritis visit our clinic.", "Stem cell infusion day.")
    )
    html = context + '<p>"Best decision I ever made," says Tom from Arizona.</p>'
    claims = Extractor(use_model=False).extract_html(html)
    assert [c.category for c in claims] == ["testimonial"]


@pytest.mark.parametrize(
    ("pattern", "branches"),
    [
        (r"\bcure\b|heal(s|ed)", (r"\bcure\b", "heal(s|ed)")),
        (r"(?:cure|heal)", ("(?:cure)", "(?:heal)")),  # one group around everything
        (r"\b(cure|heal)\b", (r"\b(?:cure)\b", r"\b(?:heal)\b")),  # spread over its context
        (r"[|(]x|y\|z", ("[|(]x", r"y\|z")),  # "|" in a class or escaped does not split
        (r"a(b|c)d", None),  # a literal before the group could match on its own
        (r"\b(cure|heal)\b.{0,9}now", None),  # the rest needs "now": already gated by it
        (r"\b(cure|heal)+", None),  # a repeated group is not an alternation of the pattern
        (r"(a)|\1", None),  # back-references count groups
        (r"(?i)a|b", None),  # global flags
        (r"(?=a|b)c", None),
        ("cure", None),
    ],
)
def test_top_level_branches(pattern: str, branches: tuple[str, ...] | None) -> None:
    assert top_level_branches(pattern) == branches


@pytest.mark.parametrize(
    ("pattern", "further"),
    [
        (r"(\$|€)\d+.{0,80}?(treatment|session)", [("$", "€")]),
        (r"(treatment|session).{0,80}?(a|b)", []),  # "a" and "b" are in most sentences
        (r"\bpain\b.{0,40}(gone|eased)", [("eased", "gone")]),
        (r"cure", []),
        (r"(?i)cure.{0,9}heal", []),
    ],
)
def test_further_required_literals(pattern: str, further: list[tuple[str, ...]]) -> None:
    assert further_required_literals(pattern) == further


BRANCHED_SPECS = [
    {"regex": r"\b(he|she) (can|could) walk\b|\bpatent(s|ed)?\b|^\W*[a-z]+, (a|an) [^,]{3,9}, now"},
    {"regex": r"\b(cure[sd]?|heal\w*|walk(ed)? again|x)\b"},
    {"near": {"a": r"(\$|€)\s?\d+", "b": ["cure", "session", "he"], "within": 12}},
    {"lexicon": ["cure", "he", "walk again", "$"]},
    {"regex": r"(a|b)c|\bc(?=d)|d$|^e"},
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "he ",
                "she ",
                "can ",
                "could ",
                "walk",
                " again",
                "patent",
                "ed",
                "s",
                "cure",
                "heal",
                "x",
                "$",
                "€",
                "5",
                "session",
                ", ",
                "a ",
                "an ",
                "now",
                "bob",
                " ",
                "c",
                "d",
                "e",
                "ab",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_branch_search_finds_what_the_whole_pattern_finds(text: str) -> None:
    index = LiteralIndex()
    matchers = [build_matcher(spec) for spec in BRANCHED_SPECS]
    for matcher in matchers:
        matcher.use_index(index)
    for matcher in matchers:
        expected = matcher.pattern.search(text)
        got = matcher.search(text)
        assert (got and got.span()) == (expected and expected.span()), matcher.pattern.pattern


def test_rules_with_branches_are_searched_branch_by_branch() -> None:
    # The machinery is in use for today's rules, not only in the tests above.
    english = load_extractor().languages["en"]
    assert sum(rule.matcher._branches is not None for rule in english.rules) > 10


def test_term_alternation_compiles_only_the_terms_present() -> None:
    terms = TermAlternation({"stem cells": r"\bstem cells\b", "cell": r"\bcell\b", "ms": "ms"})
    assert terms.for_terms(frozenset({"cell", "ms"})).pattern == r"\bcell\b|ms"
    assert terms.for_terms(frozenset()).pattern == ""
    assert terms.pattern.pattern == r"\bstem cells\b|\bcell\b|ms"


def test_lexicons_and_medical_context_find_what_their_whole_pattern_finds() -> None:
    extractor = load_extractor()
    attributes, context = extractor.attributes, extractor.context
    assert context is not None
    found = 0
    for sentence in _sentences():
        for lexicon in (attributes.conditions, attributes.interventions, attributes.authorities):
            expected = tuple(
                dict.fromkeys(lexicon.names[m.group(0)] for m in lexicon.pattern.finditer(sentence))
            )
            assert lexicon.find(sentence) == expected
            found += bool(expected)
        for vocabulary in (*context.terms.values(), *context.sentence_terms.values()):
            whole = [m.span() for m in vocabulary.alternation.pattern.finditer(sentence)]
            assert [m.span() for m in vocabulary.matches(sentence)] == whole
    assert found > 100


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<p lang=ja>当院の治療は安全です。</p>".encode(), None),
        (codecs.BOM_UTF8 + b"<p>Stem cells cure ALS.</p>", None),
        (b"<p>Stem\x00 cells cure ALS.</p>", None),
        ("<p>当院の治療</p>".encode("cp932"), "text/html; charset=Shift_JIS"),
        (b"<p>broken \xff\xfe utf-8 \xe2\x82</p>", "text/html; charset=utf-8"),
        (b"<p>plain</p>", None),
    ],
)
def test_parsing_bytes_gives_the_page_the_decoded_text_gives(
    body: bytes, content_type: str | None
) -> None:
    expected = parse_page(decode_body(body, content_type))
    assert parse_page_bytes(body, content_type) == expected
    assert expected.blocks  # every case has text to compare


def test_tags_are_classified_whatever_their_case() -> None:
    html = "<HTML><BODY><NAV>Menu</NAV><HEADER>Top</HEADER><P>Body text.</P></BODY></HTML>"
    assert [(b.text, b.location) for b in parse_page(html).blocks] == [
        ("Top", "header"),
        ("Body text.", "main"),
    ]
