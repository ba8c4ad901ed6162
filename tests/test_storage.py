"""The schema migrates and round-trips on SQLite and on PostgreSQL."""

from sqlalchemy import inspect, select

from claims_db.engine import open_database, session_scope
from claims_db.models import Content, Crawl, Page, Site, Snapshot


def test_migrations_create_every_table(database_url):
    engine = open_database(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {
        "sites",
        "crawls",
        "pages",
        "contents",
        "snapshots",
        "claims",
        "change_events",
        "alert_outbox",
        "users",
        "reviews",
        "extractions",
    } <= tables
    # Running the migration again is a no-op, not an error.
    open_database(database_url)


def test_snapshot_round_trip_keeps_bytes_and_timezone(database_url):
    engine = open_database(database_url)
    body = "厚生労働省に届出".encode("cp932")
    with session_scope(engine) as s:
        site = Site(name="aurora", url="http://127.0.0.1/")
        crawl = Crawl(site=site)
        page = Page(site=site, url="http://127.0.0.1/")
        s.add_all([site, crawl, page, Content(sha256="a" * 64, body=body, size=len(body))])
        s.flush()
        s.add(
            Snapshot(
                crawl_id=crawl.id,
                page_id=page.id,
                ok=True,
                status=200,
                content_sha256="a" * 64,
                declared_encoding="shift_jis",
            )
        )
    with session_scope(engine) as s:
        snap = s.scalars(select(Snapshot)).one()
        assert snap.content.body == body
        assert snap.fetched_at.tzinfo is not None
