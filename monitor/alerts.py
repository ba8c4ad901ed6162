"""Alerts: change events → outbox rows (one per matching subscriber) → e-mail.

`queue_alerts` renders the e-mails inside the check's transaction, so an alert exists exactly when
its events do. `deliver_pending` sends what is pending in separate short transactions: a row is
marked ``sending`` and committed before the SMTP transaction and ``sent`` right after, so a crash
can at worst leave one row in ``sending`` (reported, never resent blindly) — never a duplicate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, joinedload

from claims_db.engine import open_database, session_scope
from claims_db.models import AlertOutbox, ChangeEvent, utcnow
from monitor.cli_support import emit_rows, output_format, pass_config
from monitor.config import Config, SubscriberConfig
from monitor.mailer import (
    FileTransport,
    MailerError,
    SmtpTransport,
    build_message,
    make_message_id,
)

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
# A site redesign can produce thousands of events; list this many and count the rest.
MAX_LISTED_EVENTS = 300
# Claim sentences are short; a longer "sentence" is a page without punctuation, so cut it.
MAX_TEXT_CHARS = 1500
ALERTED_EVENTS = ("new", "changed", "removed")
# Unqueued events younger than this may belong to a check still running in another process.
ORPHAN_AGE = timedelta(minutes=10)
STATUSES = ("pending", "sending", "sent")
# The scheduler runs several checks at once in one process and each ends by delivering; one at a
# time keeps a sibling thread's in-flight row from being reported as stuck.
_delivery_lock = threading.Lock()

_templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=lambda name: bool(name and name.endswith(".html.j2")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass
class DeliveryReport:
    """What one `deliver_pending` run did; `errors` are one readable line per problem."""

    sent: int = 0
    failed: int = 0
    stuck: int = 0
    errors: list[str] = field(default_factory=list)


# --- queueing ----------------------------------------------------------------------------------


def _load_events(session: Session, event_ids: Sequence[int]) -> list[ChangeEvent]:
    if not event_ids:
        return []
    query = (
        select(ChangeEvent)
        .where(
            ChangeEvent.id.in_(list(event_ids)),
            ChangeEvent.event.in_(ALERTED_EVENTS),
            ChangeEvent.queued_at.is_(None),
        )
        .options(joinedload(ChangeEvent.site), joinedload(ChangeEvent.claim))
    )
    events = list(session.scalars(query))
    events.sort(key=lambda e: (e.site.name, e.url, e.id))
    return events


def _matches(subscriber: SubscriberConfig, event: ChangeEvent) -> bool:
    if subscriber.sites is not None and event.site.name not in subscriber.sites:
        return False
    return subscriber.categories is None or event.category in subscriber.categories


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text
    return text[: MAX_TEXT_CHARS - 1] + "…"


def _event_view(event: ChangeEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "event": event.event,
        "category": event.category,
        "text": _clip(event.text),
        "old_text": _clip(event.old_text),
        "hedged": bool(event.claim.hedged) if event.claim is not None else False,
    }


def _grouped(events: Sequence[ChangeEvent]) -> list[dict[str, Any]]:
    """Events (sorted by site, url) as ``[{name, url, pages: [{url, events}]}]``."""
    sites: list[dict[str, Any]] = []
    for event in events:
        if not sites or sites[-1]["name"] != event.site.name:
            sites.append({"name": event.site.name, "url": event.site.url, "pages": []})
        pages = sites[-1]["pages"]
        if not pages or pages[-1]["url"] != event.url:
            pages.append({"url": event.url, "events": []})
        pages[-1]["events"].append(_event_view(event))
    return sites


def _subject(events: Sequence[ChangeEvent]) -> str:
    names = list(dict.fromkeys(e.site.name for e in events))
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    counts = {kind: sum(e.event == kind for e in events) for kind in ALERTED_EVENTS}
    parts = [f"{n} {kind}" for kind, n in counts.items() if n]
    noun = "claim" if len(events) == 1 else "claims"
    return f"{shown}: {', '.join(parts)} {noun}"


def _filters_note(subscriber: SubscriberConfig) -> str:
    notes = []
    if subscriber.sites is not None:
        notes.append("sites " + ", ".join(subscriber.sites))
    if subscriber.categories is not None:
        notes.append("categories " + ", ".join(subscriber.categories))
    return "; ".join(notes)


def render_alert(subscriber: SubscriberConfig, events: Sequence[ChangeEvent]) -> dict[str, str]:
    """Subject, plain-text and HTML bodies of one alert listing `events` (sorted by site, url)."""
    listed = events[:MAX_LISTED_EVENTS]
    context = {
        "subject": _subject(events),
        "sites": _grouped(listed),
        "total": len(events),
        "omitted": len(events) - len(listed),
        "recipient": str(subscriber.email),
        "filters": _filters_note(subscriber),
        "event_ids": sorted(e.id for e in events),
    }
    return {
        "subject": context["subject"],
        "body_text": _templates.get_template("alert.txt.j2").render(context),
        "body_html": _templates.get_template("alert.html.j2").render(context),
    }


def queue_alerts(session: Session, cfg: Config, event_ids: Sequence[int]) -> list[AlertOutbox]:
    """One outbox row per subscriber whose filters match at least one of the events.

    ``reclassified`` events are never alerted. No subscribers or no events → no rows. The events
    are marked queued; the rows are added and flushed (they have ids); the caller commits.
    """
    events = _load_events(session, event_ids)
    queued_at = utcnow()
    for event in events:
        event.queued_at = queued_at
    rows: list[AlertOutbox] = []
    for subscriber in cfg.alerts.subscribers if events else []:
        matching = [e for e in events if _matches(subscriber, e)]
        if not matching:
            continue
        rendered = render_alert(subscriber, matching)
        rows.append(
            AlertOutbox(
                recipient=str(subscriber.email),
                event_ids=sorted(e.id for e in matching),
                message_id=make_message_id(str(cfg.alerts.sender)),
                status="pending",
                attempts=0,
                **rendered,
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


def unqueued_event_ids(session: Session, older_than: timedelta = ORPHAN_AGE) -> list[int]:
    """Alertable events a dead check stored but never queued (old enough not to be in flight)."""
    query = select(ChangeEvent.id).where(
        ChangeEvent.queued_at.is_(None),
        ChangeEvent.event.in_(ALERTED_EVENTS),
        ChangeEvent.detected_at < utcnow() - older_than,
    )
    return list(session.scalars(query.order_by(ChangeEvent.id)))


# --- delivery ----------------------------------------------------------------------------------


def _stuck_rows(engine: Engine) -> list[tuple[int, str]]:
    with session_scope(engine) as session:
        query = select(AlertOutbox.id, AlertOutbox.recipient).where(AlertOutbox.status == "sending")
        return [(row.id, row.recipient) for row in session.execute(query.order_by(AlertOutbox.id))]


def _pending_ids(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        query = select(AlertOutbox.id).where(AlertOutbox.status == "pending")
        return list(session.scalars(query.order_by(AlertOutbox.created_at, AlertOutbox.id)))


def _claim(engine: Engine, row_id: int) -> AlertOutbox | None:
    """pending → sending, committed; None when another process got there first."""
    with session_scope(engine) as session:
        result = session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id == row_id, AlertOutbox.status == "pending")
            .values(status="sending", attempts=AlertOutbox.attempts + 1)
        )
        if result.rowcount != 1:
            return None
        return session.get(AlertOutbox, row_id)


def _finish(engine: Engine, row_id: int, error: str | None) -> None:
    """sending → sent, or back to pending with the error."""
    values: dict[str, Any] = (
        {"status": "sent", "sent_at": utcnow(), "last_error": None}
        if error is None
        else {"status": "pending", "last_error": error}
    )
    with session_scope(engine) as session:
        session.execute(update(AlertOutbox).where(AlertOutbox.id == row_id).values(**values))


def _fail_untried(engine: Engine, row_ids: Sequence[int], error: str) -> int:
    """Rows that could not even be tried (server unreachable) count an attempt and the error."""
    with session_scope(engine) as session:
        result = session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id.in_(list(row_ids)), AlertOutbox.status == "pending")
            .values(attempts=AlertOutbox.attempts + 1, last_error=error)
        )
        return int(result.rowcount or 0)


def _send_one(transport: SmtpTransport | FileTransport, cfg: Config, row: AlertOutbox) -> None:
    message = build_message(
        cfg.alerts,
        recipient=row.recipient,
        subject=row.subject,
        body_text=row.body_text,
        body_html=row.body_html,
        message_id=row.message_id or make_message_id(str(cfg.alerts.sender)),
    )
    if isinstance(transport, FileTransport):
        transport.write(message, str(row.id))
    else:
        transport.send(message)


def _deliver_all(
    engine: Engine, cfg: Config, transport: SmtpTransport | FileTransport, report: DeliveryReport
) -> None:
    pending = _pending_ids(engine)
    for index, row_id in enumerate(pending):
        if isinstance(transport, SmtpTransport):
            try:
                transport.connect()
            except MailerError as exc:
                # The server is not there: do not knock once per row, and never mark `sending`.
                report.failed += _fail_untried(engine, pending[index:], str(exc))
                report.errors.append(str(exc))
                logger.warning("alerts not sent, will retry: %s", exc)
                return
        row = _claim(engine, row_id)
        if row is None:
            continue
        try:
            _send_one(transport, cfg, row)
        except (MailerError, ValueError) as exc:
            _finish(engine, row_id, str(exc))
            report.failed += 1
            report.errors.append(f"alert {row_id} to {row.recipient}: {exc}")
            logger.warning("alert %d to %s not sent, will retry: %s", row_id, row.recipient, exc)
            continue
        _finish(engine, row_id, None)
        report.sent += 1
        logger.info("alert %d sent to %s", row_id, row.recipient)


def deliver_pending(engine: Engine, cfg: Config) -> DeliveryReport:
    """Send every pending outbox row, oldest first; never raises for SMTP problems.

    A row is committed as ``sending`` before the SMTP transaction and as ``sent`` right after. A
    failure puts it back to ``pending`` with ``attempts`` + 1 and ``last_error``. Rows found in
    ``sending`` were left by a process that died mid-send: they are counted as `stuck` and not
    resent (`clinicwatch alerts --requeue ID` does that once someone has checked). With no SMTP
    server but `alerts.file_dir`, each message is written as ``<file_dir>/<id>.eml``.
    """
    with _delivery_lock:
        return _deliver_pending(engine, cfg)


def _deliver_pending(engine: Engine, cfg: Config) -> DeliveryReport:
    report = DeliveryReport()
    for row_id, recipient in _stuck_rows(engine):
        report.stuck += 1
        report.errors.append(
            f"alert {row_id} to {recipient} is stuck in 'sending' (a process died while sending "
            f"it); check whether it arrived, then `clinicwatch alerts --requeue {row_id}`"
        )
        logger.warning(report.errors[-1])
    alerts = cfg.alerts
    if alerts.smtp is not None:
        with SmtpTransport(alerts.smtp) as transport:
            _deliver_all(engine, cfg, transport, report)
    elif alerts.file_dir is not None:
        _deliver_all(engine, cfg, FileTransport(alerts.file_dir), report)
    else:
        waiting = len(_pending_ids(engine))
        if waiting:
            report.failed += waiting
            report.errors.append(
                f"{waiting} alert(s) wait but neither alerts.smtp nor alerts.file_dir is configured"
            )
    return report


def requeue(engine: Engine, row_ids: Sequence[int]) -> list[int]:
    """Put rows stuck in ``sending`` back to ``pending``; returns the ids that were stuck."""
    with session_scope(engine) as session:
        stuck = list(
            session.scalars(
                select(AlertOutbox.id).where(
                    AlertOutbox.id.in_(list(row_ids)), AlertOutbox.status == "sending"
                )
            )
        )
        if stuck:
            session.execute(
                update(AlertOutbox).where(AlertOutbox.id.in_(stuck)).values(status="pending")
            )
        return stuck


# --- command -----------------------------------------------------------------------------------

LIST_COLUMNS = ["id", "created_at", "status", "attempts", "recipient", "subject", "last_error"]


def outbox_rows(engine: Engine, status: str | None = None) -> Iterator[dict[str, Any]]:
    """Outbox rows as dicts, oldest first (bodies left out), optionally of one status."""
    query = select(AlertOutbox).order_by(AlertOutbox.id)
    if status is not None:
        query = query.where(AlertOutbox.status == status)
    with session_scope(engine) as session:
        for row in session.scalars(query):
            yield {
                "id": row.id,
                "created_at": row.created_at,
                "status": row.status,
                "attempts": row.attempts,
                "recipient": row.recipient,
                "subject": row.subject,
                "event_ids": row.event_ids,
                "message_id": row.message_id,
                "sent_at": row.sent_at,
                "last_error": row.last_error,
            }


def _echo_report(report: DeliveryReport) -> None:
    click.echo(
        f"alerts: {report.sent} sent, {report.failed} failed, {report.stuck} stuck", err=True
    )
    for line in report.errors:
        click.echo(f"  {line}", err=True)


@click.command("alerts")
@click.option(
    "--status",
    type=click.Choice([*STATUSES, "all"]),
    default="all",
    show_default=True,
    help="List only alerts in this state.",
)
@click.option("--retry", is_flag=True, help="Send every pending alert now, then list.")
@click.option(
    "--requeue",
    "requeue_ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Put an alert stuck in 'sending' back to pending (first check that it did not arrive).",
)
@output_format
@pass_config
def alerts_command(
    cfg: Config, status: str, retry: bool, requeue_ids: tuple[int, ...], fmt: str
) -> None:
    """List the alert outbox; --retry sends pending alerts now.

    Example: clinicwatch alerts --status pending --retry
    """
    engine = open_database(cfg.database)
    try:
        if requeue_ids:
            done = requeue(engine, requeue_ids)
            skipped = sorted(set(requeue_ids) - set(done))
            click.echo(f"requeued: {', '.join(map(str, done)) or 'none'}", err=True)
            if skipped:
                click.echo(f"not stuck in 'sending', left alone: {skipped}", err=True)
        if retry:
            _echo_report(deliver_pending(engine, cfg))
        emit_rows(outbox_rows(engine, None if status == "all" else status), fmt, LIST_COLUMNS)
    finally:
        engine.dispose()
