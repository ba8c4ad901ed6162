"""Read and write the data the review app shows; every function takes the caller's `Session`.

"Unreviewed" means a ``new`` or ``changed`` change event that no review row points at.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, exists, func, select
from sqlalchemy.orm import Session, joinedload

from claims_db.models import ChangeEvent, Claim, Crawl, Review, Site, Snapshot, User, utcnow

DECISIONS: tuple[str, ...] = ("confirmed", "dismissed", "escalated")
REVIEWABLE_EVENTS: tuple[str, ...] = ("new", "changed")
SITE_SORTS: tuple[str, ...] = ("name", "country", "last_check", "claims", "unreviewed")
MAX_NOTE_LENGTH = 5000


class ReviewError(ValueError):
    """A review that cannot be recorded (unknown claim/event, bad decision); says why."""


@dataclass(frozen=True)
class ClaimFilters:
    """Narrowing of claims shared by the sites list, the queue and the API."""

    country: str | None = None
    category: str | None = None
    condition: str | None = None
    q: str | None = None
    site_id: int | None = None

    def narrows_claims(self) -> bool:
        """True when a filter applies to claims rather than only to sites."""
        return bool(self.category or self.condition or self.q)


@dataclass
class SiteSummary:
    """One row of the sites list."""

    site: Site
    last_check: Crawl | None = None
    counts: dict[str, int] = field(default_factory=dict)
    unreviewed: int = 0

    @property
    def total(self) -> int:
        """Active claims counted on this row."""
        return sum(self.counts.values())


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def claim_conditions(filters: ClaimFilters) -> list[ColumnElement[bool]]:
    """SQL conditions on `Claim` for `filters` (works the same on SQLite and PostgreSQL)."""
    where: list[ColumnElement[bool]] = []
    if filters.category:
        where.append(Claim.category == filters.category)
    if filters.condition:
        # conditions is a JSON list; its stored text contains the JSON-encoded item.
        needle = _like_escape(json.dumps(filters.condition.strip()))
        where.append(cast(Claim.conditions, Text).like(f"%{needle}%", escape="\\"))
    if filters.q:
        where.append(Claim.text.ilike(f"%{_like_escape(filters.q.strip())}%", escape="\\"))
    if filters.site_id is not None:
        where.append(Claim.site_id == filters.site_id)
    if filters.country:
        where.append(Claim.site.has(Site.country == filters.country.upper()))
    return where


def event_conditions(filters: ClaimFilters) -> list[ColumnElement[bool]]:
    """SQL conditions on `ChangeEvent` for `filters`, using the event's own columns when it can."""
    where: list[ColumnElement[bool]] = []
    if filters.category:
        where.append(ChangeEvent.category == filters.category)
    if filters.site_id is not None:
        where.append(ChangeEvent.site_id == filters.site_id)
    if filters.country:
        in_country = select(Site.id).where(Site.country == filters.country.upper())
        where.append(ChangeEvent.site_id.in_(in_country))
    if filters.condition or filters.q:
        rest = ClaimFilters(condition=filters.condition, q=filters.q)
        where.append(ChangeEvent.claim.has(and_(*claim_conditions(rest))))
    return where


def unreviewed_condition() -> ColumnElement[bool]:
    """Change events still waiting for a decision."""
    return ChangeEvent.event.in_(REVIEWABLE_EVENTS) & ~exists(
        select(Review.id).where(Review.event_id == ChangeEvent.id)
    )


def countries(session: Session) -> list[str]:
    """Countries of the watched sites, for the filter menu."""
    rows = session.scalars(select(Site.country).where(Site.country.is_not(None)).distinct())
    return sorted(rows)


def _last_checks(session: Session) -> dict[int, Crawl]:
    latest = select(func.max(Crawl.id)).group_by(Crawl.site_id).scalar_subquery()
    return {c.site_id: c for c in session.scalars(select(Crawl).where(Crawl.id.in_(latest)))}


