"""The check cycle: crawl a site, extract claims from its snapshots, diff, record events, alert.

`check(cfg)` is what `clinicwatch check` and every scheduled run call. Each site's outcome is stored
in one transaction after its crawl, so a check killed half-way leaves the database consistent: a
crawl left `running` is marked `failed` by the next check and nothing of it was diffed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from claims_db.codebook import EVENT_TYPES
from claims_db.engine import open_database, session_scope
from claims_db.models import (
    ChangeEvent,
    Claim,
    Content,
    Crawl,
    Extraction,
    Page,
    Site,
    Snapshot,
    utcnow,
)
from monitor.config import Config, SiteConfig
from monitor.diff import ClaimDiff, match_claims, unique_claims
from monitor.records import ExtractedClaim

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "site",
    "status",
    "pages_ok",
    "pages_failed",
    "new",
    "changed",
    "removed",
    "reclassified",
    "active_claims",
    "note",
]
# A claim seen on at least this many pages of one crawl is site-wide even outside marked chrome.
SITE_WIDE_MIN_PAGES = 3


@dataclass
class PageObservation:
    """The claims found in one successful snapshot of one page."""

    page: Page
    snapshot: Snapshot
    claims: list[ExtractedClaim]


@dataclass
class SiteReport:
    """What one site's check did."""

    site: str
    crawl_id: int | None
    status: str
    baseline: bool = False
    pages_ok: int = 0
    pages_failed: int = 0
    events: Counter[str] = field(default_factory=Counter)
    event_ids: list[int] = field(default_factory=list)
    active_claims: int = 0
    error: str | None = None


@dataclass
class CheckReport:
    """What a whole check did: per site, and the alerts it queued and delivered."""

    sites: list[SiteReport] = field(default_factory=list)
    alerts_queued: int = 0
    alerts_sent: int = 0
    alerts_failed: int = 0
    alert_errors: list[str] = field(default_factory=list)

    def summary_rows(self) -> list[dict[str, object]]:
        """One summary row per site checked (what `clinicwatch check` prints)."""
        return [
            {
                "site": site.site,
                "status": site.status,
                "pages_ok": site.pages_ok,
                "pages_failed": site.pages_failed,
                **{event: site.events.get(event, 0) for event in EVENT_TYPES},
                "active_claims": site.active_claims,
                "baseline": site.baseline,
                "crawl_id": site.crawl_id,
                "note": site.error or ("baseline (no alerts)" if site.baseline else ""),
            }
            for site in self.sites
        ]

    @property
    def event_ids(self) -> list[int]:
        """Every change event this check recorded."""
        return [i for site in self.sites for i in site.event_ids]


def check(cfg: Config, site: str | None = None, *, engine: Engine | None = None) -> CheckReport:
    """Check every configured site (or the one named): crawl, extract, diff, alert."""
    from monitor.alerts import deliver_pending, queue_alerts, unqueued_event_ids
    from monitor.extract import load_extractor

    targets = [cfg.site(site)] if site else list(cfg.sites)
    engine = engine or open_database(cfg.database)
    extractor = load_extractor(cfg.rules_dir)
    report = CheckReport()
    for site_cfg in targets:
        report.sites.append(check_site(engine, cfg, site_cfg, extractor))
    with session_scope(engine) as session:
        event_ids = report.event_ids + unqueued_event_ids(session)
        report.alerts_queued = len(queue_alerts(session, cfg, event_ids))
    delivery = deliver_pending(engine, cfg)
    report.alerts_sent, report.alerts_failed = delivery.sent, delivery.failed
    report.alert_errors = list(delivery.errors)
    return report


def sync_site(session: Session, site_cfg: SiteConfig) -> Site:
    """The Site row for a configured site, created or updated from the config."""
    site = session.scalar(select(Site).where(Site.name == site_cfg.name))
    if site is None:
        site = Site(name=site_cfg.name, url=site_cfg.url)
        session.add(site)
    site.url, site.country, site.lang = site_cfg.url, site_cfg.country, site_cfg.lang
    session.flush()
    return site


