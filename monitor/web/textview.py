"""Turning crawled text into safe display pieces: trigger highlights, word diffs, archived context.

Everything here returns plain strings or (kind, text) segments; templates escape them. Crawled
HTML is never passed through to the browser.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor.extract import html as html_blocks

# CJK characters are diffed one by one (those scripts have no spaces between words).
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]|\w+|\s+|[^\w\s]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Segment:
    """A run of text and how to show it: ``text``, ``mark`` (trigger), ``ins`` or ``del``."""

    kind: str
    text: str


def safe_http_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL, else None (no javascript:, data:, relative …)."""
    if not url:
        return None
    candidate = url.strip()
    parts = urlsplit(candidate)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ch in candidate for ch in "\x00\r\n\t"):
        return None
    return candidate


def highlight(text: str, start: int | None, end: int | None) -> list[Segment]:
    """`text` split around the trigger span; offsets out of range give one unmarked segment."""
    if start is None or end is None or not 0 <= start < end <= len(text):
        return [Segment("text", text)]
    pieces = [
        Segment("text", text[:start]),
        Segment("mark", text[start:end]),
        Segment("text", text[end:]),
    ]
    return [p for p in pieces if p.text]


def word_diff(old: str, new: str) -> list[Segment]:
    """Word-level difference of `old` → `new` as ``text``/``del``/``ins`` segments."""
    old_tokens, new_tokens = _TOKEN.findall(old), _TOKEN.findall(new)
    matcher = difflib.SequenceMatcher(a=old_tokens, b=new_tokens, autojunk=False)
    segments: list[Segment] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            segments.append(Segment("text", "".join(old_tokens[a0:a1])))
            continue
        if a1 > a0:
            segments.append(Segment("del", "".join(old_tokens[a0:a1])))
        if b1 > b0:
            segments.append(Segment("ins", "".join(new_tokens[b0:b1])))
    return segments


def decode_body(body: bytes, content_type: str | None) -> str:
    """Decode a stored response body with the crawler's decoder, never raising."""
    try:
        return html_blocks.decode_body(body, content_type)
    except Exception:  # a broken page must not break the review page
        return body.decode("utf-8", "replace")


def visible_text(html: str) -> str:
    """The text a reader of the page would see (the extractor's blocks), one block a line."""
    return "\n".join(block.text for block in html_blocks.parse_page(html).blocks)


def context_around(page_text: str, sentence: str, radius: int = 500) -> list[Segment] | None:
    """The archived page text around `sentence` (marked), or None if the page no longer has it."""
    wanted = _SPACE.sub(" ", sentence).strip()
    if not wanted:
        return None
    at = page_text.find(wanted)
    if at < 0:
        return None
    start, end = max(0, at - radius), min(len(page_text), at + len(wanted) + radius)
    before = ("… " if start > 0 else "") + page_text[start:at]
    after = page_text[at + len(wanted) : end] + (" …" if end < len(page_text) else "")
    return [
        s
        for s in (Segment("text", before), Segment("mark", wanted), Segment("text", after))
        if s.text
    ]