def site_summaries(
    session: Session, filters: ClaimFilters, sort: str = "name", descending: bool = False
) -> list[SiteSummary]:
    """The sites list: last check, active claims per category, unreviewed changes."""
    sites_query = select(Site)
    if filters.country:
        sites_query = sites_query.where(Site.country == filters.country.upper())
    rows = {s.id: SiteSummary(site=s) for s in session.scalars(sites_query)}
    counts = (
        select(Claim.site_id, Claim.category, func.count())
        .where(Claim.active.is_(True), *claim_conditions(ClaimFilters(**_claim_part(filters))))
        .group_by(Claim.site_id, Claim.category)
    )
    if filters.country:  # only the sites of that country need counting
        counts = counts.where(Claim.site_id.in_(list(rows)))
    for site_id, category, count in session.execute(counts):
        if site_id in rows:
            rows[site_id].counts[category] = count
    pending = (
        select(ChangeEvent.site_id, func.count())
        .where(unreviewed_condition())
        .group_by(ChangeEvent.site_id)
    )
    for site_id, count in session.execute(pending):
        if site_id in rows:
            rows[site_id].unreviewed = count
    for site_id, crawl in _last_checks(session).items():
        if site_id in rows:
            rows[site_id].last_check = crawl
    result = [r for r in rows.values() if r.total or not filters.narrows_claims()]
    return sorted(result, key=_sort_key(sort), reverse=descending)


def _claim_part(filters: ClaimFilters) -> dict[str, Any]:
    return {"category": filters.category, "condition": filters.condition, "q": filters.q}


def _sort_key(sort: str) -> Any:
    def last_check(row: SiteSummary) -> float:
        return row.last_check.started_at.timestamp() if row.last_check else 0.0

    keys = {
        "name": lambda r: r.site.name.casefold(),
        "country": lambda r: (r.site.country or "~", r.site.name.casefold()),
        "last_check": last_check,
        "claims": lambda r: (r.total, r.site.name.casefold()),
        "unreviewed": lambda r: (r.unreviewed, r.site.name.casefold()),
    }
    return keys.get(sort, keys["name"])


@dataclass
class SiteDetail:
    """A site with its claims grouped by page and its timeline."""

    site: Site
    claims_by_page: dict[str, list[Claim]]
    claims_shown: int
    claims_total: int
    checks: list[Crawl]
    events: list[ChangeEvent]


SITE_WIDE = "Site-wide (header, footer, sidebar)"


def site_detail(
    session: Session,
    site_id: int,
    *,
    category: str | None = None,
    include_removed: bool = False,
    claim_limit: int = 500,
    timeline_limit: int = 100,
) -> SiteDetail | None:
    """Everything the site page shows; None when there is no such site."""
    site = session.get(Site, site_id)
    if site is None:
        return None
    where = [Claim.site_id == site_id]
    if not include_removed:
        where.append(Claim.active.is_(True))
    if category:
        where.append(Claim.category == category)
    total = session.scalar(select(func.count()).select_from(Claim).where(*where)) or 0
    claims = session.scalars(
        select(Claim)
        .where(*where)
        .order_by(Claim.scope.desc(), Claim.url, Claim.id)
        .limit(claim_limit)
    ).all()
    grouped: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        grouped[SITE_WIDE if claim.scope == "site" else claim.url].append(claim)
    checks = session.scalars(
        select(Crawl)
        .where(Crawl.site_id == site_id)
        .order_by(Crawl.started_at.desc())
        .limit(timeline_limit)
    ).all()
    events = session.scalars(
        select(ChangeEvent)
        .where(ChangeEvent.site_id == site_id)
        .order_by(ChangeEvent.detected_at.desc(), ChangeEvent.id.desc())
        .limit(timeline_limit)
    ).all()
    return SiteDetail(site, dict(grouped), len(claims), total, list(checks), list(events))


@dataclass
class ClaimDetail:
    """A claim with its history, reviews and where it stood in the archived page."""

    claim: Claim
    events: list[ChangeEvent]
    reviews: list[Review]
    reviewed_event_ids: set[int]
    snapshot: Snapshot | None


def claim_detail(session: Session, claim_id: int) -> ClaimDetail | None:
    """The claim page's data; None when there is no such claim."""
    claim = session.get(Claim, claim_id, options=[joinedload(Claim.site)])
    if claim is None:
        return None
    events = session.scalars(
        select(ChangeEvent)
        .where(ChangeEvent.claim_id == claim_id)
        .order_by(ChangeEvent.detected_at, ChangeEvent.id)
    ).all()
    reviews = session.scalars(
        select(Review)
        .options(joinedload(Review.user))
        .where(Review.claim_id == claim_id)
        .order_by(Review.created_at.desc(), Review.id.desc())
    ).all()
    snapshot_id = claim.last_snapshot_id or claim.first_snapshot_id
    snapshot = session.get(Snapshot, snapshot_id) if snapshot_id else None
    reviewed = {r.event_id for r in reviews if r.event_id is not None}
    return ClaimDetail(claim, list(events), list(reviews), reviewed, snapshot)


