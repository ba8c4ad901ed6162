"""What a rule's regular expression needs before it can match, and whether it can blow up.

Both answers come from the pattern's parse tree (``re._parser``, the parser `re.compile` itself
uses), so they hold for whatever rules the files contain, not just today's:

- `required_literals(pattern)`: strings one of which every match must contain. A sentence that
  contains none of them cannot match, and a substring test is far cheaper than a regex search.
- `LiteralIndex`: the required literals of all of a language's matchers in one Aho-Corasick
  automaton; one pass over a sentence tells which matchers can match it at all, so the rules that
  cannot are skipped without a regex search.
- `TermFinder`: the same one-pass search for a plain list of terms (a language's anchors).
- `WordTermFinder`: the same, for lexicon terms that must stand as whole Latin words.
- `unbounded_nesting(pattern)`: whether an unbounded quantifier (``*``, ``+``, ``{n,}``) repeats
  something that itself holds one, like ``(\\w+\\s?)+``: such patterns backtrack exponentially
  on a near miss, so the rule loader rejects them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from operator import itemgetter

# The parser is private, but it is the one the `re` module ships and compiles with; any change in
# its shape makes the analysis give up (no prefilter), never give a wrong answer.
from re import _constants as sre
from re import _parser as sre_parse

import ahocorasick

# Above this many alternatives a literal set costs more to test one by one than the regex it
# guards; an automaton tests any number at once, so an indexed matcher may need many more.
MAX_TESTED_LITERALS = 24
MAX_INDEXED_LITERALS = 2000
# Combinations kept while following literal runs through classes and optional parts ("[sd]?").
_MAX_LITERALS = 24
# Literal sets up to this size are freed of redundant members (a quadratic check, done at load).
_MAX_REDUCED = 400
_UNBOUNDED = sre.MAXREPEAT
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)

Prefilter = Callable[[str], bool]
_second = itemgetter(1)
_Items = Iterable[tuple[object, object]]


def required_literals(pattern: str, limit: int = MAX_TESTED_LITERALS) -> tuple[str, ...] | None:
    """Strings of which every match of `pattern` contains at least one, or None if unknown.

    Example: ``required_literals(r"\\b(cure[sd]?|heal)\\b")`` → ``('cure', 'heal')``.
    Case-insensitive patterns give None: a literal test would miss other casings.
    """
    try:
        parsed = sre_parse.parse(pattern)
        if parsed.state.flags & re.IGNORECASE:
            return None
        found = _required(list(parsed))
    except (re.error, ValueError, TypeError, AttributeError, RecursionError):
        return None
    if not found or "" in found or len(found) > limit:
        return None
    return _as_tuple(found)


def _as_tuple(found: set[str]) -> tuple[str, ...]:
    """A literal set as a tuple, longest first, without literals that contain another."""
    if len(found) <= _MAX_REDUCED:
        # A literal containing another is redundant: a text with "cured" has "cure" too.
        found = {s for s in found if not any(o != s and o in s for o in found)}
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def prefilter(literals: tuple[str, ...] | None) -> Prefilter | None:
    """A fast test that is False only when `text` holds none of `literals` (None: no test)."""
    if not literals:
        return None
    if len(literals) == 1:
        (only,) = literals
        return lambda text: only in text
    return lambda text: any(literal in text for literal in literals)


class LiteralIndex:
    """Which matchers (by the key `add` gave them) have a required literal in a text.

    The rules of a language run one after another on the same sentence object, so the answer
    for the last text is kept and reused while the caller asks about that very object.
    """

    def __init__(self) -> None:
        self._keys_by_literal: dict[str, list[int]] = {}
        self._count = 0
        self._automaton: ahocorasick.Automaton | None = None
        self._last: tuple[str | None, frozenset[int]] = (None, frozenset())

    def add(self, literals: tuple[str, ...]) -> int:
        """Register one matcher's literals; returns its key. Call before the first lookup."""
        key = self._count
        self._count += 1
        for literal in literals:
            self._keys_by_literal.setdefault(literal, []).append(key)
        self._automaton = None
        self._last = (None, frozenset())
        return key

    def keys_in(self, text: str) -> frozenset[int]:
        """Keys of the matchers with at least one of their literals in `text`."""
        last_text, last_keys = self._last
        if text is last_text:
            return last_keys
        automaton = self._automaton or self._build()
        # All in C: the automaton yields (end, keys) per hit, and a sentence has many hits.
        keys = frozenset(chain.from_iterable(map(_second, automaton.iter(text))))
        self._last = (text, keys)
        return keys

    def _build(self) -> ahocorasick.Automaton:
        automaton = ahocorasick.Automaton()
        for literal, keys in self._keys_by_literal.items():
            automaton.add_word(literal, tuple(keys))
        automaton.make_automaton()
        self._automaton = automaton
        return automaton


