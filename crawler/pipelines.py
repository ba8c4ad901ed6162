"""SnapshotPipeline: store each PageSnapshot as Page, Snapshot and Content rows, one commit each.

Committing per item means a crawl killed half-way keeps every page it had fetched. Contents are
addressed by SHA-256 and inserted at most once, even by two crawls racing on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from scrapy import Spider
from scrapy.crawler import Crawler
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from claims_db.engine import make_engine, session_scope
from claims_db.models import Content, Crawl, Page, Snapshot
from crawler.snapshots import PageSnapshot

logger = logging.getLogger(__name__)

# Scrapy stats copied to crawls.stats: small, and useful when a crawl looks wrong.
KEPT_STATS = (
    "downloader/request_count",
    "downloader/response_count",
    "item_scraped_count",
    "offsite/filtered",
    "retry/count",
    "robotstxt/forbidden",
)
KEPT_STAT_PREFIXES = ("clinicwatch/", "downloader/response_status_count/")


def kept_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """The subset of Scrapy stats worth keeping on the crawl row (JSON-safe values only)."""
    return {
        key: value
        for key, value in sorted(stats.items())
        if (key in KEPT_STATS or key.startswith(KEPT_STAT_PREFIXES))
        and isinstance(value, int | float | str)
    }


def get_or_create_content(session: Session, body: bytes) -> str:
    """Store `body` once under its SHA-256 and return the hash; safe against a concurrent insert."""
    sha256 = hashlib.sha256(body).hexdigest()
    if session.get(Content, sha256) is not None:
        return sha256
    try:
        with session.begin_nested():
            session.add(Content(sha256=sha256, body=body, size=len(body)))
    except IntegrityError:
        # Another crawl stored the same body between our look-up and insert: theirs is ours.
        stored = select(Content.sha256).where(Content.sha256 == sha256)
        if session.scalar(stored) is None:
            raise  # some other integrity problem
    return sha256


def get_or_create_page(session: Session, site_id: int, url: str) -> Page:
    """The Page row for (site, url), created on first sight."""
    query = select(Page).where(Page.site_id == site_id, Page.url == url)
    page = session.scalars(query).one_or_none()
    if page is not None:
        return page
    try:
        with session.begin_nested():
            page = Page(site_id=site_id, url=url)
            session.add(page)
    except IntegrityError:
        # A concurrent crawl of the same site created it first.
        page = session.scalars(query).one_or_none()
        if page is None:
            raise
    return page


def store_snapshot(session: Session, crawl_id: int, site_id: int, item: PageSnapshot) -> Snapshot:
    """Write one fetch: its page (last_seen_at updated), its body (once) and the snapshot row."""
    page = get_or_create_page(session, site_id, item.url)
    page.last_seen_at = item.fetched_at
    sha256 = get_or_create_content(session, item.body) if item.body is not None else None
    snapshot = Snapshot(
        crawl_id=crawl_id,
        page_id=page.id,
        fetched_at=item.fetched_at,
        ok=item.ok,
        status=item.status,
        error=item.error,
        final_url=item.final_url,
        content_type=item.content_type,
        declared_encoding=item.declared_encoding,
        content_sha256=sha256,
        depth=item.depth,
    )
    session.add(snapshot)
    return snapshot


def count_snapshots(session: Session, crawl_id: int) -> tuple[int, int]:
    """(ok, failed) snapshot counts of a crawl, straight from the snapshots table."""
    rows = session.execute(
        select(Snapshot.ok, func.count()).where(Snapshot.crawl_id == crawl_id).group_by(Snapshot.ok)
    ).all()
    counts = {bool(ok): count for ok, count in rows}
    return counts.get(True, 0), counts.get(False, 0)


class SnapshotPipeline:
    """Store snapshots for crawl CLINICWATCH_CRAWL_ID in CLINICWATCH_DATABASE_URL."""

    def __init__(self, database_url: str, crawl_id: int, site_id: int, crawler: Crawler):
        self.database_url = database_url
        self.crawl_id = crawl_id
        self.site_id = site_id
        self.crawler = crawler
        self.engine: Engine | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SnapshotPipeline:
        """Read the target database and crawl from the crawl settings."""
        settings = crawler.settings
        return cls(
            settings["CLINICWATCH_DATABASE_URL"],
            settings.getint("CLINICWATCH_CRAWL_ID"),
            settings.getint("CLINICWATCH_SITE_ID"),
            crawler,
        )

    def open_spider(self, spider: Spider | None = None) -> None:
        """Connect; the parent created the schema and the crawl row already."""
        self.engine = make_engine(self.database_url)

    def process_item(self, item: Any, spider: Spider | None = None) -> Any:
        """Store one PageSnapshot in its own transaction; other items pass through."""
        if not isinstance(item, PageSnapshot) or self.engine is None:
            return item
        try:
            with session_scope(self.engine) as session:
                store_snapshot(session, self.crawl_id, self.site_id, item)
        except SQLAlchemyError as exc:
            # Counted so the spider stops asking for pages and the child exits non-zero.
            self.crawler.stats.inc_value("clinicwatch/database_errors")
            logger.error("Could not store the snapshot of %s: %s", item.url, exc)
        return item

    def close_spider(self, spider: Spider | None = None) -> None:
        """Write the crawl's page counts and stats; the parent owns the final status."""
        if self.engine is None:
            return
        try:
            with session_scope(self.engine) as session:
                crawl = session.get(Crawl, self.crawl_id)
                if crawl is not None:
                    crawl.pages_ok, crawl.pages_failed = count_snapshots(session, self.crawl_id)
                    crawl.stats = kept_stats(self.crawler.stats.get_stats())
                    if crawl.status == "running":
                        crawl.status = "crawled"
        except SQLAlchemyError as exc:
            self.crawler.stats.inc_value("clinicwatch/database_errors")
            logger.error("Could not write the totals of crawl %s: %s", self.crawl_id, exc)
        finally:
            self.engine.dispose()
