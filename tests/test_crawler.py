"""The crawl stage end to end: a real crawl child against real HTTP servers on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, func, select

from claims_db.engine import open_database, session_scope
from claims_db.models import Content, Crawl, Page, Site, Snapshot
from crawler.encoding import decode_html
from crawler.job import CrawlJob
from crawler.runner import run_crawl
from tests.conftest import SITES, free_port

MAX_PAGE_BYTES = 16 * 1024
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# ---------------------------------------------------------------- servers


class RecordingServer(ThreadingHTTPServer):
    """A loopback HTTP server that counts the paths it was asked for."""

    daemon_threads = True
    request_queue_size = 64  # the default 5 drops SYNs when the crawler opens 8 connections

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1"):
        super().__init__((host, 0), handler)
        self.hits: Counter[str] = Counter()
        self.links: dict[str, str] = {}  # redirect targets that depend on other servers' ports

    def handle_error(self, request, client_address) -> None:
        pass  # the crawler hanging up on a slow or huge page is expected here

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class CountingHandler(BaseHTTPRequestHandler):
    """Answers everything with a small page, counting hits (to prove nobody connected)."""

    server: RecordingServer

    def do_GET(self) -> None:
        self.server.hits[urlsplit(self.path).path] += 1
        self.send(200, b"<html><body>should never be fetched</body></html>")

    def send(self, status: int, body: bytes, content_type: str = "text/html", **headers: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _html(body: str) -> bytes:
    return f"<!DOCTYPE html><html><body>{body}</body></html>".encode()


class TroubleSiteHandler(CountingHandler):
    """A clinic site where every page goes wrong in its own way."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.hits[path] += 1
        route = getattr(
            self,
            "page_" + path.strip("/").replace("-", "_").replace(".", "_").replace("/", "__"),
            None,
        )
        if path == "/":
            route = self.page_home
        if route is None:
            self.send(404, _html("<h1>Not found</h1>"))
        else:
            route()

    def page_home(self) -> None:
        links = "".join(f'<a href="/{name}">{name}</a>' for name in TROUBLE_PAGES)
        self.send(200, _html(links))

    def page_robots_txt(self) -> None:
        self.send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")

    def page_ok(self) -> None:
        self.send(200, _html("<p>Fine.</p>"), "text/html; charset=utf-8")

    def page_private__page(self) -> None:
        self.send(200, _html("<p>Robots said no.</p>"))

    def page_server_error(self) -> None:
        self.send(500, _html("<h1>Internal error</h1>"))

    def page_slow(self) -> None:
        time.sleep(2.5)
        self.send(200, _html("<p>Too late.</p>"))

    def page_report(self) -> None:
        self.send(200, PDF_BYTES, "application/pdf")

    def page_photo(self) -> None:
        self.send(200, PNG_BYTES, "image/png")

    def page_empty(self) -> None:
        self.send(200, b"", "text/html; charset=utf-8")

    def page_huge(self) -> None:
        self.send(200, _html("<p>big</p>" * (MAX_PAGE_BYTES // 4)))

    def page_huge_stream(self) -> None:
        # No Content-Length: the size is only known while reading, HTTP/1.0 close-delimited.
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        for _ in range(8):
            self.wfile.write(b"<p>" + b"x" * 4096 + b"</p>")

    def page_truncated(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "5000")
        self.end_headers()
        self.wfile.write(b"<html><body><p>cut off")

    def page_malformed(self) -> None:
        body = (
            b"<html><head><title>Broken</title><body><p>unclosed <b><i>tags <table><tr><td>cell"
            b"\xff\xfe\x00 stray bytes <a href='/malformed-target'>still a link</a>"
            b"<a href='http://[broken'>bad url</a><!-- unterminated comment"
        )
        self.send(200, body)

    def page_malformed_target(self) -> None:
        self.send(200, _html("<p>Reached through broken HTML.</p>"))

    def page_moved(self) -> None:
        self.send(302, b"", Location="/moved-target")

    def page_moved_target(self) -> None:
        self.send(200, _html("<p>New home.</p>"))

    def page_away(self) -> None:
        self.send(302, b"", Location=self.server.links["other_site"])

    def page_intranet(self) -> None:
        self.send(302, b"", Location="http://10.0.0.1/")

    def page_router(self) -> None:
        self.send(301, b"", Location="http://192.168.1.1/admin")

    def page_loopback2(self) -> None:
        self.send(302, b"", Location=self.server.links["loopback2"])

    def page_by_name(self) -> None:
        self.send(302, b"", Location=self.server.links["by_name"])


TROUBLE_PAGES = [
    "ok",
    "private/page",
    "not-found",
    "server-error",
    "slow",
    "report",
    "photo",
    "empty",
    "huge",
    "huge-stream",
    "truncated",
    "malformed",
    "moved",
    "away",
    "intranet",
    "router",
    "loopback2",
    "by-name",
]


def serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> RecordingServer:
    """Start a RecordingServer in a thread; the caller shuts it down."""
    server = RecordingServer(handler, host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def start_server() -> Iterator[Callable[..., RecordingServer]]:
    """Start RecordingServers in threads; all are shut down after the test."""
    servers: list[RecordingServer] = []

    def start(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> RecordingServer:
        servers.append(serve(handler, host))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- helpers


def new_crawl(database_url: str, start_url: str) -> tuple[Engine, int, int]:
    """Create the schema, a Site and a running Crawl, as the monitor does before crawling."""
    engine = open_database(database_url)
    with session_scope(engine) as session:
        site = session.scalars(select(Site).where(Site.url == start_url)).one_or_none()
        if site is None:
            site = Site(name=f"site-{urlsplit(start_url).port}", url=start_url)
            session.add(site)
            session.flush()
        crawl = Crawl(site_id=site.id, status="running")
        session.add(crawl)
        session.flush()
        return engine, site.id, crawl.id


def crawl_site(database_url: str, start_url: str, **options) -> tuple[Engine, CrawlJob, object]:
    """Run one real crawl child with test-friendly politeness; returns (engine, job, result)."""
    engine, site_id, crawl_id = new_crawl(database_url, start_url)
    parent_timeout = options.pop("parent_timeout", 60)
    # Four connections at a time: conftest's serve_dir server has a listen backlog of five.
    settings = {"download_delay": 0.0, "timeout": 2.0, "retries": 0, "concurrency_per_domain": 4}
    job = CrawlJob(database_url, crawl_id, site_id, start_url, **(settings | options))
    result = run_crawl(job, timeout=parent_timeout)
    return engine, job, result


def snapshots_by_path(engine: Engine, crawl_id: int) -> dict[str, Snapshot]:
    """The crawl's snapshots keyed by the path (plus query) of the page they belong to."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(Snapshot).where(Snapshot.crawl_id == crawl_id).join(Snapshot.page)
        ).all()
        result = {}
        for snapshot in rows:
            parts = urlsplit(snapshot.page.url)
            key = parts.path + (f"?{parts.query}" if parts.query else "")
            assert key not in result, f"two snapshots for {key}"
            result[key] = snapshot
            session.expunge(snapshot)
        return result


def body_of(engine: Engine, snapshot: Snapshot) -> bytes | None:
    with session_scope(engine) as session:
        content = session.get(Content, snapshot.content_sha256) if snapshot.content_sha256 else None
        return content.body if content else None


# ---------------------------------------------------------------- normal crawls


def test_same_site_crawl_records_every_page_once(serve_dir, sqlite_url):
    base = serve_dir(SITES / "crawl_basic")
    engine, job, result = crawl_site(sqlite_url, base, max_depth=10)

    pages = snapshots_by_path(engine, job.crawl_id)
    assert set(pages) == {
        "/",
        "/about.html",
        "/about.html?lang=ja",  # query kept; '#team' folded into about.html
        "/treatments/stem-cells.html",
        "/index.html",
        *(f"/depth{i}.html" for i in range(1, 6)),
    }
    assert all(snapshot.ok and snapshot.status == 200 for snapshot in pages.values())
    assert pages["/depth5.html"].depth == 5
    assert result.returncode == 0 and result.error is None
    assert (result.pages_ok, result.pages_failed) == (10, 0)
    # The brochure is skipped by extension, the press and partner links are other sites.
    assert result.stats["clinicwatch/skipped_extension_links"] >= 1
    assert result.stats["clinicwatch/offsite_links"] >= 2
    with session_scope(engine) as session:
        crawl = session.get(Crawl, job.crawl_id)
        assert (crawl.pages_ok, crawl.pages_failed, crawl.status) == (10, 0, "crawled")
        hosts = {urlsplit(url).netloc for url in session.scalars(select(Page.url))}
    assert hosts == {urlsplit(base).netloc}
    home = body_of(engine, pages["/"])
    assert home == (SITES / "crawl_basic" / "index.html").read_bytes()
    # "/" and "/index.html" are one body, stored once.
    assert pages["/"].content_sha256 == pages["/index.html"].content_sha256


def test_max_depth_stops_following_links(serve_dir, sqlite_url):
    base = serve_dir(SITES / "crawl_basic")
    engine, job, _ = crawl_site(sqlite_url, base, max_depth=2)

    pages = snapshots_by_path(engine, job.crawl_id)
    assert "/depth2.html" in pages
    assert "/depth3.html" not in pages
    assert max(snapshot.depth for snapshot in pages.values()) == 2


def test_max_pages_is_exact(serve_dir, sqlite_url):
    base = serve_dir(SITES / "crawl_basic")
    engine, job, result = crawl_site(sqlite_url, base, max_pages=3)

    assert len(snapshots_by_path(engine, job.crawl_id)) == 3
    assert result.pages_ok + result.pages_failed == 3


def test_shift_jis_page_without_declaration(serve_dir, sqlite_url):
    base = serve_dir(SITES / "crawl_sjis")
    engine, job, _ = crawl_site(sqlite_url, base)

    pages = snapshots_by_path(engine, job.crawl_id)
    assert set(pages) == {"/", "/access.html"}  # the link was read despite no declaration
    home = pages["/"]
    assert home.ok and home.declared_encoding is None
    raw = body_of(engine, home)
    assert raw == (SITES / "crawl_sjis" / "index.html").read_bytes()  # bytes kept as served
    text, encoding = decode_html(raw, home.content_type)
    assert encoding == "cp932"
    assert "厚生労働省に届出・受理" in text and "①" in text and "㈱髙橋" in text


# ---------------------------------------------------------------- failures


@pytest.fixture(scope="module")
def trouble_crawl(tmp_path_factory):
    """One crawl of the trouble site, shared by the tests below (a crawl child costs seconds).

    Yields (engine, snapshots by path, result, servers); the SQLite file is the module's own.
    """
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('trouble') / 'clinicwatch.db'}"
    site = serve(TroubleSiteHandler)
    other_site = serve(CountingHandler)
    loopback2 = serve(CountingHandler, host="127.0.0.2")
    port = site.server_address[1]
    site.links = {
        "other_site": other_site.url,
        "loopback2": loopback2.url,
        "by_name": f"http://localhost:{port}/reached-by-name",
    }
    engine, job, result = crawl_site(
        sqlite_url,
        site.url,
        timeout=1.0,
        retries=1,
        max_page_bytes=MAX_PAGE_BYTES,
        concurrency_per_domain=8,
    )
    servers = {"site": site, "other_site": other_site, "loopback2": loopback2}
    yield engine, snapshots_by_path(engine, job.crawl_id), result, servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


def test_every_trouble_page_is_one_failed_snapshot(trouble_crawl):
    _, pages, result, _ = trouble_crawl
    expected_errors = {
        "/private/page": "blocked by robots.txt",
        "/not-found": "HTTP 404",
        "/server-error": "HTTP 500",
        "/slow": "timeout",
        "/report": "not HTML: application/pdf",
        "/photo": "not HTML: image/png",
        "/empty": "empty body",
        "/huge": f"too large: over {MAX_PAGE_BYTES} bytes",
        "/huge-stream": f"too large: over {MAX_PAGE_BYTES} bytes",
    }
    for path, error in expected_errors.items():
        assert (pages[path].ok, pages[path].error) == (False, error), path
    assert pages["/truncated"].error.startswith("incomplete response")
    assert pages["/not-found"].status == 404
    assert pages["/server-error"].status == 500
    assert pages["/ok"].ok and pages["/ok"].declared_encoding == "utf-8"
    assert result.returncode == 0  # site problems are not crawl problems
    assert result.pages_failed == sum(not snapshot.ok for snapshot in pages.values())


def test_failed_fetches_store_no_partial_bodies(trouble_crawl):
    engine, pages, _, _ = trouble_crawl
    for path in ("/report", "/photo", "/empty", "/huge", "/huge-stream", "/truncated", "/slow"):
        assert pages[path].content_sha256 is None, path
    assert pages["/report"].content_type == "application/pdf"
    assert body_of(engine, pages["/not-found"]).startswith(b"<!DOCTYPE html>")


def test_retries_and_robots_are_applied(trouble_crawl):
    _, _, result, servers = trouble_crawl
    hits = servers["site"].hits
    assert hits["/server-error"] == 2  # retries=1: one more try
    assert hits["/private/page"] == 0  # robots.txt said no: never asked
    assert result.stats["robotstxt/forbidden"] == 1


def test_malformed_html_still_yields_links(trouble_crawl):
    _, pages, _, _ = trouble_crawl
    assert pages["/malformed"].ok
    assert pages["/malformed-target"].ok


def test_same_site_redirect_records_final_url(trouble_crawl):
    _, pages, _, servers = trouble_crawl
    moved = pages["/moved"]
    assert moved.ok and moved.status == 200
    assert moved.final_url == servers["site"].url + "moved-target"


def test_redirect_to_another_site_is_refused_and_recorded(trouble_crawl):
    _, pages, result, servers = trouble_crawl
    away = pages["/away"]
    assert not away.ok and away.status == 302
    assert away.error == f"redirect to another site not followed: {servers['other_site'].url}"
    assert servers["other_site"].hits.total() == 0
    assert result.stats["clinicwatch/offsite_redirects"] == 1


def test_redirect_to_private_address_is_refused_without_connecting(trouble_crawl):
    _, pages, result, servers = trouble_crawl
    assert pages["/intranet"].error == "private address not followed: http://10.0.0.1/"
    assert pages["/router"].error == "private address not followed: http://192.168.1.1/admin"
    assert pages["/router"].status == 301
    assert pages["/loopback2"].error.startswith("private address not followed: http://127.0.0.2:")
    assert pages["/by-name"].error.startswith("private address not followed: http://localhost:")
    # A connection attempt to 10.0.0.1 would have ended in "timeout", not a refusal; these
    # two servers prove it for addresses that would have answered.
    assert servers["loopback2"].hits.total() == 0
    assert servers["site"].hits["/reached-by-name"] == 0
    assert result.stats["clinicwatch/private_filtered"] == 4


def test_connection_refused_start_page(sqlite_url):
    start_url = f"http://127.0.0.1:{free_port()}/"
    engine, job, result = crawl_site(sqlite_url, start_url)

    (snapshot,) = snapshots_by_path(engine, job.crawl_id).values()
    assert (snapshot.ok, snapshot.error, snapshot.status) == (False, "connection refused", None)
    assert (result.pages_ok, result.pages_failed, result.returncode) == (0, 1, 0)


# ---------------------------------------------------------------- the child process


class HangingHandler(CountingHandler):
    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        time.sleep(30)


def test_parent_kills_a_crawl_that_runs_too_long(start_server, sqlite_url):
    server = start_server(HangingHandler)
    engine, job, result = crawl_site(
        sqlite_url, server.url, obey_robots=False, timeout=60.0, parent_timeout=1.5
    )

    assert result.returncode < 0  # killed by a signal
    assert result.error == "crawl timed out after 1.5 s"
    assert server.hits["/"] == 1  # it was really waiting on the page
    assert (result.pages_ok, result.pages_failed) == (0, 0)
    with session_scope(engine) as session:
        assert session.get(Crawl, job.crawl_id).status == "running"  # the parent decides


def test_child_rejects_a_bad_job_clearly():
    child = subprocess.run(
        [sys.executable, "-m", "crawler.runner"],
        input='{"crawl_id": 1, "colour": "blue"}',
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert child.returncode == 2
    assert "unknown crawl job field(s): colour" in child.stderr


def test_unreachable_database_is_reported_not_raised(serve_dir, tmp_path):
    base = serve_dir(SITES / "crawl_basic")
    dead_db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    job = CrawlJob(dead_db, 1, 1, base, max_pages=1, download_delay=0.0)

    result = run_crawl(job, timeout=60)

    assert result.returncode == 3
    assert "database write(s) failed" in result.error
    assert "could not read the crawl's results" in result.error
    assert (result.pages_ok, result.pages_failed) == (0, 0)


# ---------------------------------------------------------------- PostgreSQL


def test_crawl_into_postgresql_with_two_crawls_racing(serve_dir, postgres_url):
    base = serve_dir(SITES / "crawl_basic")
    engine, site_id, first = new_crawl(postgres_url, base)
    _, _, second = new_crawl(postgres_url, base)
    jobs = [
        CrawlJob(postgres_url, crawl_id, site_id, base, download_delay=0.0, max_depth=10)
        for crawl_id in (first, second)
    ]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda job: run_crawl(job, timeout=60), jobs))

    assert [(r.returncode, r.pages_ok, r.pages_failed) for r in results] == [(0, 10, 0)] * 2
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Page)) == 10
        distinct_bodies = session.scalar(select(func.count(func.distinct(Snapshot.content_sha256))))
        assert session.scalar(select(func.count()).select_from(Content)) == distinct_bodies