class TermFinder:
    """Which of a fixed list of terms occur in a text, found in one pass however many there are.

    `present(text)` equals ``[t for t in terms if t in text]``, repeats and order included.
    Example: ``TermFinder(["heal", "fda", "cur"]).present("fda-registered cures")`` →
    ``["fda", "cur"]``.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = tuple(terms)
        # The empty string is in every text; the automaton cannot hold it.
        self._always = tuple(i for i, term in enumerate(self.terms) if not term)
        positions: dict[str, list[int]] = {}
        for position, term in enumerate(self.terms):
            if term:
                positions.setdefault(term, []).append(position)
        self._automaton = ahocorasick.Automaton()
        for term, where in positions.items():
            self._automaton.add_word(term, tuple(where))
        if positions:
            self._automaton.make_automaton()

    def occurs_in(self, text: str) -> bool:
        """Whether any of the terms occurs in `text` (stops at the first one found)."""
        if self._always:
            return True
        return bool(self.terms) and next(self._automaton.iter(text), None) is not None

    def present(self, text: str) -> list[str]:
        """The terms found in `text`, in the order (and with the repeats) they were given."""
        found = set(self._always)
        if len(self.terms) > len(self._always):
            for _, where in self._automaton.iter(text):
                found.update(where)
        return [self.terms[position] for position in sorted(found)]


class TermAlternation:
    """An alternation of terms (each term's own regex body, in order) that compiles, for the set
    of terms a text contains, the alternation of just those: the same matches, since a term
    absent from a text matches nowhere in it, and far fewer alternatives tried per position.

    Example: ``TermAlternation({"cure": r"\\bcure\\b", "heal": "heal"}).for_terms({"heal"})``
    is the pattern ``heal``.
    """

    def __init__(self, bodies: dict[str, str], limit: int = 1024) -> None:
        self.bodies = dict(bodies)
        self.pattern = re.compile("|".join(self.bodies.values()))
        self._limit = limit  # distinct term sets compiled; past it the whole pattern is used
        self._patterns: dict[frozenset[str], re.Pattern[str]] = {}

    def for_terms(self, present: frozenset[str]) -> re.Pattern[str]:
        """The pattern to search a text that contains (at most) the terms `present`."""
        pattern = self._patterns.get(present)
        if pattern is None:
            if len(self._patterns) >= self._limit:
                return self.pattern
            chosen = [body for term, body in self.bodies.items() if term in present]
            pattern = self._patterns[present] = re.compile("|".join(chosen))
        return pattern


class WordTermFinder:
    """Whether a lower-cased text has a term where a lexicon pattern could match it: a term that
    starts (ends) with an ASCII letter or digit must not have one just before (after) it.

    This is the boundary `attributes.Lexicon` puts around Latin terms, so a False here means the
    lexicon's regex cannot match; "ed" inside "improved" no longer counts, as it did for ``in``.
    Example: ``WordTermFinder(["ed", "als"]).occurs_in("improved")`` → False.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        for term in set(terms):
            if term:
                bounded_start = term[0].isascii() and term[0].isalnum()
                bounded_end = term[-1].isascii() and term[-1].isalnum()
                self._automaton.add_word(term, (term, bounded_start, bounded_end))
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def occurs_in(self, text: str) -> bool:
        """Whether a term occurs in `text` with the boundaries its pattern asks for."""
        return next(self._bounded(text), None) is not None

    def present(self, text: str) -> frozenset[str]:
        """The terms that occur in `text` with the boundaries their patterns ask for."""
        return frozenset(self._bounded(text))

    def _bounded(self, text: str) -> Iterator[str]:
        if self._empty:
            return
        for end, (term, bounded_start, bounded_end) in self._automaton.iter(text):
            start = end - len(term) + 1
            if bounded_start and start > 0 and text[start - 1] in _ASCII_ALNUM:
                continue
            if bounded_end and end + 1 < len(text) and text[end + 1] in _ASCII_ALNUM:
                continue
            yield term


_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def unbounded_nesting(pattern: str) -> bool:
    """Whether an unbounded quantifier repeats a sub-pattern that has an unbounded quantifier."""
    try:
        return _nests_unbounded(list(sre_parse.parse(pattern)), inside_unbounded=False)
    except (re.error, ValueError, TypeError, AttributeError, RecursionError):
        return False  # compiling the pattern reports the syntax error


def _nests_unbounded(items: _Items, inside_unbounded: bool) -> bool:
    for op, av in items:
        if op in _REPEATS:
            _, high, body = av
            unbounded = high == _UNBOUNDED
            if unbounded and inside_unbounded:
                return True
            if _nests_unbounded(body, inside_unbounded or unbounded):
                return True
        elif any(_nests_unbounded(sub, inside_unbounded) for sub in _children(op, av)):
            return True
    return False


def _children(op: object, av: object) -> list[_Items]:
    """The sub-sequences of a group, alternation, lookaround or conditional."""
    if op is sre.SUBPATTERN or op is sre.ATOMIC_GROUP:
        return [av[-1]] if op is sre.SUBPATTERN else [av]
    if op is sre.BRANCH:
        return list(av[1])
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return [av[1]]
    if op is sre.GROUPREF_EXISTS:
        return [branch for branch in av[1:] if branch is not None]
    return []


def further_required_literals(
    pattern: str, limit: int = MAX_INDEXED_LITERALS
) -> list[tuple[str, ...]]:
    """Other literal sets every match of `pattern` needs, besides `required_literals`: one per
    part of the pattern that needs its own literal ("$" and "treatment" in a price rule
    ``(\\$|€)\\d+.{0,80}?(treatment|session)``). Only sets of rare literals are given — several
    characters long, or a symbol such as "$" or "%" — since testing a common one rejects little.
    """
    try:
        parsed = sre_parse.parse(pattern)
        if parsed.state.flags & re.IGNORECASE:
            return []
        candidates = _candidates(list(parsed))
    except (re.error, ValueError, TypeError, AttributeError, RecursionError):
        return []
    if not candidates:
        return []
    best = max(candidates, key=_selectivity)
    found: list[tuple[str, ...]] = []
    for literals in candidates:
        if literals == best or len(literals) > limit:
            continue
        as_tuple = _as_tuple(literals)
        if all(map(_rare, as_tuple)) and as_tuple not in found:
            found.append(as_tuple)
    return found


def _rare(literal: str) -> bool:
    """A literal long enough, or a symbol uncommon enough, that most sentences lack it."""
    return len(literal) >= 3 or (len(literal) == 1 and literal not in _COMMON_CHARACTERS)


_COMMON_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789 \t\n.,;:!?-'\"()[]/&")


def _required(items: list[tuple[object, object]]) -> set[str] | None:
    """The best literal set a sequence requires: its longest literal runs, or a part's own set."""
    return max(_candidates(items), key=_selectivity, default=None)


def _candidates(items: list[tuple[object, object]]) -> list[set[str]]:
    """Literal sets a sequence requires, each on its own: its literal runs and its parts' sets."""
    candidates: list[set[str]] = []
    runs: set[str] = {""}
    for op, av in items:
        exact = _exact(op, av)
        if exact is not None and len(runs) * len(exact) <= _MAX_LITERALS:
            runs = {run + tail for run in runs for tail in exact}
            continue
        candidates.append(runs)
        if exact is not None:  # too many combinations: start a new run with this element
            runs = exact
            continue
        runs = {""}
        inner = _required_of(op, av)
        if inner is not None:
            candidates.append(inner)
    candidates.append(runs)
    return [c for c in candidates if "" not in c]


def _selectivity(literals: set[str]) -> tuple[int, int]:
    """Longer literals reject more sentences; fewer literals are cheaper to test."""
    return min(min(map(len, literals)), 3), -len(literals)


def _required_of(op: object, av: object) -> set[str] | None:
    """The literal set one non-literal element requires (None: it may match without one)."""
    if op is sre.SUBPATTERN:
        _, add_flags, _, body = av
        return None if add_flags & re.IGNORECASE else _required(list(body))
    if op is sre.ATOMIC_GROUP:
        return _required(list(av))
    if op in _REPEATS:
        low, _, body = av
        return _required(list(body)) if low >= 1 else None
    if op is sre.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            found = _required(list(branch))
            if found is None:
                return None
            union |= found
        return union
    return None


def _exact(op: object, av: object) -> set[str] | None:
    """Every string an element can match, when that is a small finite set of literals."""
    if op is sre.LITERAL:
        return {chr(av)}
    if op is sre.AT:
        return {""}  # zero width: the literals on either side stay adjacent
    if op is sre.IN:
        chars = [chr(value) for kind, value in av if kind is sre.LITERAL]
        return set(chars) if len(chars) == len(av) and len(chars) <= 8 else None
    if op is sre.SUBPATTERN:
        _, add_flags, _, body = av
        return None if add_flags & re.IGNORECASE else _exact_sequence(list(body))
    if op is sre.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            found = _exact_sequence(list(branch))
            if found is None:
                return None
            union |= found
        return union if len(union) <= _MAX_LITERALS else None
    if op is sre.MAX_REPEAT or op is sre.MIN_REPEAT:
        low, high, body = av
        found = _exact_sequence(list(body)) if (low, high) == (0, 1) else None
        return None if found is None else found | {""}
    return None


def _exact_sequence(items: list[tuple[object, object]]) -> set[str] | None:
    strings: set[str] = {""}
    for op, av in items:
        exact = _exact(op, av)
        if exact is None or len(strings) * len(exact) > _MAX_LITERALS:
            return None
        strings = {head + tail for head in strings for tail in exact}
    return strings