def _start_crawl(engine: Engine, site_cfg: SiteConfig) -> tuple[int, int]:
    with session_scope(engine) as session:
        site = sync_site(session, site_cfg)
        for stale in session.scalars(
            select(Crawl).where(Crawl.site_id == site.id, Crawl.status.in_(("running", "crawled")))
        ):
            stale.status, stale.error = "failed", "interrupted before it finished"
            stale.finished_at = utcnow()
        baseline = not session.scalar(
            select(func.count(Crawl.id)).where(Crawl.site_id == site.id, Crawl.status == "done")
        )
        crawl = Crawl(site_id=site.id, status="running", baseline=baseline)
        session.add(crawl)
        session.flush()
        return site.id, crawl.id


def check_site(engine: Engine, cfg: Config, site_cfg: SiteConfig, extractor) -> SiteReport:
    """Crawl one site in a child process, then extract and diff its snapshots in one transaction."""
    from crawler.job import CrawlJob
    from crawler.runner import run_crawl

    site_id, crawl_id = _start_crawl(engine, site_cfg)
    job = CrawlJob(
        database_url=cfg.database,
        crawl_id=crawl_id,
        site_id=site_id,
        start_url=site_cfg.url,
        max_pages=site_cfg.max_pages,
        max_depth=site_cfg.max_depth,
        user_agent=cfg.crawl.user_agent,
        obey_robots=cfg.crawl.obey_robots,
        download_delay=cfg.crawl.download_delay,
        concurrency_per_domain=cfg.crawl.concurrency_per_domain,
        timeout=cfg.crawl.timeout,
        retries=cfg.crawl.retries,
        max_page_bytes=cfg.crawl.max_page_bytes,
    )
    result = run_crawl(job, timeout=cfg.crawl.crawl_timeout.total_seconds())
    with session_scope(engine) as session:
        return record_crawl(
            session, session.get(Crawl, crawl_id), extractor, site_cfg, result.error
        )


def record_crawl(
    session: Session, crawl: Crawl, extractor, site_cfg: SiteConfig, crawl_error: str | None = None
) -> SiteReport:
    """Extract the crawl's good snapshots, diff them against the site's claims, store events."""
    site = crawl.site
    snapshots = session.scalars(
        select(Snapshot).where(Snapshot.crawl_id == crawl.id).order_by(Snapshot.id)
    ).all()
    report = SiteReport(site=site.name, crawl_id=crawl.id, status="done", baseline=crawl.baseline)
    report.pages_failed = sum(1 for s in snapshots if not s.ok)
    observations = observe(session, extractor, [s for s in snapshots if s.ok], site_cfg.lang)
    report.pages_ok = len(observations)
    crawl.pages_ok, crawl.pages_failed = report.pages_ok, report.pages_failed
    crawl.finished_at = utcnow()
    crawl.rules_version = extractor.version
    if not observations:
        reasons = Counter(s.error or f"HTTP {s.status}" for s in snapshots if not s.ok)
        detail = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common(3))
        crawl.status = report.status = "failed"
        crawl.error = report.error = (
            crawl_error or f"no page could be fetched: {detail or 'no response'}"
        )
        return report
    if not crawl.baseline:
        reclassify_site(session, site, extractor, exclude_crawl=crawl.id, lang_hint=site_cfg.lang)
    events = apply_observations(
        session, site, observations, crawl_id=crawl.id, record_events=not crawl.baseline
    )
    crawl.status = "done"
    crawl.error = crawl_error
    session.flush()
    report.events = Counter(e.event for e in events)
    report.event_ids = [e.id for e in events]
    report.active_claims = session.scalar(
        select(func.count(Claim.id)).where(Claim.site_id == site.id, Claim.active.is_(True))
    )
    return report


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


