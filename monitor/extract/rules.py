"""Rule files: config/rules/<lang>.yaml and attributes.yaml, validated and compiled once.

A rule file says, for one language: the anchor words that gate the (slower) rules, the hedge cues,
the negation cues, the exclusions that drop text not in the publisher's voice, and the rules
themselves. Every problem is one `ConfigError` naming the file and the rule, e.g.
``config/rules/ja.yaml: rule ja.registry.mhlw_filed: unknown matcher 'regexp' (known: lexicon, near, regex)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError, describe_error
from monitor.extract.fast import LiteralIndex, TermFinder
from monitor.extract.matchers import Matcher, MatcherError, build_matcher

# Bump the release when the extractor's code changes what the same rules find.
RULES_RELEASE = "2026.11.1"
LANGUAGES = ("en", "ja", "zh")
DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExampleSpec(_Strict):
    """A sentence the rule must (``expect: <category>``) or must not (``expect: null``) find."""

    text: str = Field(min_length=1)
    expect: str | None


class RuleSpec(_Strict):
    """One rule as written in the file."""

    id: str = Field(pattern=r"^[a-z]{2}\.[a-z0-9_.]+$")
    category: str
    match: dict[str, Any]
    unless: dict[str, Any] | None = None
    confidence: float = Field(default=0.85, gt=0, le=1)
    negatable: bool = True
    attributes: dict[str, Any] = {}
    examples: list[ExampleSpec] = Field(min_length=2)

    @field_validator("category")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown category {value!r} (known: {', '.join(CATEGORIES)})")
        return value


class ExclusionSpec(_Strict):
    """Text that is not the publisher's claim: reported speech, disclaimers, the law explained."""

    id: str
    applies_to: list[str] = ["*"]
    match: dict[str, Any]
    unless: dict[str, Any] | None = None


class NegationSpec(_Strict):
    """Cues that negate a trigger when found just before (or, in Japanese, just after) it."""

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    window: int = Field(default=40, ge=1, le=200)


class LanguageFileSpec(_Strict):
    """A whole config/rules/<lang>.yaml."""

    lang: str
    anchors: list[str] = Field(min_length=1)
    hedges: dict[str, Any]
    negation: NegationSpec = NegationSpec()
    exclusions: list[ExclusionSpec] = []
    rules: list[RuleSpec]


@dataclass
class Rule:
    """A compiled rule."""

    id: str
    category: str
    matcher: Matcher
    unless: Matcher | None
    confidence: float
    negatable: bool
    attributes: dict[str, Any]
    examples: list[ExampleSpec]


@dataclass
class Exclusion:
    """A compiled exclusion; `categories` is None for all categories."""

    id: str
    categories: frozenset[str] | None
    matcher: Matcher
    unless: Matcher | None

    def applies(self, category: str) -> bool:
        """Whether this exclusion can drop a claim of `category`."""
        return self.categories is None or category in self.categories


@dataclass
class LanguageRules:
    """Everything the extractor needs for one language."""

    lang: str
    anchors: tuple[str, ...]
    hedges: Matcher
    negation_before: Matcher | None
    negation_after: Matcher | None
    negation_window: int
    exclusions: list[Exclusion]
    rules: list[Rule]
    path: Path = field(default_factory=Path)
    _anchor_finder: TermFinder | None = field(default=None, repr=False, compare=False)
    _index: LiteralIndex | None = field(default=None, repr=False, compare=False)
    # Rule positions by literal-index key, and those of rules without a key (always candidates).
    _positions_by_key: dict[int, list[int]] | None = field(default=None, repr=False, compare=False)
    _unindexed: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def rules_for(self, sentence: str) -> list[Rule]:
        """The rules, in file order, whose matcher can match `sentence` (lower-cased): the
        others lack every literal their pattern requires. Same claims, far fewer searches."""
        if self._index is None:
            return self.rules
        if self._positions_by_key is None:
            self._group_rules_by_key()
        present = self._index.keys_in(sentence)
        by_key = self._positions_by_key or {}
        # A rule searched branch by branch has a key per branch: count its position once.
        positions = {p for key in present for p in by_key.get(key, ())}
        if not positions:
            return [self.rules[p] for p in self._unindexed]
        return [self.rules[p] for p in sorted(positions.union(self._unindexed))]

    def _group_rules_by_key(self) -> None:
        by_key: dict[int, list[int]] = {}
        unindexed = []
        for position, rule in enumerate(self.rules):
            keys = rule.matcher.index_keys
            if not keys:
                unindexed.append(position)
            for key in keys:
                by_key.setdefault(key, []).append(position)
        self._positions_by_key, self._unindexed = by_key, tuple(unindexed)

    def anchors_in(self, text: str) -> list[str]:
        """The anchors that occur in `text` (lower-cased), in file order; one pass over `text`
        however many anchors the file has, where testing each anchor in turn makes one each."""
        if self._anchor_finder is None:
            self._anchor_finder = TermFinder(self.anchors)
        return self._anchor_finder.present(text)


