"""Matchers: the small pattern kinds a rule file may use (``lexicon``, ``near``, ``regex``).

Each kind is a subclass that registers itself by its `kind`, the way urlwatch filters do; its
`Params` model (``extra="forbid"``) declares what the rule file may say, so a typo is an error.
Every matcher compiles to one regular expression once, and matches lower-cased sentences.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.extract.branches import BranchSearch, top_level_branches
from monitor.extract.fast import (
    MAX_INDEXED_LITERALS,
    LiteralIndex,
    further_required_literals,
    prefilter,
    required_literals,
    unbounded_nesting,
)


class MatcherError(ValueError):
    """A matcher spec that cannot be compiled; the rule loader adds the file and rule id."""


class Matcher:
    """Base class: finds the trigger span of a rule in a sentence."""

    kinds: ClassVar[dict[str, type[Matcher]]] = {}
    kind: ClassVar[str]
    # The parameter a bare value stands for: `{regex: "..."}` means `{regex: {pattern: "..."}}`.
    shorthand: ClassVar[str]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Matcher.kinds[cls.kind] = cls

    def __init__(self, params: BaseModel) -> None:
        self.params = params
        source = self.build_pattern()
        try:
            self.pattern = re.compile(source)
        except re.error as exc:
            raise MatcherError(f"invalid regular expression: {exc}") from None
        if unbounded_nesting(source):
            raise MatcherError(
                f"pattern {source!r} repeats an unbounded quantifier inside another "
                "(like '(\\w+ )+'), which can take exponential time; bound one of them, "
                "e.g. '{0,40}'"
            )
        # Strings a match must contain: most sentences lack them, and `in` is far cheaper.
        self.literals = required_literals(source)
        self._may_match = prefilter(self.literals)
        self._index: LiteralIndex | None = None
        self._index_key = -1
        self._further_keys: frozenset[int] = frozenset()
        self._index_keys: tuple[int, ...] = ()
        self._branches: BranchSearch | None = None

    def use_index(self, index: LiteralIndex) -> None:
        """Let `index` decide, in its one pass over a sentence, whether this matcher can match
        and, for an alternation, which of its branches can."""
        branches = top_level_branches(self.pattern.pattern)
        if branches is not None:
            self._use_index_per_branch(index, branches)
            return
        keys = _index_keys(index, self.pattern.pattern)
        if keys is not None:
            self._index, (self._index_key, *further) = index, keys
            self._further_keys = frozenset(further)
            self._index_keys = (self._index_key,)

    def _use_index_per_branch(self, index: LiteralIndex, branches: tuple[str, ...]) -> None:
        keys = tuple(_index_keys(index, branch) for branch in branches)
        self._index, self._branches = index, BranchSearch(self.pattern, branches, keys)
        # A branch that needs no literal makes the matcher possible in any sentence.
        self._index_keys = () if None in keys else tuple(k[0] for k in keys if k is not None)

    def build_pattern(self) -> str:
        """The regular expression this matcher stands for."""
        raise NotImplementedError

    @property
    def index_keys(self) -> tuple[int, ...]:
        """Keys in the literal index of which a sentence must hold one for this matcher to
        match; empty when the matcher may match any sentence."""
        return self._index_keys

    def search(self, text: str) -> re.Match[str] | None:
        """The first trigger in `text`, or None."""
        index = self._index
        if index is not None:
            if self._branches is not None:
                return self._branches.search(text, index.keys_in(text))
            present = index.keys_in(text)
            if self._index_key not in present or not self._further_keys <= present:
                return None
        elif self._may_match is not None and not self._may_match(text):
            return None
        return self.pattern.search(text)

    @classmethod
    def documentation(cls) -> str:
        """``kind - docstring`` for every registered kind (for docs and error messages)."""
        return "\n".join(f"{k} - {m.__doc__}" for k, m in sorted(cls.kinds.items()))


def _index_keys(index: LiteralIndex, pattern: str) -> tuple[int, ...] | None:
    """Keys in `index` that must all be present for `pattern` to match: its required literals'
    first, then those of its other parts that need a rare literal; None when none is required."""
    literals = required_literals(pattern, limit=MAX_INDEXED_LITERALS)
    if literals is None:
        return None
    further = further_required_literals(pattern, limit=MAX_INDEXED_LITERALS)
    return (index.add(literals), *(index.add(more) for more in further))


def _terms_pattern(terms: list[str]) -> str:
    """An alternation of literal terms, longest first; ASCII words get word boundaries."""
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        body = re.escape(term.lower())
        if term[:1].isascii() and term[:1].isalnum():
            body = r"\b" + body
        if term[-1:].isascii() and term[-1:].isalnum():
            body += r"\b"
        parts.append(body)
    return "(?:" + "|".join(parts) + ")"


def _part_pattern(part: str | list[str]) -> str:
    """A `near` side: a list is a lexicon, a string a regular expression."""
    return _terms_pattern(part) if isinstance(part, list) else f"(?:{part})"


class LexiconMatcher(Matcher):
    """Any of a list of literal terms (case-insensitive; whole words for Latin script)."""

    kind = "lexicon"
    shorthand = "terms"

    class Params(Matcher.Params):
        terms: list[str] = Field(min_length=1)

        @field_validator("terms")
        @classmethod
        def _no_empty(cls, value: list[str]) -> list[str]:
            if any(not t.strip() for t in value):
                raise ValueError("terms must not be empty strings")
            return value

    def build_pattern(self) -> str:
        return _terms_pattern(self.params.terms)


class RegexMatcher(Matcher):
    """A regular expression (Python syntax) over the lower-cased sentence."""

    kind = "regex"
    shorthand = "pattern"

    class Params(Matcher.Params):
        pattern: str = Field(min_length=1)

    def build_pattern(self) -> str:
        return self.params.pattern


class NearMatcher(Matcher):
    """Two parts (lexicon lists or regexes) at most `within` characters apart, in either order
    unless `ordered` is true; the trigger spans both."""

    kind = "near"
    shorthand = "a"

    class Params(Matcher.Params):
        a: str | list[str]
        b: str | list[str]
        within: int = Field(default=40, ge=0, le=200)
        ordered: bool = False

    def build_pattern(self) -> str:
        a, b = _part_pattern(self.params.a), _part_pattern(self.params.b)
        gap = f".{{0,{self.params.within}}}?"
        forward = f"{a}{gap}{b}"
        return forward if self.params.ordered else f"{forward}|{b}{gap}{a}"


def build_matcher(spec: Any) -> Matcher:
    """Compile ``{kind: params}`` (params a mapping, or the kind's shorthand value)."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise MatcherError(
            f"a matcher is a mapping with one key, its kind (known: {', '.join(sorted(Matcher.kinds))})"
        )
    ((kind, value),) = spec.items()
    cls = Matcher.kinds.get(kind)
    if cls is None:
        raise MatcherError(f"unknown matcher {kind!r} (known: {', '.join(sorted(Matcher.kinds))})")
    if not isinstance(value, dict):
        value = {cls.shorthand: value}
    try:
        params = cls.Params.model_validate(value)
    except Exception as exc:  # pydantic's ValidationError, reworded for the rule author
        raise MatcherError(f"{kind}: {_first_error(exc)}") from None
    return cls(params)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    first = errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown parameter (check the spelling)"
    return f"{where}: {first['msg']}"
