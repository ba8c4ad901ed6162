"""Every example of every rule file: positives are found, near-miss negatives are not.

A negative example is a hard negative for its rule's whole category: news, a regulator's
warning, a disclaimer, a negation or a neutral description that uses the rule's words must give
no claim of that category from any rule, not only from the rule it is listed under.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError
from monitor.extract import Extractor, load_extractor
from monitor.extract.rules import DEFAULT_RULES_DIR, load_language


def _examples() -> list[tuple[str, str, str, str | None]]:
    cases = []
    for path in sorted(DEFAULT_RULES_DIR.glob("??.yaml")):
        rules = load_language(path)
        for rule in rules.rules:
            for example in rule.examples:
                cases.append((rules.lang, rule.id, example.text, example.expect))
    return cases


@pytest.fixture(scope="module")
def rules_only() -> Extractor:
    """The rules without the model stage: each rule's examples are about the rule itself."""
    return Extractor(use_model=False)


@pytest.mark.parametrize(("lang", "rule_id", "text", "expect"), _examples())
def test_rule_example(
    rules_only: Extractor, lang: str, rule_id: str, text: str, expect: str | None
) -> None:
    claims = rules_only.extract_text(text, lang_hint=lang)
    if expect:
        assert expect in {c.category for c in claims}, f"{rule_id} should find {expect}"
    else:
        category = _category_of(rule_id)
        found = {c.rule_id for c in claims if c.category == category}
        assert not found, f"near miss of {rule_id}, but {sorted(found)} found {category}"


def _category_of(rule_id: str) -> str:
    lang = rule_id.split(".", 1)[0]
    return next(r.category for r in load_extractor().languages[lang].rules if r.id == rule_id)


def test_every_rule_has_examples_for_its_own_words() -> None:
    """Each rule carries at least one positive and one hard negative (the loader insists too)."""
    for lang, rules in load_extractor().languages.items():
        for rule in rules.rules:
            expects = {e.expect for e in rule.examples}
            assert rule.category in expects and None in expects, (lang, rule.id)


def test_every_language_has_rules_for_every_category() -> None:

    for lang, rules in load_extractor().languages.items():
        assert {r.category for r in rules.rules} == set(CATEGORIES), lang


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT_RULES_DIR, tmp_path / "rules"))


def test_unknown_matcher_names_file_rule_and_known_kinds(rules_copy: Path) -> None:
    path = rules_copy / "ja.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "registry.mhlw_filed\n    category: registry_endorsement\n    confidence: 0.95\n    match:\n      near:",
            "registry.mhlw_filed\n    category: registry_endorsement\n    confidence: 0.95\n    match:\n      regexp:",
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        Extractor(rules_copy)
    message = str(info.value)
    assert "ja.yaml: rule ja.registry.mhlw_filed: unknown matcher 'regexp'" in message
    assert "(known: lexicon, near, regex)" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("category: price", "category: prices", "unknown category 'prices'"),
        ("confidence: 0.9\n", "confidence: 0.9\n    confidense: 1\n", "unknown key"),
        ('{regex: "\\\\d[', '{regex: "(\\\\d[', "invalid regular expression"),
    ],
)
def test_broken_rule_files_raise_config_error(
    rules_copy: Path, old: str, new: str, expected: str
) -> None:
    path = rules_copy / "ja.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        Extractor(rules_copy)


def test_invalid_yaml_names_the_line(rules_copy: Path) -> None:
    (rules_copy / "en.yaml").write_text("lang: en\nrules: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"en.yaml: line \d+, column \d+: invalid YAML"):
        Extractor(rules_copy)


def test_version_changes_when_a_rule_file_changes(rules_copy: Path) -> None:
    before = Extractor(rules_copy).version
    path = rules_copy / "en.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    after = load_extractor(rules_copy).version
    assert before != after
    assert before.startswith("2026.") and "+" in before
    claims = load_extractor(rules_copy).extract_text("FDA-registered laboratory", lang_hint="en")
    assert claims[0].rules_version == after


def test_load_extractor_is_cached_per_folder() -> None:
    assert load_extractor() is load_extractor(DEFAULT_RULES_DIR)


def test_every_gated_rule_in_context_yaml_names_a_rule() -> None:
    extractor = load_extractor()
    ids = [r.id for rules in extractor.languages.values() for r in rules.rules]
    assert extractor.context is not None
    for gate in extractor.context.gated_rules:
        prefix = gate.removesuffix("*")
        assert any(i == gate or (gate.endswith("*") and i.startswith(prefix)) for i in ids), gate


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("page_minimum: 3", "page_minmum: 3", "page_minmum: unknown key"),
        ("page_minimum: 3", "page_minimum: 0", "page_minimum: a whole number"),
        ("\n  ja: [患者", "\n  jp: [患者", "medical.jp: unknown language"),
    ],
)
def test_broken_context_file_raises_config_error(
    rules_copy: Path, old: str, new: str, expected: str
) -> None:
    path = rules_copy / "context.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        Extractor(rules_copy)


def test_without_a_context_file_nothing_is_gated(rules_copy: Path) -> None:
    (rules_copy / "context.yaml").unlink()
    claims = Extractor(rules_copy).extract_text("It really works.", lang_hint="en")
    assert [c.category for c in claims] == ["efficacy_promise"]
    assert load_extractor().extract_text("It really works.", lang_hint="en") == []
