"""Run a crawl in a child process: `run_crawl` in the parent, `main` in the child.

Scrapy's Twisted reactor cannot be restarted inside one process, so every crawl is a fresh
``python -m crawler.runner`` reading its CrawlJob as JSON on stdin. The child's exit code says
whether the crawl machinery worked; what each page did is in the snapshots it stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from claims_db.engine import make_engine, session_scope
from claims_db.models import Crawl
from crawler.job import CrawlJob, CrawlResult
from crawler.pipelines import count_snapshots

# Used when run_crawl gets no timeout: long enough for 200 polite pages, short enough to notice.
DEFAULT_CRAWL_TIMEOUT = 7200.0
# How much of the child's stderr a CrawlResult keeps when the child fails.
STDERR_TAIL_CHARS = 2000
PROJECT_ROOT = Path(__file__).resolve().parent.parent

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_BAD_JOB = 2
EXIT_DATABASE_ERRORS = 3


def run_crawl(job: CrawlJob, timeout: float | None = None) -> CrawlResult:
    """Run the crawl in a child process (`python -m crawler.runner`, job JSON on stdin) and wait.

    On timeout, kill the child. Never raises for site problems; returns what happened.
    Example: ``run_crawl(CrawlJob(url, crawl.id, site.id, "http://clinic.example/"), 600)``.
    """
    limit = DEFAULT_CRAWL_TIMEOUT if timeout is None else timeout
    child = subprocess.Popen(
        [sys.executable, "-m", "crawler.runner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    error: str | None = None
    try:
        _, stderr = child.communicate(job.to_json(), timeout=limit)
    except subprocess.TimeoutExpired:
        # Every stored page was committed already, so a hard kill loses no snapshot.
        child.kill()
        _, stderr = child.communicate()
        error = f"crawl timed out after {limit:g} s"
    if error is None and child.returncode != EXIT_OK:
        error = stderr.strip()[-STDERR_TAIL_CHARS:] or f"crawl exited with code {child.returncode}"
    return _result_from_database(job, child.returncode, error)


def _child_env() -> dict[str, str]:
    """The parent's environment, with this checkout first on the path so the child runs our code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


def _result_from_database(job: CrawlJob, returncode: int, error: str | None) -> CrawlResult:
    """Page counts come from the snapshots themselves: right even when the child was killed."""
    engine: Engine = make_engine(job.database_url)
    pages_ok, pages_failed, stats = 0, 0, {}
    try:
        with session_scope(engine) as session:
            pages_ok, pages_failed = count_snapshots(session, job.crawl_id)
            crawl = session.get(Crawl, job.crawl_id)
            stats = dict(crawl.stats or {}) if crawl is not None else {}
    except SQLAlchemyError as exc:
        problem = f"could not read the crawl's results: {exc}"
        error = f"{error}\n{problem}" if error else problem
    finally:
        engine.dispose()
    return CrawlResult(job.crawl_id, pages_ok, pages_failed, returncode, error, stats)


def crawl(job: CrawlJob) -> dict[str, Any]:
    """Run SiteSpider for `job` in this process (once per process) and return Scrapy's stats."""
    from scrapy.crawler import CrawlerProcess

    from crawler.settings import crawl_settings
    from crawler.spiders.site import SiteSpider

    process = CrawlerProcess(crawl_settings(job))
    crawler = process.create_crawler(SiteSpider)
    failures: list[Any] = []
    process.crawl(crawler).addErrback(failures.append)
    process.start()
    if failures:
        raise RuntimeError(f"crawl failed: {failures[0].getTraceback()}")
    return crawler.stats.get_stats() if crawler.stats else {}


def main() -> int:
    """Child entry point: read the job on stdin, crawl, exit 0 / 1 crashed / 2 bad job / 3 DB."""
    try:
        job = CrawlJob.from_json(sys.stdin.read())
    except ValueError as exc:
        print(f"clinicwatch crawler: bad crawl job on stdin: {exc}", file=sys.stderr)
        return EXIT_BAD_JOB
    try:
        stats = crawl(job)
    except Exception:  # the parent only sees the exit code and this stderr
        traceback.print_exc()
        return EXIT_CRASHED
    database_errors = stats.get("clinicwatch/database_errors", 0)
    if database_errors:
        print(
            f"clinicwatch crawler: {database_errors} database write(s) failed",
            file=sys.stderr,
        )
        return EXIT_DATABASE_ERRORS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
