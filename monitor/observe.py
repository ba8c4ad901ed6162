"""From stored snapshots to observations: the claims each good snapshot shows.

Extraction results are cached per content SHA-256 and rules version, so a page whose body did
not change costs no extraction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from claims_db.models import Content, Extraction, Page, Site, Snapshot
from monitor.records import ExtractedClaim

log = logging.getLogger(__name__)


@dataclass
class PageObservation:
    """The claims found in one successful snapshot of one page."""

    page: Page
    snapshot: Snapshot
    claims: list[ExtractedClaim]


def observe(
    session: Session, extractor, snapshots: Iterable[Snapshot], lang_hint: str | None
) -> list[PageObservation]:
    """Claims of each good snapshot, once per document.

    A redirect and its target, or ``/`` and ``/index.html`` serving identical bytes, are one
    document; it is read as the page discovered first, so the choice is stable across checks.
    """
    chosen: dict[str, Snapshot] = {}
    for snap in snapshots:
        if snap.content_sha256 is None:
            continue
        other = chosen.get(snap.content_sha256)
        if other is None or snap.page_id < other.page_id:
            chosen[snap.content_sha256] = snap
    seen_urls: set[str] = set()
    out: list[PageObservation] = []
    for snap in sorted(chosen.values(), key=lambda s: s.page_id):
        final = snap.final_url or snap.page.url
        if final in seen_urls:
            continue
        seen_urls.add(final)
        claims = claims_of_content(session, extractor, snap, lang_hint)
        if claims is not None:
            out.append(PageObservation(page=snap.page, snapshot=snap, claims=claims))
    return out


def claims_of_content(
    session: Session, extractor, snap: Snapshot, lang_hint: str | None
) -> list[ExtractedClaim] | None:
    """Claims of a snapshot's body, from the cache when this content was seen under these rules.

    Returns None when extraction itself failed: such a page is skipped, never read as "no claims".
    """
    cached = session.get(Extraction, (snap.content_sha256, extractor.version))
    if cached is not None:
        return [ExtractedClaim.from_dict(c) for c in cached.claims]
    content = session.get(Content, snap.content_sha256)
    try:
        claims = extractor.extract_html(
            content.body, content_type=snap.content_type, lang_hint=lang_hint
        )
    except Exception:  # a page the extractor cannot read must not stop the check
        log.exception("extraction failed for %s (snapshot %s)", snap.page.url, snap.id)
        return None
    session.add(
        Extraction(
            content_sha256=snap.content_sha256,
            rules_version=extractor.version,
            claims=[c.to_dict() for c in claims],
        )
    )
    session.flush()
    return claims


def latest_good_snapshots(
    session: Session, site: Site, exclude_crawl: int | None = None
) -> list[Snapshot]:
    """Each page's newest successful snapshot (optionally ignoring one crawl)."""
    query = (
        select(Snapshot.page_id, func.max(Snapshot.id))
        .join(Page, Page.id == Snapshot.page_id)
        .where(Page.site_id == site.id, Snapshot.ok.is_(True))
        .group_by(Snapshot.page_id)
    )
    if exclude_crawl is not None:
        query = query.where(Snapshot.crawl_id != exclude_crawl)
    ids = [snapshot_id for _, snapshot_id in session.execute(query)]
    if not ids:
        return []
    return list(session.scalars(select(Snapshot).where(Snapshot.id.in_(ids)).order_by(Snapshot.id)))
