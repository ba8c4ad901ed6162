"""The crawl stage's parts on their own: URL rules, middlewares, settings, job, storage."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from scrapy import Request
from scrapy.settings import default_settings
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from claims_db.engine import open_database, session_scope
from claims_db.models import Content, Crawl, Page, Site, Snapshot
from crawler import settings as crawler_settings
from crawler.job import CrawlJob
from crawler.middlewares import (
    OffsiteRedirectMiddleware,
    OffsiteRedirectRefused,
    PrivateAddressMiddleware,
    PrivateAddressRefused,
    is_private_ip,
)
from crawler.pipelines import get_or_create_content, store_snapshot
from crawler.settings import crawl_settings
from crawler.snapshots import PageSnapshot
from crawler.spiders.site import SiteSpider
from crawler.urls import canonical_url, has_skipped_extension, same_site

JOB = CrawlJob("sqlite:///x.db", 7, 3, "http://127.0.0.1:8000/")


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://clinic.example/a#team", "http://clinic.example/a"),
        ("HTTP://Clinic.Example", "http://clinic.example/"),
        ("http://clinic.example/p?b=2&a=1#x", "http://clinic.example/p?b=2&a=1"),
        ("http://clinic.example/幹細胞", "http://clinic.example/%E5%B9%B9%E7%B4%B0%E8%83%9E"),
    ],
)
def test_canonical_url(url, expected):
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "site", "expected"),
    [
        ("http://www.clinic.example/a", "http://clinic.example/", True),
        ("http://clinic.example/a", "https://www.clinic.example/", True),
        ("https://clinic.example:443/a", "http://clinic.example/", True),
        ("http://127.0.0.1:8001/", "http://127.0.0.1:8000/", False),
        ("http://127.0.0.1/", "http://127.0.0.1:8000/", False),
        ("http://shop.clinic.example/", "http://clinic.example/", False),
        ("http://clinic.example.evil/", "http://clinic.example/", False),
        ("mailto:info@clinic.example", "http://clinic.example/", False),
        ("http://clinic.example:bad/", "http://clinic.example/", False),
    ],
)
def test_same_site(url, site, expected):
    assert same_site(url, site) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://c.example/brochure.PDF", True),
        ("http://c.example/photo.jpg?size=2", True),
        ("http://c.example/about.html", False),
        ("http://c.example/treatments/", False),
        ("http://c.example/news.php?id=3", False),
    ],
)
def test_has_skipped_extension(url, expected):
    assert has_skipped_extension(url) is expected


# ---------------------------------------------------------------- middlewares


def _private_middleware(start_url: str = "http://127.0.0.1:8000/"):
    crawler = get_crawler(SiteSpider, {"CLINICWATCH_START_URL": start_url})
    crawler.stats.open_spider()
    return build_from_crawler(PrivateAddressMiddleware, crawler), crawler.stats


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.0.0.1", True),
        ("192.168.1.1", True),
        ("172.16.5.4", True),
        ("169.254.169.254", True),
        ("127.0.0.2", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1", True),
        ("::ffff:10.0.0.1", True),
        ("93.184.215.14", False),
        ("2606:4700::6810:85e5", False),
    ],
)
def test_is_private_ip(address, private):
    assert is_private_ip(address) is private


def test_private_middleware_lets_the_site_own_loopback_host_through():
    middleware, stats = _private_middleware()
    assert asyncio.run(middleware.process_request(Request("http://127.0.0.1:8000/a"))) is None
    assert stats.get_value("clinicwatch/private_filtered") is None


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/", "http://[::1]:8000/", "http://localhost:8000/admin"]
)
def test_private_middleware_refuses_other_private_hosts(url):
    middleware, stats = _private_middleware()
    request = Request(url)
    assert middleware.should_follow(request) is False
    with pytest.raises(PrivateAddressRefused, match=r"private address '.+' not followed"):
        asyncio.run(middleware.process_request(request))
    assert stats.get_value("clinicwatch/private_filtered") == 1


def test_private_middleware_allows_public_ip_literals():
    middleware, _ = _private_middleware()
    assert middleware.should_follow(Request("http://93.184.215.14/")) is True


def test_offsite_redirect_middleware():
    crawler = get_crawler(SiteSpider, {"CLINICWATCH_START_URL": "http://clinic.example/"})
    crawler.stats.open_spider()
    middleware = build_from_crawler(OffsiteRedirectMiddleware, crawler)
    assert middleware.process_request(Request("https://www.clinic.example/x")) is None
    with pytest.raises(OffsiteRedirectRefused, match="redirect to another site not followed"):
        middleware.process_request(Request("http://elsewhere.example/"))
    assert crawler.stats.get_value("clinicwatch/offsite_redirects") == 1


# ---------------------------------------------------------------- job and settings


def test_job_round_trips_through_json():
    job = replace(JOB, max_pages=5, obey_robots=False)
    assert CrawlJob.from_json(job.to_json()) == job
    assert json.loads(job.to_json())["start_url"] == "http://127.0.0.1:8000/"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('{"crawl_id": 1, "colour": "blue"}', "unknown crawl job field(s): colour"),
        ('{"crawl_id": 1}', "invalid crawl job"),
    ],
)
def test_bad_job_json_is_a_clear_value_error(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CrawlJob.from_json(text)


def test_crawl_settings_carry_the_job():
    settings = crawl_settings(replace(JOB, obey_robots=False, retries=0, max_page_bytes=1000))
    assert settings["ROBOTSTXT_OBEY"] is False
    assert settings["RETRY_TIMES"] == 0 and settings["RETRY_ENABLED"] is False
    assert settings["DOWNLOAD_MAXSIZE"] == 1000
    assert settings["DEPTH_LIMIT"] == JOB.max_depth
    assert settings["CLINICWATCH_CRAWL_ID"] == 7 and settings["CLINICWATCH_SITE_ID"] == 3
    assert settings["COOKIES_ENABLED"] is False
    assert settings["TELNETCONSOLE_ENABLED"] is False


def test_disabled_scrapy_features_use_real_setting_names():
    # A misspelt name would silently leave the feature on.
    for name in ("REMOTE_CONTROL_ENABLED", "TELNETCONSOLE_ENABLED", "AUTOTHROTTLE_ENABLED"):
        assert hasattr(default_settings, name), name
        assert crawl_settings(JOB)[name] is False


def test_clinicwatch_defaults_are_alphabetical_and_all_set_by_crawl_settings():
    names = [name for name in vars(crawler_settings) if name.startswith("CLINICWATCH_")]
    assert names == sorted(names)
    assert set(names) <= set(crawl_settings(JOB))


# ---------------------------------------------------------------- storage


@pytest.fixture
def crawl_ids(database_url):
    engine = open_database(database_url)
    with session_scope(engine) as session:
        site = Site(name="aurora", url="http://127.0.0.1:8000/")
        session.add(site)
        session.flush()
        crawl = Crawl(site_id=site.id)
        session.add(crawl)
        session.flush()
        ids = site.id, crawl.id
    yield engine, *ids
    engine.dispose()


def test_content_is_stored_once_even_when_a_concurrent_insert_wins(crawl_ids, monkeypatch):
    engine, _, _ = crawl_ids
    with session_scope(engine) as session:
        first = get_or_create_content(session, b"<html>same</html>")
    # Pretend the look-up missed, as when another crawl inserts between look-up and insert.
    monkeypatch.setattr(Session, "get", lambda *args, **kwargs: None)
    with session_scope(engine) as session:
        second = get_or_create_content(session, b"<html>same</html>")
    monkeypatch.undo()
    assert first == second
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Content)) == 1


def test_store_snapshot_reuses_the_page_and_updates_last_seen(crawl_ids):
    engine, site_id, crawl_id = crawl_ids
    url = "http://127.0.0.1:8000/"
    with session_scope(engine) as session:
        store_snapshot(session, crawl_id, site_id, PageSnapshot(url=url, ok=True, body=b"<p>1</p>"))
    later = PageSnapshot(url=url, ok=False, status=500, error="HTTP 500")
    with session_scope(engine) as session:
        store_snapshot(session, crawl_id, site_id, later)
    with session_scope(engine) as session:
        (page,) = session.scalars(select(Page)).all()
        assert page.last_seen_at == later.fetched_at
        snapshots = session.scalars(select(Snapshot).order_by(Snapshot.id)).all()
        assert [(s.page_id, s.ok, s.error) for s in snapshots] == [
            (page.id, True, None),
            (page.id, False, "HTTP 500"),
        ]
        assert snapshots[1].content_sha256 is None
