"""Shapes of the JSON API's answers (they also make up its OpenAPI description)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from claims_db.models import ChangeEvent, Claim, Review
from monitor.web.queries import SiteSummary


class SiteOut(BaseModel):
    """A watched site and its state."""

    id: int
    name: str
    url: str
    country: str | None
    last_check_at: datetime | None = None
    last_check_status: str | None = None
    last_check_error: str | None = None
    active_claims: dict[str, int] = Field(default_factory=dict)
    unreviewed_changes: int = 0

    @classmethod
    def from_summary(cls, row: SiteSummary) -> SiteOut:
        """Built from a sites-list row."""
        check = row.last_check
        return cls(
            id=row.site.id,
            name=row.site.name,
            url=row.site.url,
            country=row.site.country,
            last_check_at=check.started_at if check else None,
            last_check_status=check.status if check else None,
            last_check_error=check.error if check else None,
            active_claims=row.counts,
            unreviewed_changes=row.unreviewed,
        )


class ClaimOut(BaseModel):
    """A claim: its sentence, trigger span, conditions and when it was seen."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    site: str
    site_id: int
    category: str
    text: str
    lang: str | None
    url: str
    scope: str
    trigger: str | None
    trigger_start: int | None
    trigger_end: int | None
    hedged: bool
    conditions: list[Any] | None
    rule_id: str | None
    active: bool
    first_seen_at: datetime
    last_seen_at: datetime
    removed_at: datetime | None

    @classmethod
    def of(cls, claim: Claim) -> ClaimOut:
        """From a `Claim` row (its site loaded)."""
        data = {name: getattr(claim, name) for name in cls.model_fields if name != "site"}
        return cls(site=claim.site.name, **data)


class ChangeOut(BaseModel):
    """A change event: new, changed, removed or reclassified."""

    id: int
    event: str
    site: str
    site_id: int
    claim_id: int
    category: str
    url: str
    text: str
    old_text: str | None
    detected_at: datetime

    @classmethod
    def of(cls, event: ChangeEvent, site_name: str | None = None) -> ChangeOut:
        """From a `ChangeEvent` row (its site loaded unless `site_name` is given)."""
        data = {name: getattr(event, name) for name in cls.model_fields if name != "site"}
        return cls(site=site_name or event.site.name, **data)


class ReviewOut(BaseModel):
    """A reviewer's decision, with who and when."""

    id: int
    claim_id: int
    event_id: int | None
    decision: str
    note: str | None
    reviewer: str
    created_at: datetime

    @classmethod
    def of(cls, review: Review) -> ReviewOut:
        """From a `Review` row (its user loaded)."""
        return cls(
            id=review.id,
            claim_id=review.claim_id,
            event_id=review.event_id,
            decision=review.decision,
            note=review.note,
            reviewer=review.user.name,
            created_at=review.created_at,
        )


class ReviewIn(BaseModel):
    """A decision to record; `event_id` names the change event it settles, if any."""

    model_config = ConfigDict(extra="forbid")
    claim_id: int
    decision: str = Field(description="confirmed | dismissed | escalated")
    note: str | None = None
    event_id: int | None = None


class ClaimDetailOut(ClaimOut):
    """A claim with its change history and reviews."""

    events: list[ChangeOut]
    reviews: list[ReviewOut]


class MeOut(BaseModel):
    """The signed-in user and the CSRF token to send as ``X-CSRF-Token`` on POST."""

    name: str
    role: str
    csrf_token: str


class PageOut(BaseModel):
    """One page of a listing; pass `next_after_id` as `after_id` for the next page."""

    next_after_id: int | None


class SitesOut(BaseModel):
    """All sites."""

    items: list[SiteOut]


class ClaimsOut(PageOut):
    """A page of claims."""

    items: list[ClaimOut]


class ChangesOut(PageOut):
    """A page of change events."""

    items: list[ChangeOut]


class ReviewsOut(PageOut):
    """A page of reviews."""

    items: list[ReviewOut]
