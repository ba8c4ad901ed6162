"""Scrapy settings of a clinicwatch crawl; `crawl_settings` is the only place a job becomes them."""

from __future__ import annotations

from typing import Any

from crawler.job import CrawlJob

# Crawl row the snapshots belong to; required in the child.
CLINICWATCH_CRAWL_ID: int | None = None
# SQLAlchemy URL of the database the snapshots go to; required in the child.
CLINICWATCH_DATABASE_URL: str | None = None
# Links further than this many clicks from the start page are not followed.
CLINICWATCH_MAX_DEPTH = 4
# Largest number of pages (snapshots) one crawl records, failures included.
CLINICWATCH_MAX_PAGES = 200
# Site row the pages belong to; required in the child.
CLINICWATCH_SITE_ID: int | None = None
# The start page; it also defines the site (host and port) the crawl stays on.
CLINICWATCH_START_URL: str | None = None

# Most redirects followed for one page; the chain ends in a failed snapshot beyond it.
REDIRECT_MAX_TIMES = 5
# Statuses worth another try: overload and gateway trouble, not 404 or 403.
RETRY_HTTP_CODES = [408, 429, 500, 502, 503, 504, 522, 524]


def crawl_settings(job: CrawlJob) -> dict[str, Any]:
    """Scrapy settings for `job`: clinicwatch's own values plus every Scrapy knob it relies on."""
    return {
        "CLINICWATCH_CRAWL_ID": job.crawl_id,
        "CLINICWATCH_DATABASE_URL": job.database_url,
        "CLINICWATCH_MAX_DEPTH": job.max_depth,
        "CLINICWATCH_MAX_PAGES": job.max_pages,
        "CLINICWATCH_SITE_ID": job.site_id,
        "CLINICWATCH_START_URL": job.start_url,
        # Politeness.
        "ROBOTSTXT_OBEY": job.obey_robots,
        "USER_AGENT": job.user_agent,
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY": job.download_delay,
        "CONCURRENT_REQUESTS_PER_DOMAIN": job.concurrency_per_domain,
        "COOKIES_ENABLED": False,
        # Limits: the spider enforces max_depth itself; DEPTH_LIMIT is the same bound as a net.
        "DEPTH_LIMIT": job.max_depth,
        "DOWNLOAD_MAXSIZE": job.max_page_bytes,
        # 0 = no warning below the limit; going over it is recorded as a failed snapshot anyway.
        "DOWNLOAD_WARNSIZE": 0,
        "DOWNLOAD_TIMEOUT": job.timeout,
        "RETRY_ENABLED": job.retries > 0,
        "RETRY_TIMES": job.retries,
        "RETRY_HTTP_CODES": RETRY_HTTP_CODES,
        "REDIRECT_MAX_TIMES": REDIRECT_MAX_TIMES,
        # Components.
        "DOWNLOADER_MIDDLEWARES": {
            # Before RobotsTxtMiddleware (100), so a refused host is not even asked for robots.txt.
            "crawler.middlewares.PrivateAddressMiddleware": 50,
            "crawler.middlewares.OffsiteRedirectMiddleware": 60,
        },
        "ITEM_PIPELINES": {"crawler.pipelines.SnapshotPipeline": 300},
        # The child is a batch job: no listening consoles, no control server.
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "LOG_LEVEL": "WARNING",
        "STATS_DUMP": False,
    }
