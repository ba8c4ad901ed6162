"""Alerts: events → outbox → a real SMTP server (aiosmtpd) or .eml files, on real databases."""

from __future__ import annotations

import email
import logging
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from claims_db.engine import open_database, session_scope
from claims_db.models import AlertOutbox, ChangeEvent, Claim, Page, Site
from monitor.alerts import alerts_command, deliver_pending, queue_alerts
from monitor.cli_support import CliContext
from monitor.config import Config, config_from_dict
from tests.conftest import SmtpRecorder, free_port

JA_OLD = "厚生労働省に届出・受理された安全な治療です。"
JA_NEW = "厚生労働省に届出・受理された、副作用のない安全な治療です。"
SCRIPT_TEXT = "Stem cells cure ALS <script>alert('x')</script> in 70% of patients."
SECRET = "s3cret-Pa55word-7f1c"


def make_config(
    *,
    database: str = "sqlite:///:memory:",
    port: int | None = None,
    file_dir: Path | None = None,
    subscribers: list[dict[str, Any]] | None = None,
    smtp_extra: dict[str, Any] | None = None,
) -> Config:
    alerts: dict[str, Any] = {
        "from": "alerts@clinicwatch.org",
        "subscribers": subscribers
        if subscribers is not None
        else [{"email": "watchdog@example.org"}],
    }
    if port is not None:
        alerts["smtp"] = {"host": "127.0.0.1", "port": port, "timeout": 2, **(smtp_extra or {})}
    if file_dir is not None:
        alerts["file_dir"] = str(file_dir)
    return config_from_dict(
        {
            "sites": [
                {"name": "aurora", "url": "http://127.0.0.1:1/"},
                {"name": "sakura", "url": "http://127.0.0.1:2/"},
            ],
            "database": database,
            "alerts": alerts,
        }
    )


def add_events(engine: Engine, specs: list[tuple[str, str, str, str, str | None]]) -> list[int]:
    """Store (site, event, category, text, old_text) as real rows; returns the event ids."""
    ids = []
    with session_scope(engine) as session:
        sites: dict[str, Site] = {}
        for site_name, kind, category, text, old_text in specs:
            if site_name not in sites:
                site = Site(name=site_name, url=f"https://{site_name}.example/")
                page = Page(site=site, url=f"https://{site_name}.example/treatments")
                session.add_all([site, page])
                sites[site_name] = site
            site = sites[site_name]
            page = site.pages[0]
            claim = Claim(
                site=site, page=page, category=category, key=text, text=text, url=page.url
            )
            event = ChangeEvent(
                site=site,
                claim=claim,
                event=kind,
                category=category,
                url=page.url,
                text=text,
                old_text=old_text,
            )
            session.add_all([claim, event])
            session.flush()
            ids.append(event.id)
    return ids


def queue(engine: Engine, cfg: Config, event_ids: list[int]) -> list[AlertOutbox]:
    with session_scope(engine) as session:
        return queue_alerts(session, cfg, event_ids)


def outbox(engine: Engine) -> list[AlertOutbox]:
    with session_scope(engine) as session:
        return list(session.scalars(select(AlertOutbox).order_by(AlertOutbox.id)))


def parse(data: str | bytes) -> EmailMessage:
    if isinstance(data, bytes):
        return email.message_from_bytes(data, policy=default_policy)  # type: ignore[return-value]
    return email.message_from_string(data, policy=default_policy)  # type: ignore[return-value]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


MIXED_EVENTS = [
    ("sakura", "changed", "registry_endorsement", JA_NEW, JA_OLD),
    ("aurora", "new", "efficacy_promise", SCRIPT_TEXT, None),
    ("aurora", "removed", "price", "$14,500 per infusion", None),
    ("aurora", "reclassified", "testimonial", "Reclassified sentence, never mailed.", None),
]


def test_alert_arrives_with_both_parts_escaped_html_and_japanese(database_url, smtp_server):
    recorder, port = smtp_server
    engine = open_database(database_url)
    cfg = make_config(port=port)
    ids = add_events(engine, MIXED_EVENTS)

    rows = queue(engine, cfg, ids)
    report = deliver_pending(engine, cfg)
    engine.dispose()

    assert len(rows) == 1 and rows[0].event_ids == ids[:3]  # reclassified is not alerted
    assert (report.sent, report.failed, report.stuck) == (1, 0, 0)
    [received] = recorder.messages
    assert received["to"] == ["watchdog@example.org"]
    message = parse(received["data"])
    assert message["Subject"] == "[clinicwatch] aurora, sakura: 1 new, 1 changed, 1 removed claims"
    assert message["Message-ID"].strip() == rows[0].message_id
    assert message["From"] == "alerts@clinicwatch.org"
    text, html = parts(message)
    assert f"was: {JA_OLD}" in text and f"now: {JA_NEW}" in text
    assert "<script>alert('x')</script>" in text  # plain text shows it verbatim, harmlessly
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert JA_OLD in html and JA_NEW in html
    assert "Reclassified sentence" not in text + html
    # Listing order: per site, then page; aurora's page comes before sakura's.
    assert text.index("== aurora") < text.index("== sakura")


