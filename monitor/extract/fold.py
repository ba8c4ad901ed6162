"""The form rules match (NFKC, case-folded) of a verbatim text, with the way back to it.

A claim's `text` must be the sentence exactly as the page has it — a regulator cites it — while
rules are written for the normalised form (full-width digits and brackets become ASCII, ㈱
becomes "(株)", "ﬁ" becomes "fi", "ß" becomes "ss"). `fold` builds that form segment by segment
and remembers, for every folded character, which characters of the original it came from, so a
span found in the folded text maps back to the span of the original that produced it.

Example: ``fold("１,６５０円（税込）")`` has ``text == "1,650円(税込)"``, and the folded span of
``"(税込)"`` maps back to ``"（税込）"``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

# Most pages repeat a few hundred distinct characters: fold each once.
_CHAR_CACHE: dict[str, tuple[str, bool]] = {}
_CACHE_LIMIT = 20_000


class Folded:
    """A folded text and, when folding moved characters, the map back to the original.

    ``starts[i]``/``ends[i]`` are the span of the original that folded character ``i`` came
    from. The map is built on first use, since most blocks never yield a claim.
    """

    __slots__ = ("_ends", "_moved", "_starts", "original", "text")

    def __init__(self, text: str, original: str, moved: bool = False) -> None:
        self.text = text
        self.original = original
        self._moved = moved  # False: folded character i came from original character i
        self._starts: list[int] = []
        self._ends: list[int] = []

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that folded characters ``start:end`` came from."""
        if not self._moved:
            return start, end
        if not self._starts:
            self._starts, self._ends = _offset_maps(self.original)
        if end <= start:  # an empty span stays empty, at the original of its position
            where = self._starts[start] if start < len(self._starts) else len(self.original)
            return where, where
        return self._starts[start], self._ends[end - 1]


def fold(text: str) -> Folded:
    """NFKC, then casefold, of `text` segment by segment, with the map back to `text`."""
    if text.isascii():
        return Folded(text.lower(), text)
    if unicodedata.is_normalized("NFKC", text):
        folded = text.casefold()
        # casefold never shortens a character, so equal lengths mean one character for one.
        if len(folded) == len(text):
            return Folded(folded, text)
    pieces = {char: _char(char) for char in set(text)}
    if any(joins for _, joins in pieces.values()):
        folded = "".join(piece for _, _, piece in _segments(text))
        return Folded(folded, text, moved=True)
    # Without combining marks every segment is one character: fold them all at C speed.
    folded = text.translate({ord(char): piece for char, (piece, _) in pieces.items()})
    return Folded(folded, text, moved=len(folded) != len(text))


def _offset_maps(text: str) -> tuple[list[int], list[int]]:
    """For every folded character, the start and end of the segment of `text` it came from."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end, piece in _segments(text):
        starts.extend([start] * len(piece))
        ends.extend([end] * len(piece))
    return starts, ends


def _segments(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, folded) per segment: a character and the combining marks that follow it
    (ｶﾞ, e + U+0301), since NFKC composes those into one character."""
    position, length = 0, len(text)
    while position < length:
        end = position + 1
        while end < length and _char(text[end])[1]:
            end += 1
        if end == position + 1:
            piece = _char(text[position])[0]
        else:
            piece = unicodedata.normalize("NFKC", text[position:end]).casefold()
        yield position, end, piece
        position = end


def _char(char: str) -> tuple[str, bool]:
    """(the folded character, whether it joins the character before it as a combining mark)."""
    cached = _CHAR_CACHE.get(char)
    if cached is None:
        normal = unicodedata.normalize("NFKC", char)
        joins = bool(normal) and unicodedata.combining(normal[0]) != 0
        cached = (normal.casefold(), joins)
        if len(_CHAR_CACHE) < _CACHE_LIMIT:
            _CHAR_CACHE[char] = cached
    return cached
