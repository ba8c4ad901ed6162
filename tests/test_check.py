"""The check cycle end to end: a real loopback site, a real crawl child process, a real database.

Each test takes a baseline, edits the served files, checks again and reads the events back the way
a user would (`clinicwatch changes --format jsonl`).
"""

from __future__ import annotations

import email
import email.policy
import json
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from claims_db.engine import open_database, session_scope
from claims_db.models import AlertOutbox, Content, Extraction, Snapshot
from monitor.check import check
from monitor.cli import cli
from monitor.config import load_config

FAILING: dict[str, int] = {}  # path → HTTP status the server answers instead of the file


class FlakyHandler(SimpleHTTPRequestHandler):
    """Static files, except the paths a test marks as failing."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status = FAILING.get(self.path)
        if status:
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Internal error</body></html>")
            return
        super().do_GET()


@pytest.fixture(autouse=True)
def _reset_failures():
    FAILING.clear()
    yield
    FAILING.clear()


@pytest.fixture
def clinic(tmp_path, copy_site, serve_dir):
    """The fixture clinic served on loopback: (folder to edit, its URL)."""
    root = copy_site("clinic_en")
    return root, serve_dir(root, FlakyHandler)


def make_config(tmp_path: Path, url: str, database: str, **alerts) -> Path:
    config = {
        "database": database,
        "sites": [{"name": "renova", "url": url, "country": "MX"}],
        "crawl": {"download_delay": 0, "timeout": 5, "retries": 0},
    }
    if alerts:
        config["alerts"] = alerts
    path = tmp_path / "clinicwatch.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def cli_jsonl(config: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def plain_text(message: dict) -> str:
    """The text/plain part of a received e-mail, decoded."""
    parsed = email.message_from_string(message["data"], policy=email.policy.default)
    return parsed.get_body(preferencelist=("plain",)).get_content()


def edit(root: Path, page: str, old: str, new: str) -> None:
    path = root / page
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {page}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_second_check_reports_new_changed_removed_and_ignores_noise(tmp_path, clinic, database_url):
    root, url = clinic
    config = make_config(tmp_path, url, database_url)
    assert CliRunner().invoke(cli, ["--config", str(config), "check"]).exit_code == 0
    assert cli_jsonl(config, "changes") == []  # the baseline alerts nothing
    baseline_claims = cli_jsonl(config, "claims")
    assert {"efficacy_promise", "registry_endorsement"} <= {c["category"] for c in baseline_claims}

    edit(root, "index.html", "60% of ALS patients", "70% of ALS patients")
    edit(
        root,
        "knee.html",
        "<p>Our stem cell injections repair damaged cartilage in the knee.</p>",
        "",
    )
    edit(
        root,
        "knee.html",
        "</main>",
        "<p>Our laboratory is certified by the Ministry of Health of Mexico (COFEPRIS).</p></main>",
    )
    for page in ("index.html", "als.html", "knee.html"):
        edit(root, page, "© 2025", "© 2026")
    edit(root, "knee.html", "3 March 2025", "9 November 2026")

    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output
    events = {(e["event"], e["category"]): e for e in cli_jsonl(config, "changes")}
    assert set(events) == {
        ("changed", "efficacy_promise"),
        ("removed", "efficacy_promise"),
        ("new", "registry_endorsement"),
    }
    changed = events["changed", "efficacy_promise"]
    assert "60% of ALS patients" in changed["old_text"] and "70% of ALS" in changed["text"]
    assert changed["url"] == url and changed["site"] == "renova"
    assert "cartilage" in events["removed", "efficacy_promise"]["text"]
    assert "COFEPRIS" in events["new", "registry_endorsement"]["text"]
    for event in events.values():
        assert {"id", "event", "category", "site", "url", "text", "old_text", "detected_at"} <= set(
            event
        )


def test_footer_claim_is_one_claim_of_the_site(tmp_path, clinic, sqlite_url):
    _, url = clinic
    config = make_config(tmp_path, url, sqlite_url)
    check(load_config(config))
    fda = [c for c in cli_jsonl(config, "claims") if "FDA registered" in c["text"]]
    assert len(fda) == 1
    assert fda[0]["scope"] == "site"
    assert sorted(fda[0]["pages"]) == sorted([url, url + "als.html", url + "knee.html"])
    assert {"id", "category", "site", "url", "text", "lang"} <= set(fda[0])


def test_failed_fetch_never_removes_claims(tmp_path, clinic, sqlite_url):
    root, url = clinic
    config = make_config(tmp_path, url, sqlite_url)
    cfg = load_config(config)
    check(cfg)
    before = {c["id"] for c in cli_jsonl(config, "claims")}
    FAILING["/knee.html"] = 500
    FAILING["/als.html"] = 503
    report = check(cfg)
    assert report.sites[0].pages_failed == 2
    FAILING["/"] = 500  # now nothing at all can be fetched
    report = check(cfg)
    assert report.sites[0].status == "failed" and "HTTP 500" in report.sites[0].error
    (root / "knee.html").unlink()  # a 404 is a failed fetch too
    FAILING.clear()
    check(cfg)
    assert cli_jsonl(config, "changes") == []
    assert {c["id"] for c in cli_jsonl(config, "claims")} == before


def test_unchanged_pages_cost_no_extraction(tmp_path, clinic, sqlite_url):
    _, url = clinic
    cfg = load_config(make_config(tmp_path, url, sqlite_url))
    check(cfg)
    engine = open_database(cfg.database)
    with session_scope(engine) as s:
        extractions = s.scalar(select(func.count()).select_from(Extraction))
    check(cfg)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Extraction)) == extractions
        # ...and each distinct body was stored once, shared by both crawls' snapshots.
        shas = s.scalars(select(Snapshot.content_sha256).where(Snapshot.ok.is_(True))).all()
        stored = s.scalar(select(func.count()).select_from(Content))
        assert stored == len(set(shas)) and len(shas) >= 2 * stored


def test_alerts_after_a_change_reach_every_subscriber_once(
    tmp_path, clinic, sqlite_url, smtp_server
):
    recorder, port = smtp_server
    root, url = clinic
    config = make_config(
        tmp_path,
        url,
        sqlite_url,
        smtp={"host": "127.0.0.1", "port": port},
        **{"from": "alerts@example.org"},
        subscribers=[{"email": "watchdog@example.org"}, {"email": "ngo@example.org"}],
    )
    cfg = load_config(config)
    check(cfg)
    assert recorder.messages == []  # baseline: nothing alerted
    edit(root, "index.html", "60% of ALS patients", "75% of ALS patients")
    check(cfg)
    assert sorted(m["to"][0] for m in recorder.messages) == [
        "ngo@example.org",
        "watchdog@example.org",
    ]
    assert all("75% of ALS patients" in plain_text(m) for m in recorder.messages)
    check(cfg)  # nothing new: nothing sent again
    assert len(recorder.messages) == 2


def test_dead_smtp_server_loses_no_alert(tmp_path, clinic, sqlite_url, smtp_server):
    from tests.conftest import free_port

    recorder, live_port = smtp_server
    root, url = clinic
    dead = {"host": "127.0.0.1", "port": free_port(), "timeout": 2}
    alerts = {"from": "alerts@example.org", "subscribers": [{"email": "watchdog@example.org"}]}
    config = make_config(tmp_path, url, sqlite_url, smtp=dead, **alerts)
    check(load_config(config))
    edit(root, "index.html", "60% of ALS patients", "80% of ALS patients")
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output
    assert "1 waiting to be retried" in result.output
    engine = open_database(load_config(config).database)
    with session_scope(engine) as s:
        row = s.scalars(select(AlertOutbox)).one()
        assert row.status == "pending" and row.last_error
    config = make_config(
        tmp_path, url, sqlite_url, smtp={"host": "127.0.0.1", "port": live_port}, **alerts
    )
    check(load_config(config))
    check(load_config(config))
    assert len(recorder.messages) == 1 and "80% of ALS patients" in plain_text(recorder.messages[0])


def test_scheduler_runs_real_checks_and_stops_cleanly(tmp_path, clinic, sqlite_url):
    import threading
    import time

    from claims_db.models import Crawl
    from monitor.scheduler import run_scheduler

    _, url = clinic
    cfg = load_config(make_config(tmp_path, url, sqlite_url))
    engine = open_database(cfg.database)
    stop = threading.Event()
    runner = threading.Thread(target=run_scheduler, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    runner.start()
    done = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done:
            time.sleep(0.5)
            with session_scope(engine) as s:
                done = s.scalar(select(func.count(Crawl.id)).where(Crawl.status == "done"))
    finally:
        stop.set()
        runner.join(timeout=60)
    assert not runner.is_alive()
    assert done == 1  # a new site's first check runs at once; the next one is a day away
    assert cli_jsonl(make_config(tmp_path, url, sqlite_url), "claims")


def test_events_of_a_check_that_died_before_queuing_are_alerted_by_the_next(
    tmp_path, clinic, sqlite_url
):
    from datetime import timedelta

    from claims_db.models import ChangeEvent
    from monitor.alerts import deliver_pending

    root, url = clinic
    alerts = {"file_dir": "outbox", "subscribers": [{"email": "watchdog@example.org"}]}
    cfg = load_config(make_config(tmp_path, url, sqlite_url, **alerts))
    check(cfg)
    edit(root, "index.html", "60% of ALS patients", "65% of ALS patients")
    # A check that dies after storing its events and before queuing their alert:
    from monitor import alerts as alerts_module

    real_queue = alerts_module.queue_alerts
    alerts_module.queue_alerts = lambda session, cfg, ids: []
    try:
        check(cfg)
    finally:
        alerts_module.queue_alerts = real_queue
    engine = open_database(cfg.database)
    with session_scope(engine) as s:
        for event in s.scalars(select(ChangeEvent)):
            event.detected_at -= timedelta(hours=1)
    deliver_pending(engine, cfg)
    assert not list((tmp_path / "outbox").glob("*.eml"))
    check(cfg)  # the next check finds the orphaned event and alerts it, once
    check(cfg)
    (mail,) = (tmp_path / "outbox").glob("*.eml")
    assert "65% of ALS patients" in mail.read_text(encoding="utf-8", errors="replace")


def test_site_claim_is_not_removed_when_every_page_it_stood_on_failed(tmp_path, clinic, sqlite_url):
    root, url = clinic
    sidebar = "</main><aside><p>Our cell laboratory is licensed by COFEPRIS.</p></aside>"
    for page in ("als.html", "knee.html"):
        edit(root, page, "</main>", sidebar)
    cfg = load_config(make_config(tmp_path, url, sqlite_url))
    check(cfg)
    (licensed,) = [
        c for c in cli_jsonl(tmp_path / "clinicwatch.yaml", "claims") if "COFEPRIS" in c["text"]
    ]
    assert licensed["scope"] == "site"
    FAILING["/als.html"] = 500
    FAILING["/knee.html"] = 500
    check(cfg)
    assert cli_jsonl(tmp_path / "clinicwatch.yaml", "changes") == []
    FAILING.clear()
    for page in ("als.html", "knee.html"):
        edit(root, page, sidebar, "</main>")
    check(cfg)  # now the pages were read and lack it: removed, once
    assert [
        (e["event"], e["claim_id"]) for e in cli_jsonl(tmp_path / "clinicwatch.yaml", "changes")
    ] == [("removed", licensed["id"])]