def test_subscriber_filters_choose_rows_and_events(engine):
    cfg = make_config(
        port=free_port(),
        subscribers=[
            {"email": "all@example.org"},
            {"email": "sakura@example.org", "sites": ["sakura"]},
            {"email": "prices@example.org", "categories": ["price"]},
            {"email": "nobody@example.org", "sites": ["sakura"], "categories": ["price"]},
        ],
    )
    ids = add_events(engine, MIXED_EVENTS)

    rows = queue(engine, cfg, ids)

    assert {r.recipient: r.event_ids for r in rows} == {
        "all@example.org": ids[:3],
        "sakura@example.org": [ids[0]],
        "prices@example.org": [ids[2]],
    }
    prices = next(r for r in rows if r.recipient == "prices@example.org")
    assert "$14,500" in prices.body_text and JA_NEW not in prices.body_text
    assert prices.subject == "aurora: 1 removed claim"


@pytest.mark.parametrize(
    ("subscribers", "events"),
    [
        ([], MIXED_EVENTS),
        (None, []),
        (None, [MIXED_EVENTS[3]]),  # only a reclassification
    ],
    ids=["no-subscribers", "no-events", "only-reclassified"],
)
def test_nothing_to_alert_makes_no_rows(engine, subscribers, events):
    cfg = make_config(port=free_port(), subscribers=subscribers)
    assert queue(engine, cfg, add_events(engine, events)) == []
    assert outbox(engine) == []


def test_absent_server_keeps_row_pending_then_delivers_exactly_once(engine):
    from aiosmtpd.controller import Controller

    port = free_port()
    cfg = make_config(port=port)
    queue(engine, cfg, add_events(engine, MIXED_EVENTS))

    report = deliver_pending(engine, cfg)

    assert (report.sent, report.failed) == (0, 1)
    [row] = outbox(engine)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error and f"127.0.0.1:{port}" in row.last_error

    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        first = deliver_pending(engine, cfg)
        second = deliver_pending(engine, cfg)
    finally:
        controller.stop()

    assert (first.sent, second.sent, second.failed) == (1, 0, 0)
    assert len(recorder.messages) == 1
    [row] = outbox(engine)
    assert row.status == "sent" and row.sent_at is not None and row.last_error is None
    assert row.attempts == 2


class RefusingHandler:
    """An SMTP server that takes the envelope, then refuses the message."""

    async def handle_DATA(self, server, session, envelope):
        return "554 5.7.1 Message rejected as spam"


def test_refused_message_goes_back_to_pending(engine):
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(RefusingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    cfg = make_config(port=port)
    queue(engine, cfg, add_events(engine, MIXED_EVENTS))
    try:
        report = deliver_pending(engine, cfg)
    finally:
        controller.stop()

    assert (report.sent, report.failed) == (0, 1)
    [row] = outbox(engine)
    assert row.status == "pending" and row.attempts == 1
    assert "554" in (row.last_error or "") and "rejected as spam" in (row.last_error or "")


def test_silent_server_times_out_and_row_stays_pending(engine):
    with socket.socket() as listener:  # accepts connections but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        cfg = make_config(port=listener.getsockname()[1], smtp_extra={"timeout": 0.3})
        queue(engine, cfg, add_events(engine, MIXED_EVENTS))
        report = deliver_pending(engine, cfg)

    assert (report.sent, report.failed) == (0, 1)
    [row] = outbox(engine)
    assert row.status == "pending" and "timed out" in (row.last_error or "")


def test_row_left_in_sending_is_reported_not_resent(engine, smtp_server, sqlite_url):
    recorder, port = smtp_server
    cfg = make_config(port=port, database=sqlite_url)
    ids = add_events(engine, MIXED_EVENTS)
    [stuck] = queue(engine, cfg, ids[:1])
    queue(engine, cfg, ids[1:])
    with session_scope(engine) as session:  # as a process killed mid-send leaves it
        session.get(AlertOutbox, stuck.id).status = "sending"

    report = deliver_pending(engine, cfg)

    assert (report.sent, report.stuck) == (1, 1)
    assert f"alert {stuck.id} " in report.errors[0] and "--requeue" in report.errors[0]
    assert len(recorder.messages) == 1
    assert [r.status for r in outbox(engine)] == ["sending", "sent"]

    result = CliRunner().invoke(
        alerts_command,
        ["--requeue", str(stuck.id), "--retry", "--format", "jsonl"],
        obj=_cli_context(cfg),
    )
    assert result.exit_code == 0, result.output
    assert len(recorder.messages) == 2
    assert [r.status for r in outbox(engine)] == ["sent", "sent"]


def test_oldest_pending_rows_are_sent_first(engine, smtp_server):
    recorder, port = smtp_server
    cfg = make_config(port=port)
    ids = add_events(engine, MIXED_EVENTS)
    first = queue(engine, cfg, ids[:1])
    second = queue(engine, cfg, ids[1:2])

    assert deliver_pending(engine, cfg).sent == 2

    received_ids = [parse(m["data"])["Message-ID"].strip() for m in recorder.messages]
    assert received_ids == [first[0].message_id, second[0].message_id]


def test_file_dir_mode_writes_eml_files(engine, tmp_path):
    out = tmp_path / "outbox"
    cfg = make_config(file_dir=out)
    [row] = queue(engine, cfg, add_events(engine, MIXED_EVENTS))

    report = deliver_pending(engine, cfg)

    assert report.sent == 1
    written = out / f"{row.id}.eml"
    assert sorted(p.name for p in out.iterdir()) == [written.name]
    message = parse(written.read_bytes())
    assert message["To"] == "watchdog@example.org"
    text, html = parts(message)
    assert JA_NEW in text and "&lt;script&gt;" in html
    assert outbox(engine)[0].status == "sent"


def _auth_controller(port: int, recorder: SmtpRecorder, password: str):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"watch" and auth_data.password == password.encode()
        return AuthResult(success=ok, handled=False)

    return Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )


