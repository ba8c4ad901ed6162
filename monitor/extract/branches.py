"""Searching a rule's alternation with only the branches that can match the sentence.

Many rules are one long alternation (``\\bpatent(s|ed)?\\b|\\b(cnn|forbes)\\b|…``). Python's `re`
tries every branch at every position of the sentence, so such a rule costs tens of microseconds
per sentence even when nothing matches. Each branch has its own required literals
(`fast.required_literals`); a branch whose literals are all absent from the sentence cannot
match anywhere in it, so leaving it out of the alternation changes nothing: at every position the
remaining branches are tried in the same order and the same one wins. The search therefore runs
the alternation of the possible branches only, compiled once per distinct set of branches.

Example: ``top_level_branches(r"(?:\\bcure\\b|heal(s|ed))")`` → ``("\\bcure\\b", "heal(s|ed)")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from re import _parser as sre_parse

from monitor.extract.fast import MAX_INDEXED_LITERALS, required_literals

# Patterns whose splitting at "|" is not plain: global flags and verbose comments change how the
# source reads, a back-reference counts groups that other branches may hold.
_GLOBAL_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII | re.LOCALE
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
# What may stand before a group whose alternation is spread over the pattern: zero-width anchors.
_DETERMINISTIC_PREFIX = re.compile(r"(?:\\b|\^)*")
# Distinct branch sets compiled per pattern; past this the whole pattern is searched (same answer).
_MAX_COMPILED = 64


def top_level_branches(pattern: str) -> tuple[str, ...] | None:
    """The alternatives of `pattern` at its top level (or inside one ``(?:…)`` around all of it),
    or None when it has just one or cannot be split safely."""
    if "(?#" in pattern or _BACKREFERENCE.search(pattern):
        return None
    try:
        if sre_parse.parse(pattern).state.flags & _GLOBAL_FLAGS:
            return None
    except (re.error, ValueError, TypeError, AttributeError, RecursionError):
        return None
    parts = _split_top_level(pattern)
    if len(parts) == 1:
        parts = _distributed(pattern)
    if len(parts) < 2 or not all(_compiles(part) for part in parts):
        return None
    return tuple(parts)


def _distributed(pattern: str) -> list[str]:
    """``\b(a|b)\b`` as ``\b(?:a)\b``, ``\b(?:b)\b``: the alternation of the first group
    spread over its context, which tries the same branches in the same order at each position.

    That holds when what comes before the group can match in one way only (zero-width ``\\b``
    and ``^`` here) and the group is not repeated; otherwise the pattern stays whole. It is also
    left whole when the rest of the pattern needs a literal of its own: that literal already
    gates the whole pattern, and spreading would only add common words to the index.
    """
    opening = pattern.find("(")
    prefix = pattern[:opening]
    if opening < 0 or _DETERMINISTIC_PREFIX.fullmatch(prefix) is None:
        return [pattern]
    closing = _closing_paren(pattern, opening)
    suffix = pattern[closing + 1 :]
    if (
        closing < 0
        or suffix[:1] in ("*", "+", "?", "{")
        or required_literals(suffix, MAX_INDEXED_LITERALS)
    ):
        return [pattern]
    body = pattern[opening + 1 : closing]
    if body.startswith("?:"):
        body = body[2:]
    elif body.startswith("?"):  # lookaround, named group, inline flags: left alone
        return [pattern]
    inner = _split_top_level(body)
    if len(inner) < 2:
        return [pattern]
    return [f"{prefix}(?:{part}){suffix}" for part in inner]


def _structure(pattern: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(position, character, depth after it) for each "(", ")" and "|" of `pattern` that is
    syntax — not escaped, not inside a character class — from `start`."""
    depth, position = 0, start
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            position += 2
            continue
        if char == "[":
            position = _class_end(pattern, position)
            continue
        if char in "()|":
            depth += {"(": 1, ")": -1, "|": 0}[char]
            yield position, char, depth
        position += 1


def _split_top_level(pattern: str) -> list[str]:
    """`pattern` cut at every "|" outside parentheses, character classes and escapes."""
    parts, start = [], 0
    for position, char, depth in _structure(pattern):
        if char == "|" and depth == 0:
            parts.append(pattern[start:position])
            start = position + 1
    parts.append(pattern[start:])
    return parts


def _class_end(pattern: str, start: int) -> int:
    """The position after the character class opening at `start` (a "]" first is literal)."""
    position = start + 1
    if position < len(pattern) and pattern[position] == "^":
        position += 1
    if position < len(pattern) and pattern[position] == "]":
        position += 1
    while position < len(pattern) and pattern[position] != "]":
        position += 2 if pattern[position] == "\\" else 1
    return position + 1


def _closing_paren(pattern: str, opening: int) -> int:
    """The position of the ")" that closes the "(" at `opening` (-1 if none)."""
    for position, char, depth in _structure(pattern, opening):
        if char == ")" and depth == 0:
            return position
    return -1


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return bool(pattern)


class BranchSearch:
    """Searches `pattern`, an alternation of `branches`, with only the branches whose literal-index
    keys are all among the keys present in the text (keys None: the branch is always possible)."""

    def __init__(
        self,
        pattern: re.Pattern[str],
        branches: tuple[str, ...],
        keys: tuple[tuple[int, ...] | None, ...],
    ) -> None:
        self.pattern = pattern
        self.branches = branches
        self._always = tuple(i for i, key in enumerate(keys) if key is None)
        self._positions: dict[int, list[int]] = {}  # by each branch's first key
        self._further: list[frozenset[int]] = []  # the other keys each branch needs
        for position, branch_keys in enumerate(keys):
            first, *further = branch_keys or (None,)
            if first is not None:
                self._positions.setdefault(first, []).append(position)
            self._further.append(frozenset(further))
        self._keys = frozenset(self._positions)
        # Every key any branch needs: which of them a text holds decides the search.
        self._relevant = self._keys.union(*self._further)
        self._compiled: dict[tuple[int, ...], re.Pattern[str]] = {}
        # Relevant keys present → the pattern to search (None: no branch can match).
        self._by_keys: dict[frozenset[int], re.Pattern[str] | None] = {}

    def search(self, text: str, present: frozenset[int]) -> re.Match[str] | None:
        """What ``pattern.search(text)`` finds, given the index keys `present` in `text`."""
        relevant = self._relevant & present
        try:
            pattern = self._by_keys[relevant]
        except KeyError:
            pattern = self._pattern_for(self._chosen(relevant))
            if len(self._by_keys) < _MAX_COMPILED * 4:
                self._by_keys[relevant] = pattern
        return None if pattern is None else pattern.search(text)

    def _chosen(self, present: frozenset[int]) -> tuple[int, ...]:
        """The positions of the branches all of whose keys are `present`, in pattern order."""
        further = self._further
        keys = self._keys & present
        positions = [p for k in keys for p in self._positions[k] if further[p] <= present]
        return tuple(sorted(positions + list(self._always)))

    def _pattern_for(self, chosen: tuple[int, ...]) -> re.Pattern[str] | None:
        if not chosen:
            return None
        compiled = self._compiled.get(chosen)
        if compiled is None:
            if len(chosen) == len(self.branches) or len(self._compiled) >= _MAX_COMPILED:
                return self.pattern
            compiled = re.compile("|".join(self.branches[p] for p in chosen))
            self._compiled[chosen] = compiled
        return compiled
