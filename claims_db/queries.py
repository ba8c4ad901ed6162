"""Read queries behind the listing commands: current claims, change events, sites.

Each takes a `Session` (the caller owns its lifecycle) and yields plain dicts, streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from claims_db.models import ChangeEvent, Claim, Crawl, Site

CLAIM_COLUMNS = ["id", "category", "site", "url", "text", "lang", "scope", "hedged", "conditions"]
CHANGE_COLUMNS = ["id", "event", "category", "site", "url", "text", "old_text", "detected_at"]
SITE_COLUMNS = [
    "name",
    "url",
    "country",
    "last_check",
    "last_status",
    "pages_ok",
    "pages_failed",
    "active_claims",
]


def claim_rows(
    session: Session,
    *,
    site: str | None = None,
    category: str | None = None,
    include_removed: bool = False,
) -> Iterator[dict[str, Any]]:
    """Current claims (active ones unless `include_removed`), oldest first."""
    query = select(Claim, Site.name).join(Site, Site.id == Claim.site_id).order_by(Claim.id)
    if not include_removed:
        query = query.where(Claim.active.is_(True))
    if site:
        query = query.where(Site.name == site)
    if category:
        query = query.where(Claim.category == category)
    for claim, site_name in session.execute(query.execution_options(yield_per=500)):
        yield {
            "id": claim.id,
            "category": claim.category,
            "site": site_name,
            "url": claim.url,
            "text": claim.text,
            "lang": claim.lang,
            "scope": claim.scope,
            "pages": claim.pages or [claim.url],
            "trigger": claim.trigger,
            "trigger_start": claim.trigger_start,
            "trigger_end": claim.trigger_end,
            "hedged": claim.hedged,
            "conditions": claim.conditions or [],
            "attributes": claim.attributes or {},
            "rule_id": claim.rule_id,
            "rules_version": claim.rules_version,
            "location": claim.location,
            "active": claim.active,
            "first_seen_at": claim.first_seen_at,
            "last_seen_at": claim.last_seen_at,
            "removed_at": claim.removed_at,
        }


def change_rows(
    session: Session,
    *,
    site: str | None = None,
    event: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Change events in the order they were recorded."""
    query = (
        select(ChangeEvent, Site.name)
        .join(Site, Site.id == ChangeEvent.site_id)
        .order_by(ChangeEvent.id)
    )
    if site:
        query = query.where(Site.name == site)
    if event:
        query = query.where(ChangeEvent.event == event)
    if category:
        query = query.where(ChangeEvent.category == category)
    if since:
        query = query.where(ChangeEvent.detected_at >= since)
    for row, site_name in session.execute(query.execution_options(yield_per=500)):
        yield {
            "id": row.id,
            "event": row.event,
            "category": row.category,
            "site": site_name,
            "url": row.url,
            "text": row.text,
            "old_text": row.old_text,
            "detected_at": row.detected_at,
            "claim_id": row.claim_id,
            "crawl_id": row.crawl_id,
            "detail": row.detail,
        }


def site_rows(session: Session, names: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Sites with their last check and active claim count; `names` keeps config order."""
    sites = {s.name: s for s in session.scalars(select(Site))}
    active = dict(
        session.execute(
            select(Claim.site_id, func.count(Claim.id))
            .where(Claim.active.is_(True))
            .group_by(Claim.site_id)
        ).all()
    )
    for name in names if names is not None else sorted(sites):
        site = sites.get(name)
        last = None
        if site is not None:
            last = session.scalar(
                select(Crawl).where(Crawl.site_id == site.id).order_by(Crawl.id.desc()).limit(1)
            )
        yield {
            "name": name,
            "url": site.url if site else None,
            "country": site.country if site else None,
            "last_check": (last.finished_at or last.started_at) if last else None,
            "last_status": (last.status if last else "never checked"),
            "last_error": last.error if last else None,
            "pages_ok": last.pages_ok if last else None,
            "pages_failed": last.pages_failed if last else None,
            "active_claims": active.get(site.id, 0) if site else 0,
        }
