"""Benchmark: crawl throughput and crawl-child start-up, on generated pages served on loopback.

Generates --pages linked HTML pages (~10 KB each, mixed English/Japanese clinic copy), serves
them from a threaded HTTP server on 127.0.0.1, and crawls them with `run_crawl` into a fresh
SQLite file, without politeness delay (the figure is the crawler's own cost, not the site's).
Prints the child start-up time (a crawl of one missing page: the floor of every crawl), then
pages/s over the whole run_crawl call and over the part after start-up.

    .venv/bin/python bench/crawl.py [--pages 50] [--concurrency 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from claims_db.engine import open_database, session_scope
from claims_db.models import Crawl, Site
from crawler.job import CrawlJob
from crawler.runner import run_crawl

COPY = [
    "<p>Symptoms improved in 62% of our ALS patients after three infusions.</p>",
    "<p>Our cells are processed in an FDA-registered laboratory.</p>",
    "<p>当院の治療は厚生労働省に届出・受理されています。</p>",
    "<p>治療後、多くの患者様で症状の改善が見られました。</p>",
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class BenchServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def write_site(root: Path, pages: int) -> None:
    """index.html plus pages 1..N-1; each page links to the index and its next five pages."""
    for number in range(pages):
        name = "index.html" if number == 0 else f"page{number}.html"
        links = "".join(
            f'<a href="page{target}.html">page {target}</a> '
            for target in range(number + 1, min(number + 6, pages))
        )
        filler = "".join(COPY[(number + i) % len(COPY)] for i in range(60))
        html = (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Page {number}</title>'
            f'</head><body><nav><a href="index.html">home</a> {links}</nav>{filler}</body></html>'
        )
        (root / name).write_text(html, encoding="utf-8")


def timed_crawl(
    database_url: str, start_url: str, pages: int, concurrency: int
) -> tuple[float, int]:
    """Run one crawl; returns (seconds, pages stored)."""
    engine = open_database(database_url)
    with session_scope(engine) as session:
        site = session.query(Site).filter_by(url=start_url).one_or_none()
        if site is None:
            site = Site(name=f"bench-{time.monotonic_ns()}", url=start_url)
            session.add(site)
            session.flush()
        crawl = Crawl(site_id=site.id)
        session.add(crawl)
        session.flush()
        job = CrawlJob(
            database_url,
            crawl.id,
            site.id,
            start_url,
            max_pages=pages,
            max_depth=pages,
            download_delay=0.0,
            concurrency_per_domain=concurrency,
            obey_robots=False,
        )
    engine.dispose()
    started = time.perf_counter()
    result = run_crawl(job, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"crawl failed: {result.error}")
    return elapsed, result.pages_ok + result.pages_failed


def main() -> None:
    """Print start-up time and pages/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        root.mkdir()
        write_site(root, args.pages)
        server = BenchServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}/"
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        try:
            startups = [
                timed_crawl(database_url, base + "missing.html", 1, 1)[0] for _ in range(args.runs)
            ]
            crawls = [
                timed_crawl(database_url, base, args.pages, args.concurrency)
                for _ in range(args.runs)
            ]
        finally:
            server.shutdown()
            server.server_close()

    startup = statistics.median(startups)
    seconds = statistics.median(elapsed for elapsed, _ in crawls)
    pages = crawls[0][1]
    print(f"child start-up (1-page crawl, median of {args.runs}): {startup:.2f} s")
    print(f"crawl of {pages} pages, concurrency {args.concurrency}: {seconds:.2f} s")
    print(f"pages/s including start-up: {pages / seconds:.1f}")
    if seconds > startup:
        print(f"pages/s after start-up:     {pages / (seconds - startup):.1f}")


if __name__ == "__main__":
    main()