def archived_body(session: Session, snapshot: Snapshot) -> tuple[bytes, str | None] | None:
    """The stored body and content type of `snapshot`, or None when nothing was stored."""
    if not snapshot.content_sha256 or snapshot.content is None:
        return None
    return snapshot.content.body, snapshot.content_type


def review_queue(
    session: Session, filters: ClaimFilters, *, limit: int = 50, offset: int = 0
) -> tuple[list[ChangeEvent], int]:
    """Unreviewed new/changed events, oldest first, and how many there are in all."""
    where = [unreviewed_condition(), *event_conditions(filters)]
    total = session.scalar(select(func.count()).select_from(ChangeEvent).where(*where)) or 0
    events = session.scalars(
        select(ChangeEvent)
        .options(joinedload(ChangeEvent.claim), joinedload(ChangeEvent.site))
        .where(*where)
        .order_by(ChangeEvent.detected_at, ChangeEvent.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(events), total


def record_review(
    session: Session,
    *,
    claim_id: int,
    user: User,
    decision: str,
    note: str | None = None,
    event_id: int | None = None,
) -> Review:
    """Store a decision on a claim (and on one of its change events); `ReviewError` if invalid."""
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {decision!r} (one of: {', '.join(DECISIONS)})")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_LENGTH:
        raise ReviewError(f"note too long ({len(note)} characters, at most {MAX_NOTE_LENGTH})")
    if session.get(Claim, claim_id) is None:
        raise ReviewError(f"no claim with id {claim_id}")
    if event_id is not None:
        event = session.get(ChangeEvent, event_id)
        if event is None or event.claim_id != claim_id:
            raise ReviewError(f"change event {event_id} does not belong to claim {claim_id}")
    review = Review(
        claim_id=claim_id,
        event_id=event_id,
        user_id=user.id,
        decision=decision,
        note=note,
        created_at=utcnow(),
    )
    session.add(review)
    session.flush()
    return review


def oldest_unreviewed_event(session: Session, claim_id: int) -> ChangeEvent | None:
    """The claim's oldest change event still waiting for a decision."""
    return session.scalar(
        select(ChangeEvent)
        .where(ChangeEvent.claim_id == claim_id, unreviewed_condition())
        .order_by(ChangeEvent.detected_at, ChangeEvent.id)
        .limit(1)
    )


def page_after(query: Any, column: Any, after_id: int | None, limit: int) -> Any:
    """Keyset pagination: rows with `column` > `after_id`, ascending, at most `limit`."""
    if after_id is not None:
        query = query.where(column > after_id)
    return query.order_by(column).limit(limit)


def list_claims(
    session: Session,
    filters: ClaimFilters,
    *,
    active: bool | None,
    after_id: int | None,
    limit: int,
) -> list[Claim]:
    """Claims for the API, by id."""
    query = select(Claim).options(joinedload(Claim.site)).where(*claim_conditions(filters))
    if active is not None:
        query = query.where(Claim.active.is_(active))
    return list(session.scalars(page_after(query, Claim.id, after_id, limit)))


def list_changes(
    session: Session,
    filters: ClaimFilters,
    *,
    event: str | None,
    unreviewed: bool,
    since: datetime | None,
    after_id: int | None,
    limit: int,
) -> list[ChangeEvent]:
    """Change events for the API, by id."""
    query = select(ChangeEvent).options(joinedload(ChangeEvent.site))
    query = query.where(*event_conditions(filters))
    if event:
        query = query.where(ChangeEvent.event == event)
    if unreviewed:
        query = query.where(unreviewed_condition())
    if since is not None:
        query = query.where(ChangeEvent.detected_at >= since)
    return list(session.scalars(page_after(query, ChangeEvent.id, after_id, limit)))


def list_reviews(
    session: Session,
    *,
    claim_id: int | None,
    decision: str | None,
    after_id: int | None,
    limit: int,
) -> list[Review]:
    """Review decisions for the API, by id."""
    query = select(Review).options(joinedload(Review.user))
    if claim_id is not None:
        query = query.where(Review.claim_id == claim_id)
    if decision:
        query = query.where(Review.decision == decision)
    return list(session.scalars(page_after(query, Review.id, after_id, limit)))


def latest_decisions(session: Session, claim_ids: list[int]) -> dict[int, Review]:
    """The most recent review of each claim in `claim_ids` (to badge claims in lists)."""
    if not claim_ids:
        return {}
    latest = (
        select(func.max(Review.id)).where(Review.claim_id.in_(claim_ids)).group_by(Review.claim_id)
    )
    reviews = session.scalars(select(Review).where(Review.id.in_(latest.scalar_subquery())))
    return {r.claim_id: r for r in reviews}