def site_wide_identities(
    observations: Sequence[PageObservation], known_site_claims: Iterable[Claim]
) -> set[tuple[str, str]]:
    """(category, key) of claims that belong to the site rather than to one page.

    Chrome (header, footer, sidebar) marks a claim site-wide; so does repetition on many pages.
    A claim already site-wide stays so while it is seen anywhere, so scope does not flap.
    """
    counts: Counter[tuple[str, str]] = Counter()
    chrome: set[tuple[str, str]] = set()
    for obs in observations:
        for claim in unique_claims(obs.claims):
            identity = (claim.category, claim.key)
            counts[identity] += 1
            if claim.chrome:
                chrome.add(identity)
    pages = len(observations)
    repeated = {
        i for i, n in counts.items() if n >= SITE_WIDE_MIN_PAGES or (pages >= 2 and n == pages)
    }
    kept = {(c.category, c.key) for c in known_site_claims if (c.category, c.key) in counts}
    return chrome | repeated | kept


def apply_observations(
    session: Session,
    site: Site,
    observations: Sequence[PageObservation],
    *,
    crawl_id: int | None,
    record_events: bool = True,
    event_type: str | None = None,
) -> list[ChangeEvent]:
    """Diff the observations against the site's active claims and store claims and events.

    `event_type` overrides the event name (``reclassified`` for new rules over old snapshots);
    `record_events=False` (a baseline) updates claims without events.
    """
    now = utcnow()
    active = session.scalars(
        select(Claim).where(Claim.site_id == site.id, Claim.active.is_(True))
    ).all()
    site_claims = [c for c in active if c.scope == "site"]
    wide = site_wide_identities(observations, site_claims)
    _promote_to_site(active, wide)
    site_claims = [c for c in active if c.scope == "site"]
    recorder = _EventRecorder(session, site, crawl_id, now, record_events, event_type)

    site_observed = [
        (obs, c) for obs in observations for c in obs.claims if (c.category, c.key) in wide
    ]
    first_page: dict[tuple[str, str], PageObservation] = {}
    pages_of: dict[tuple[str, str], list[str]] = {}
    for obs, claim in site_observed:
        first_page.setdefault((claim.category, claim.key), obs)
        urls = pages_of.setdefault((claim.category, claim.key), [])
        if obs.page.url not in urls:
            urls.append(obs.page.url)
    site_diff = match_claims(site_claims, [c for _, c in site_observed])
    recorder.apply(
        site_diff, lambda c: first_page[(c.category, c.key)], scope="site", pages_of=pages_of
    )

    page_claims: dict[int, list[Claim]] = {}
    for claim in active:
        if claim.scope == "page" and claim.active:
            page_claims.setdefault(claim.page_id, []).append(claim)
    for obs in observations:
        own = [c for c in obs.claims if (c.category, c.key) not in wide]
        diff = match_claims(page_claims.get(obs.page.id, []), own)
        recorder.apply(diff, lambda _c, obs=obs: obs, scope="page")
    session.flush()
    return recorder.events


def _promote_to_site(active: Sequence[Claim], wide: set[tuple[str, str]]) -> None:
    """Page claims that turned out site-wide become the site claim (one keeps its id and history)."""
    site_identities = {(c.category, c.key) for c in active if c.scope == "site"}
    for claim in active:
        identity = (claim.category, claim.key)
        if claim.scope != "page" or identity not in wide:
            continue
        if identity in site_identities:
            claim.active = False  # merged into the existing site claim, silently
        else:
            claim.scope, claim.page_id = "site", None
            claim.pages = [claim.url]
            site_identities.add(identity)


