"""What the parent asks a crawl child to do (CrawlJob) and what it learns back (CrawlResult)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class CrawlJob:
    """One crawl of one site, for a Crawl row the caller already created (status "running")."""

    database_url: str
    crawl_id: int
    site_id: int
    start_url: str
    max_pages: int = 200
    max_depth: int = 4
    user_agent: str = "clinicwatch/0.1"
    obey_robots: bool = True
    download_delay: float = 1.0
    concurrency_per_domain: int = 2
    timeout: float = 30.0  # per request, seconds
    retries: int = 2
    max_page_bytes: int = 5 * 1024 * 1024

    def to_json(self) -> str:
        """The job as one JSON object (what the child reads on stdin)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> CrawlJob:
        """Parse `to_json` output; raises ValueError naming unknown or missing fields."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"crawl job must be a JSON object, got {type(data).__name__}")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown crawl job field(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"invalid crawl job: {exc}") from exc


@dataclass
class CrawlResult:
    """What happened to a crawl, read from the database and the child's exit code."""

    crawl_id: int
    pages_ok: int
    pages_failed: int
    returncode: int  # child exit code; negative when killed by a signal
    error: str | None  # e.g. "crawl timed out after 7200 s", or the child's stderr tail
    stats: dict[str, Any] = field(default_factory=dict)  # a few Scrapy stats
