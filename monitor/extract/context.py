"""Context around a sentence: is the text about medical treatment, and whose voice is a block in?

Words such as "works", "restores", "longevity", a quote with "says" or a dollar amount are claims
on a clinic's page and nothing on a software blog. config/rules/context.yaml lists, per language,
the words that show a text is about medical treatment; a claim of a *gated* rule stands only when
its sentence, or the page around it, has such words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config import ConfigError
from monitor.extract.fast import TermAlternation, TermFinder
from monitor.extract.rules import LANGUAGES, read_yaml

CONTEXT_FILE = "context.yaml"


@dataclass
class MedicalContext:
    """Per-language medical vocabulary and the categories that need it."""

    terms: dict[str, _Vocabulary]
    sentence_terms: dict[str, _Vocabulary]
    gated_rules: tuple[str, ...]
    page_minimum: int
    _gated: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def in_sentence(self, lang: str, lowered: str) -> bool:
        """Whether a lower-cased sentence names a treatment, a patient, a disease …"""
        vocabulary = self.sentence_terms.get(lang)
        return vocabulary is None or next(vocabulary.matches(lowered), None) is not None

    def page_has_context(self, lang: str, lowered_blocks: Iterable[str]) -> bool:
        """Whether the page (all its blocks in `lang`) names enough distinct medical terms."""
        vocabulary = self.terms.get(lang)
        if vocabulary is None:
            return True
        found: set[str] = set()
        for text in lowered_blocks:
            found.update(m.group(0) for m in vocabulary.matches(text))
            if len(found) >= self.page_minimum:
                return True
        return False

    def needs_context(self, rule_id: str) -> bool:
        """Whether claims of this rule stand only in a medical context."""
        needs = self._gated.get(rule_id)
        if needs is None:  # asked for every claim: decide once per rule
            needs = self._gated[rule_id] = any(
                rule_id.startswith(gate[:-1]) if gate.endswith("*") else rule_id == gate
                for gate in self.gated_rules
            )
        return needs


class _Vocabulary:
    """One language's terms as one alternation, longest first; Latin terms are whole words.

    A text is searched with the alternation of only the terms it contains (found in one pass of
    an automaton): the same matches, at a fraction of the cost of trying every term everywhere.
    """

    def __init__(self, terms: list[str]) -> None:
        bodies = {}
        for term in sorted({t.lower() for t in terms}, key=len, reverse=True):
            body = re.escape(term)
            if term[:1].isascii() and term[:1].isalnum():
                body = r"\b" + body
            if term[-1:].isascii() and term[-1:].isalnum():
                body += r"\b"
            bodies[term] = body
        self.alternation = TermAlternation(bodies)
        self._finder = TermFinder(bodies)

    def matches(self, lowered: str) -> Iterator[re.Match[str]]:
        """What ``finditer`` of the whole alternation yields over `lowered`."""
        present = self._finder.present(lowered)
        if not present:
            return iter(())
        return self.alternation.for_terms(frozenset(present)).finditer(lowered)


def load_medical_context(rules_dir: Path) -> MedicalContext | None:
    """Read `context.yaml` from the rules folder; None when the folder has none (no gate)."""
    path = rules_dir / CONTEXT_FILE
    if not path.exists():
        return None
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("medical"), dict):
        raise ConfigError(f"{path}: expected a mapping with medical: {{en: [...], ...}}")
    unknown = sorted(set(data) - {"medical", "sentence_only", "gated_rules", "page_minimum"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (check the spelling)")
    medical = _language_terms(path, "medical", data["medical"])
    extra = _language_terms(path, "sentence_only", data.get("sentence_only") or {})
    terms = {lang: _Vocabulary(words) for lang, words in medical.items()}
    sentence_terms = {
        lang: _Vocabulary(words + extra.get(lang, [])) for lang, words in medical.items()
    }
    gated = data.get("gated_rules") or []
    if not isinstance(gated, list) or not all(isinstance(g, str) and g for g in gated):
        raise ConfigError(f"{path}: gated_rules: a list of rule ids (or prefixes ending in *)")
    minimum = data.get("page_minimum", 3)
    if not isinstance(minimum, int) or minimum < 1:
        raise ConfigError(f"{path}: page_minimum: a whole number ≥ 1 is required")
    return MedicalContext(terms, sentence_terms, tuple(gated), minimum)


def _language_terms(path: Path, section: str, data: Any) -> dict[str, list[str]]:
    """``{lang: [terms]}`` with every language known and every value a list of strings."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {section}: a mapping of language → list of terms is required")
    for lang, words in data.items():
        if lang not in LANGUAGES:
            raise ConfigError(f"{path}: {section}.{lang}: unknown language (known: en, ja, zh)")
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise ConfigError(f"{path}: {section}.{lang}: a list of non-empty terms is required")
    return {str(lang): list(words) for lang, words in data.items()}