class _EventRecorder:
    """Writes claim rows and change events for one diff application."""

    def __init__(
        self,
        session: Session,
        site: Site,
        crawl_id: int | None,
        now: datetime,
        record_events: bool,
        event_type: str | None,
    ) -> None:
        self.session, self.site, self.crawl_id, self.now = session, site, crawl_id, now
        self.record_events, self.event_type = record_events, event_type
        self.events: list[ChangeEvent] = []

    def apply(self, diff: ClaimDiff, where, *, scope: str, pages_of=None) -> None:
        """Store one ClaimDiff; `where(claim)` gives the PageObservation a claim was seen on."""
        for known, seen in diff.unchanged:
            self._refresh(known, seen, where(seen), pages_of)
        for known, seen in diff.changed:
            old_text = known.text
            self._refresh(known, seen, where(seen), pages_of)
            self._event("changed", known, where(seen).snapshot, old_text=old_text)
        for seen in diff.new:
            obs = where(seen)
            claim = self._create(seen, obs, scope, pages_of)
            self._event("new", claim, obs.snapshot)
        for known in diff.removed:
            known.active, known.removed_at = False, self.now
            self._event("removed", known, None)

    def _refresh(self, claim: Claim, seen: ExtractedClaim, obs: PageObservation, pages_of) -> None:
        _copy_extracted(claim, seen)
        claim.last_seen_at, claim.last_snapshot_id = self.now, obs.snapshot.id
        if pages_of is not None:
            claim.pages = pages_of.get((seen.category, seen.key), claim.pages)

    def _create(self, seen: ExtractedClaim, obs: PageObservation, scope: str, pages_of) -> Claim:
        claim = self.session.scalar(
            select(Claim).where(
                Claim.site_id == self.site.id,
                Claim.scope == scope,
                Claim.page_id.is_(None) if scope == "site" else Claim.page_id == obs.page.id,
                Claim.category == seen.category,
                Claim.key == seen.key,
                Claim.active.is_(False),
            )
        )
        if claim is None:  # a claim that comes back keeps its id and history
            claim = Claim(
                site_id=self.site.id,
                page_id=None if scope == "site" else obs.page.id,
                scope=scope,
                url=obs.page.url,
                first_seen_at=self.now,
                first_snapshot_id=obs.snapshot.id,
            )
            self.session.add(claim)
        claim.active, claim.removed_at = True, None
        self._refresh(claim, seen, obs, pages_of)
        self.session.flush()
        return claim

    def _event(self, event: str, claim: Claim, snapshot: Snapshot | None, old_text=None) -> None:
        if not self.record_events:
            return
        detail = None
        if self.event_type:
            detail, event = {"kind": event, "rules_version": claim.rules_version}, self.event_type
        row = ChangeEvent(
            site_id=self.site.id,
            crawl_id=self.crawl_id,
            claim_id=claim.id,
            snapshot_id=snapshot.id if snapshot else None,
            event=event,
            category=claim.category,
            url=claim.url,
            text=claim.text,
            old_text=old_text,
            detail=detail,
            detected_at=self.now,
        )
        self.session.add(row)
        self.session.flush()
        self.events.append(row)


def _copy_extracted(claim: Claim, seen: ExtractedClaim) -> None:
    claim.category, claim.key, claim.text, claim.lang = (
        seen.category,
        seen.key,
        seen.text,
        seen.lang,
    )
    claim.trigger, claim.trigger_start, claim.trigger_end = (
        seen.trigger,
        seen.trigger_start,
        seen.trigger_end,
    )
    claim.rule_id, claim.rules_version = seen.rule_id, seen.rules_version
    claim.hedged, claim.confidence = seen.hedged, seen.confidence
    claim.conditions = list(seen.conditions)
    claim.attributes = {
        **seen.attributes,
        "interventions": list(seen.interventions),
        "figures": list(seen.figures),
    }
    claim.location = seen.location


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


def reclassify_site(
    session: Session,
    site: Site,
    extractor,
    *,
    exclude_crawl: int | None = None,
    lang_hint: str | None = None,
    force: bool = False,
) -> list[ChangeEvent]:
    """Re-apply the current rules to the site's stored snapshots; differences are `reclassified`.

    Does nothing when every active claim already carries the current rules version (unless
    `force`), so an ordinary check pays nothing for it.
    """
    stale = session.scalar(
        select(func.count(Claim.id)).where(
            Claim.site_id == site.id,
            Claim.active.is_(True),
            Claim.rules_version != extractor.version,
        )
    )
    last_rules = session.scalar(
        select(Crawl.rules_version)
        .where(Crawl.site_id == site.id, Crawl.status == "done")
        .order_by(Crawl.id.desc())
        .limit(1)
    )
    if not force and not stale and last_rules in (None, extractor.version):
        return []
    snapshots = latest_good_snapshots(session, site, exclude_crawl)
    observations = observe(session, extractor, snapshots, lang_hint or site.lang)
    if not observations:
        return []
    return apply_observations(session, site, observations, crawl_id=None, event_type="reclassified")