def test_password_is_used_but_never_logged_or_stored(engine, monkeypatch, caplog, tmp_path):
    port = free_port()
    recorder = SmtpRecorder()
    controller = _auth_controller(port, recorder, "right-password-only")
    controller.start()
    auth = {"username": "watch", "password_env": "CW_TEST_SMTP_PASSWORD"}
    cfg = make_config(port=port, smtp_extra=auth)
    queue(engine, cfg, add_events(engine, MIXED_EVENTS))
    caplog.set_level(logging.DEBUG, logger="monitor")
    try:
        monkeypatch.setenv("CW_TEST_SMTP_PASSWORD", SECRET)
        refused = deliver_pending(engine, cfg)
        stored_after_refusal = " ".join(str(vars(row)) for row in outbox(engine))
        monkeypatch.setenv("CW_TEST_SMTP_PASSWORD", "right-password-only")
        accepted = deliver_pending(engine, cfg)
    finally:
        controller.stop()

    assert refused.failed == 1 and "535" in refused.errors[0]
    assert "535" in stored_after_refusal and SECRET not in stored_after_refusal
    assert accepted.sent == 1 and len(recorder.messages) == 1
    assert "alert 1 sent" in caplog.text
    assert SECRET not in caplog.text and SECRET not in " ".join(refused.errors)
    database_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("clinicwatch.db*"))
    assert SECRET.encode() not in database_bytes


def _cli_context(cfg: Config) -> CliContext:
    context = CliContext(None)
    context._config = cfg  # the command reads the config through the context
    return context


def test_alerts_command_lists_rows_as_jsonl(engine, sqlite_url):
    cfg = make_config(port=free_port(), database=sqlite_url)
    [row] = queue(engine, cfg, add_events(engine, MIXED_EVENTS))

    result = CliRunner().invoke(
        alerts_command, ["--format", "jsonl", "--status", "pending"], obj=_cli_context(cfg)
    )

    assert result.exit_code == 0, result.output
    [line] = [parse_json(x) for x in result.stdout.splitlines()]
    assert line["id"] == row.id and line["status"] == "pending"
    assert line["recipient"] == "watchdog@example.org" and line["event_ids"] == row.event_ids


def parse_json(line: str) -> dict[str, Any]:
    import json

    return json.loads(line)


def test_concurrent_deliveries_send_each_alert_once(engine, smtp_server):
    import threading

    recorder, port = smtp_server
    cfg = make_config(port=port, subscribers=[{"email": f"w{i}@example.org"} for i in range(8)])
    ids = add_events(engine, MIXED_EVENTS)
    rows = queue(engine, cfg, ids[:1]) + queue(engine, cfg, ids[1:2])
    reports = []
    threads = [
        threading.Thread(target=lambda: reports.append(deliver_pending(engine, cfg)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    received = sorted(parse(m["data"])["Message-ID"].strip() for m in recorder.messages)
    assert received == sorted(row.message_id for row in rows)
    assert sum(r.sent for r in reports) == 16 and sum(r.stuck for r in reports) == 0
