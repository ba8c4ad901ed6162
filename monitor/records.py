"""Records that cross module boundaries: what the extractor finds in one page or text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExtractedClaim:
    """One claim found in one sentence of a page or text.

    `key` is the claim's identity on its page (category + key identify it); `text` is the sentence
    as it reads; `trigger_start`/`trigger_end` are offsets of the trigger span within `text`.
    `location` says where the block stood (``main``, ``header``, ``footer``, ``nav``, ``aside`` …
    followed by a short element path); `chrome` is True when that place is site-wide page chrome.
    """

    category: str
    text: str
    key: str
    lang: str
    trigger: str
    trigger_start: int
    trigger_end: int
    rule_id: str
    rules_version: str = ""
    hedged: bool = False
    confidence: float = 1.0
    conditions: tuple[str, ...] = ()
    interventions: tuple[str, ...] = ()
    figures: tuple[dict[str, Any], ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    location: str = "main"
    chrome: bool = False
    block_index: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        for name in ("conditions", "interventions", "figures"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractedClaim:
        """Inverse of `to_dict`; unknown keys are ignored so old cached rows still load."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("conditions", "interventions", "figures"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def unique_claims(observed: Iterable[ExtractedClaim]) -> list[ExtractedClaim]:
    """One claim per (category, key), keeping the first occurrence on the page."""
    seen: set[tuple[str, str]] = set()
    out: list[ExtractedClaim] = []
    for claim in observed:
        identity = (claim.category, claim.key)
        if identity not in seen:
            seen.add(identity)
            out.append(claim)
    return out
