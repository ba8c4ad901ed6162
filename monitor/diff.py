"""Diff: the claims a page (or the site's chrome) shows now against the claims it showed before.

`match_claims` is pure: it pairs known claims with observed ones by category and normalised sentence
(`unchanged`), pairs the rest by similar text within a category (`changed`), and leaves the remainder
as `new` and `removed`. Storage of the outcome is `monitor.check`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Protocol

from monitor.records import ExtractedClaim, unique_claims

# Two sentences of one category on one page whose keys are at least this similar are one edited
# claim, not a removal plus an addition ("60% of patients" → "70% of patients" is ~0.97).
CHANGED_SIMILARITY = 0.6


class KnownClaim(Protocol):
    """What the diff needs of a stored claim (claims_db.models.Claim satisfies it)."""

    category: str
    key: str


@dataclass
class ClaimDiff:
    """The outcome of matching known claims against observed ones."""

    unchanged: list[tuple[KnownClaim, ExtractedClaim]] = field(default_factory=list)
    changed: list[tuple[KnownClaim, ExtractedClaim]] = field(default_factory=list)
    new: list[ExtractedClaim] = field(default_factory=list)
    removed: list[KnownClaim] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when nothing appeared, changed or disappeared."""
        return not (self.changed or self.new or self.removed)


def similarity(a: str, b: str) -> float:
    """How alike two normalised sentences are, 0..1."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if (
        matcher.real_quick_ratio() < CHANGED_SIMILARITY
        or matcher.quick_ratio() < CHANGED_SIMILARITY
    ):
        return 0.0
    return matcher.ratio()


def match_claims(
    known: Sequence[KnownClaim],
    observed: Iterable[ExtractedClaim],
    threshold: float = CHANGED_SIMILARITY,
) -> ClaimDiff:
    """Pair `known` with `observed`: identical keys, then the most similar pairs per category."""
    diff = ClaimDiff()
    by_identity = {(k.category, k.key): k for k in known}
    leftover: list[ExtractedClaim] = []
    for claim in unique_claims(observed):
        match = by_identity.pop((claim.category, claim.key), None)
        if match is None:
            leftover.append(claim)
        else:
            diff.unchanged.append((match, claim))
    unmatched_known = list(by_identity.values())
    candidates = sorted(
        (
            (similarity(k.key, o.key), ki, oi)
            for ki, k in enumerate(unmatched_known)
            for oi, o in enumerate(leftover)
            if k.category == o.category
        ),
        reverse=True,
    )
    used_known: set[int] = set()
    used_observed: set[int] = set()
    for score, ki, oi in candidates:
        if score < threshold:
            break
        if ki in used_known or oi in used_observed:
            continue
        used_known.add(ki)
        used_observed.add(oi)
        diff.changed.append((unmatched_known[ki], leftover[oi]))
    diff.new = [o for oi, o in enumerate(leftover) if oi not in used_observed]
    diff.removed = [k for ki, k in enumerate(unmatched_known) if ki not in used_known]
    return diff
