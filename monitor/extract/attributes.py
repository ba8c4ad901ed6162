"""Attributes of a claim: conditions, interventions, figures, and what a registry claim invokes.

The lexicons live in config/rules/attributes.yaml (multilingual term → normalised name); figures
(percentages, patient counts, prices with currency) are recognised by fixed patterns here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config import ConfigError
from monitor.extract.fast import TermAlternation, WordTermFinder
from monitor.extract.rules import read_yaml

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_PERCENT = re.compile(
    rf"(?:({_NUMBER})\s*(?:[-–~〜～]|to)\s*)?({_NUMBER})\s*(?:%|percent\b|per cent\b|パーセント)",
    re.I,
)
_PERCENT_ZH = re.compile(rf"百分之\s*({_NUMBER})")
_COUNT = re.compile(
    rf"({_NUMBER})\s*(\+)?\s*(patients|cases|people|clients|treatments|procedures|"
    r"例|名|人|症例|件|位患者)",
    re.I,
)
_CURRENCY_BEFORE = {
    "us$": "USD", "usd": "USD", "$": "USD", "€": "EUR", "eur": "EUR", "£": "GBP", "gbp": "GBP",
    "¥": "JPY", "jpy": "JPY", "rmb": "CNY", "cny": "CNY", "nt$": "TWD", "hk$": "HKD",
    "mxn": "MXN", "aed": "AED", "krw": "KRW", "₩": "KRW", "s$": "SGD", "thb": "THB",
}  # fmt: skip
_CURRENCY_AFTER = {
    "万円": ("JPY", 10_000), "円": ("JPY", 1), "万元": ("CNY", 10_000), "元": ("CNY", 1),
    "美元": ("USD", 1), "ドル": ("USD", 1), "dollars": ("USD", 1), "usd": ("USD", 1),
    "euros": ("EUR", 1), "eur": ("EUR", 1), "pesos": ("MXN", 1), "mxn": ("MXN", 1),
    "aed": ("AED", 1), "dirhams": ("AED", 1), "万日元": ("JPY", 10_000), "日元": ("JPY", 1),
    "万日圓": ("JPY", 10_000), "萬元": ("CNY", 10_000), "新台幣": ("TWD", 1), "won": ("KRW", 1),
    "원": ("KRW", 1), "万ウォン": ("KRW", 10_000),
}  # fmt: skip


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_PRICE_BEFORE = re.compile(rf"({_alternation(list(_CURRENCY_BEFORE))})\s?({_NUMBER})", re.I)
_PRICE_AFTER = re.compile(rf"({_NUMBER})\s?({_alternation(list(_CURRENCY_AFTER))})(?![a-z])", re.I)


@dataclass
class Lexicon:
    """Terms in any language, each mapped to one normalised name; `terms` is the alternation
    that finds them (term → its regex body, longest first)."""

    names: dict[str, str]
    terms: TermAlternation
    finder: WordTermFinder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.finder = WordTermFinder(self.names)

    @property
    def pattern(self) -> re.Pattern[str]:
        """The alternation of every term."""
        return self.terms.pattern

    def find(self, text: str) -> tuple[str, ...]:
        """The normalised names named in `text`, in order of first mention, without repeats."""
        lowered = text.lower()
        # Most sentences name nothing; one pass of an automaton, with the pattern's word
        # boundaries, is far cheaper than the regex (and than testing each term in turn).
        present = self.finder.present(lowered)
        if not present:
            return ()
        found: dict[str, None] = {}
        for match in self.terms.for_terms(present).finditer(lowered):
            found[self.names[match.group(0)]] = None
        return tuple(found)


def _lexicon(path: Path, section: str, entries: Any) -> Lexicon:
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: {section}: a mapping of name → list of terms is required")
    names: dict[str, str] = {}
    for name, terms in entries.items():
        if not isinstance(terms, list) or not all(isinstance(t, str) and t for t in terms):
            raise ConfigError(f"{path}: {section}.{name}: a list of terms is required")
        for term in terms:
            names[term.lower()] = str(name)
    bodies = {}
    for term in sorted(names, key=len, reverse=True):
        body = re.escape(term)
        # Latin terms match whole Latin words; "\b" would fail in 「ALSの患者」, where kana count
        # as word characters, so the boundary is "no Latin letter or digit" instead.
        if term[:1].isascii() and term[:1].isalnum():
            body = r"(?<![a-z0-9])" + body
        if term[-1:].isascii() and term[-1:].isalnum():
            body += r"(?![a-z0-9])"
        bodies[term] = body
    # Matched against lower-cased text: IGNORECASE would make every search several times slower.
    return Lexicon(names, TermAlternation(bodies))


@dataclass
class AttributeFinder:
    """Finds every attribute of a claim sentence."""

    conditions: Lexicon
    interventions: Lexicon
    authorities: Lexicon
    identifiers: dict[str, re.Pattern[str]]

    def figures(self, text: str) -> tuple[dict[str, Any], ...]:
        """Percentages, counts and prices named in `text`."""
        return tuple(_percentages(text) + _counts(text) + _prices(text))

    def registry(self, text: str) -> dict[str, Any]:
        """Authorities and identifiers (plan numbers, NCT ids, …) that a sentence invokes."""
        found: dict[str, Any] = {}
        authorities = self.authorities.find(text)
        if authorities:
            found["authorities"] = list(authorities)
        for name, pattern in self.identifiers.items():
            values = list(dict.fromkeys(m.group(0) for m in pattern.finditer(text)))
            if values:
                found[name] = values
        return found


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _percentages(text: str) -> list[dict[str, Any]]:
    found = []
    for m in _PERCENT.finditer(text):
        figure: dict[str, Any] = {
            "kind": "percent",
            "value": _number(m.group(2)),
            "text": m.group(0),
        }
        if m.group(1):
            figure["low"] = _number(m.group(1))
        found.append(figure)
    for m in _PERCENT_ZH.finditer(text):
        found.append({"kind": "percent", "value": _number(m.group(1)), "text": m.group(0)})
    return found


def _counts(text: str) -> list[dict[str, Any]]:
    return [
        {
            "kind": "count",
            "value": _number(m.group(1)),
            "unit": m.group(3).lower(),
            "text": m.group(0),
        }
        for m in _COUNT.finditer(text)
    ]


def _prices(text: str) -> list[dict[str, Any]]:
    found = []
    for m in _PRICE_BEFORE.finditer(text):
        currency = _CURRENCY_BEFORE[m.group(1).lower()]
        found.append(_price(m.group(0), _number(m.group(2)), currency))
    for m in _PRICE_AFTER.finditer(text):
        currency, scale = _CURRENCY_AFTER[m.group(2).lower()]
        found.append(_price(m.group(0), _number(m.group(1)) * scale, currency))
    return found


def _price(text: str, amount: float, currency: str) -> dict[str, Any]:
    return {"kind": "price", "amount": amount, "currency": currency, "text": text}


def load_attribute_finder(path: Path) -> AttributeFinder:
    """Read config/rules/attributes.yaml."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with conditions, interventions, authorities")
    identifiers = {}
    for name, pattern in (data.get("identifiers") or {}).items():
        try:
            identifiers[str(name)] = re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(
                f"{path}: identifiers.{name}: invalid regular expression: {exc}"
            ) from None
    return AttributeFinder(
        conditions=_lexicon(path, "conditions", data.get("conditions")),
        interventions=_lexicon(path, "interventions", data.get("interventions")),
        authorities=_lexicon(path, "authorities", data.get("authorities")),
        identifiers=identifiers,
    )
