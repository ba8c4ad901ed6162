"""The check cycle: crawl a site, extract claims from its snapshots, diff, record events, alert.

`check(cfg)` is what `clinicwatch check` and every scheduled run call. Each site's outcome is stored
in one transaction after its crawl, so a check killed half-way leaves the database consistent: a
crawl left `running` is marked `failed` by the next check and nothing of it was diffed.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from claims_db.codebook import EVENT_TYPES
from claims_db.engine import open_database, session_scope
from claims_db.models import (
    Claim,
    Crawl,
    Site,
    Snapshot,
    utcnow,
)
from monitor.claim_store import apply_observations, reclassify_site
from monitor.config import Config, SiteConfig
from monitor.observe import observe

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
    # Sites are independent and politeness is per site: crawl several at once, each in its own
    # child process; reports keep the config's order.
    workers = max(1, min(cfg.crawl.parallel_sites, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
        for site_report in pool.map(lambda s: check_site(engine, cfg, s, extractor), targets):
            _log_site(site_report)
            report.sites.append(site_report)
    with session_scope(engine) as session:
        event_ids = report.event_ids + unqueued_event_ids(session)
        report.alerts_queued = len(queue_alerts(session, cfg, event_ids))
    delivery = deliver_pending(engine, cfg)
    report.alerts_sent, report.alerts_failed = delivery.sent, delivery.failed
    report.alert_errors = list(delivery.errors)
    return report


def _log_site(report: SiteReport) -> None:
    log.info(
        "%s: %s, %d pages fetched, %d failed, events %s%s",
        report.site,
        report.status,
        report.pages_ok,
        report.pages_failed,
        dict(report.events) or "none",
        f" ({report.error})" if report.error else "",
    )


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