def rules_version(rules_dir: Path, extra_files: tuple[Path, ...] = ()) -> str:
    """``<release>+<8 hex>``: the hash covers every rule file and `extra_files` (the model)."""
    digest = hashlib.sha256()
    for path in (*sorted(rules_dir.glob("*.yaml")), *extra_files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"{RULES_RELEASE}+{digest.hexdigest()[:8]}"


def read_yaml(path: Path) -> Any:
    """A YAML file's data; unreadable or invalid files become `ConfigError`."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: rule file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}invalid YAML: {getattr(exc, 'problem', exc)}") from None


def load_language(path: Path) -> LanguageRules:
    """Validate and compile one language's rule file."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a rule file is a mapping with lang, anchors, hedges, rules")
    _check_rule_ids(path, data.get("rules"))
    try:
        spec = LanguageFileSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, data, exc)) from None
    anchors = tuple(a.lower() for a in spec.anchors)
    rules = [_compile_rule(path, rule, anchors) for rule in spec.rules]
    _check_unique(path, [r.id for r in rules])
    language = LanguageRules(
        lang=spec.lang,
        anchors=anchors,
        hedges=_compile(path, "hedges", spec.hedges),
        negation_before=_compile_optional(path, "negation.before", spec.negation.before),
        negation_after=_compile_optional(path, "negation.after", spec.negation.after),
        negation_window=spec.negation.window,
        exclusions=[_compile_exclusion(path, e) for e in spec.exclusions],
        rules=rules,
        path=path,
    )
    _index_sentence_matchers(language)
    return language


def _index_sentence_matchers(language: LanguageRules) -> None:
    """One literal index for the matchers that all run on the same whole sentence.

    Negation matchers are left out: they run on a short window around each trigger, a new
    text every time, where their own literal test is cheaper than a pass of the automaton.
    """
    index = LiteralIndex()
    matchers = [language.hedges]
    for item in [*language.rules, *language.exclusions]:
        matchers += [item.matcher] if item.unless is None else [item.matcher, item.unless]
    for matcher in matchers:
        matcher.use_index(index)
    language._index = index


def _check_rule_ids(path: Path, rules: Any) -> None:
    if not isinstance(rules, list):
        raise ConfigError(f"{path}: rules: a list of rules is required")
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("id"), str):
            raise ConfigError(f"{path}: rules[{i}]: every rule needs an id")


_SPEC_KEYS = sorted(
    {
        name
        for spec in (ExampleSpec, RuleSpec, ExclusionSpec, NegationSpec, LanguageFileSpec)
        for name in spec.model_fields
    }
)


def _describe(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rule_id = data["rules"][loc[1]]["id"]
            where = f"rule {rule_id}: " + ".".join(str(p) for p in loc[2:])
        lines.append(f"{path}: {where.rstrip(': ')}: {describe_error(error, _SPEC_KEYS)}")
    return "\n".join(lines)


def _compile(path: Path, where: str, spec: dict[str, Any]) -> Matcher:
    try:
        return build_matcher(spec)
    except MatcherError as exc:
        raise ConfigError(f"{path}: {where}: {exc}") from None


def _compile_optional(path: Path, where: str, spec: dict[str, Any] | None) -> Matcher | None:
    return None if spec is None else _compile(path, where, spec)


def _compile_rule(path: Path, spec: RuleSpec, anchors: tuple[str, ...]) -> Rule:
    where = f"rule {spec.id}"
    for example in spec.examples:
        if example.expect not in (None, spec.category):
            raise ConfigError(
                f"{path}: {where}: example expects {example.expect!r}; "
                f"use the rule's category {spec.category!r} or null"
            )
        lowered = example.text.lower()
        if example.expect and not any(a in lowered for a in anchors):
            raise ConfigError(
                f"{path}: {where}: example {example.text!r} contains none of the file's anchors; "
                "add its key word to anchors (rules only run on sentences with an anchor)"
            )
    if not any(e.expect for e in spec.examples) or all(e.expect for e in spec.examples):
        raise ConfigError(f"{path}: {where}: give at least one positive and one null example")
    return Rule(
        id=spec.id,
        category=spec.category,
        matcher=_compile(path, where, spec.match),
        unless=_compile_optional(path, f"{where}: unless", spec.unless),
        confidence=spec.confidence,
        negatable=spec.negatable,
        attributes=spec.attributes,
        examples=spec.examples,
    )


def _compile_exclusion(path: Path, spec: ExclusionSpec) -> Exclusion:
    where = f"exclusion {spec.id}"
    unknown = [c for c in spec.applies_to if c != "*" and c not in CATEGORIES]
    if unknown:
        raise ConfigError(f"{path}: {where}: unknown category {unknown[0]!r}")
    categories = None if "*" in spec.applies_to else frozenset(spec.applies_to)
    return Exclusion(
        id=spec.id,
        categories=categories,
        matcher=_compile(path, where, spec.match),
        unless=_compile_optional(path, f"{where}: unless", spec.unless),
    )


def _check_unique(path: Path, ids: list[str]) -> None:
    seen: set[str] = set()
    for rule_id in ids:
        if rule_id in seen:
            raise ConfigError(f"{path}: rule {rule_id}: the id is used twice")
        seen.add(rule_id)


def load_rules(rules_dir: Path) -> dict[str, LanguageRules]:
    """Every language file present in `rules_dir` (en.yaml, ja.yaml, zh.yaml)."""
    if not rules_dir.is_dir():
        raise ConfigError(f"{rules_dir}: rules folder not found")
    found = {lang: rules_dir / f"{lang}.yaml" for lang in LANGUAGES}
    loaded = {lang: load_language(p) for lang, p in found.items() if p.exists()}
    if not loaded:
        raise ConfigError(f"{rules_dir}: no rule files (expected en.yaml, ja.yaml, zh.yaml)")
    return loaded
