"""Every example of every rule file: positives are found, near-miss negatives are not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(("lang", "rule_id", "text", "expect"), _examples())
def test_rule_example(lang: str, rule_id: str, text: str, expect: str | None) -> None:
    claims = load_extractor().extract_text(text, lang_hint=lang)
    if expect:
        assert expect in {c.category for c in claims}, f"{rule_id} should find {expect}"
    else:
        assert rule_id not in {c.rule_id for c in claims}, f"{rule_id} is a near miss"


def test_every_language_has_rules_for_every_category() -> None:
    from claims_db.codebook import CATEGORIES

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
