"""SQLAlchemy 2.0 typed models: the one schema for SQLite and PostgreSQL.

sites ─< crawls ─< snapshots >─ pages >─ sites; snapshots ─> contents (body stored once per SHA-256);
extractions cache the claims of one content under one rules version; claims are the live identities
that the diff maintains; change_events record every new/changed/removed/reclassified claim;
alert_outbox holds e-mails until they are sent; users and reviews serve the review app.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always returns timezone-aware datetimes (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention so SQLite batch migrations can drop constraints."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Site(Base):
    """A watched clinic website, mirrored from the config on every check."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    lang: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    crawls: Mapped[list[Crawl]] = relationship(back_populates="site")
    pages: Mapped[list[Page]] = relationship(back_populates="site")


class Crawl(Base):
    """One check of one site: the crawl and the extraction/diff that followed it."""

    __tablename__ = "crawls"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # running | crawled | done | failed
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    pages_ok: Mapped[int] = mapped_column(default=0)
    pages_failed: Mapped[int] = mapped_column(default=0)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    rules_version: Mapped[str | None] = mapped_column(String(64))
    stats: Mapped[dict[str, Any] | None]

    site: Mapped[Site] = relationship(back_populates="crawls")


class Page(Base):
    """A URL of a site, as requested (redirect targets are recorded on the snapshot)."""

    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("site_id", "url"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship(back_populates="pages")


class Content(Base):
    """A distinct response body, stored once and addressed by its SHA-256."""

    __tablename__ = "contents"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Snapshot(Base):
    """One fetch of one page in one crawl: success or failure, with what the server said."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_page_fetched", "page_id", "fetched_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    final_url: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(200))
    # The charset the server declared in Content-Type, kept so the body can be decoded again.
    declared_encoding: Mapped[str | None] = mapped_column(String(64))
    content_sha256: Mapped[str | None] = mapped_column(ForeignKey("contents.sha256"), index=True)
    depth: Mapped[int | None] = mapped_column(Integer)

    page: Mapped[Page] = relationship()
    content: Mapped[Content | None] = relationship()


class Extraction(Base):
    """Claims found in one content under one rules version (a cache: unchanged pages cost nothing)."""

    __tablename__ = "extractions"
    content_sha256: Mapped[str] = mapped_column(ForeignKey("contents.sha256"), primary_key=True)
    rules_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    encoding: Mapped[str | None] = mapped_column(String(64))
    claims: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Claim(Base):
    """A claim's identity on a page (or, for site chrome, on the whole site) and its current text."""

    __tablename__ = "claims"
    __table_args__ = (
        Index("ix_claims_site_active", "site_id", "active"),
        # Covers the review app's per-site, per-category counts of active claims.
        Index("ix_claims_site_category_active", "site_id", "category", "active"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    # NULL page for a site-wide claim (header, footer, sidebar repeated on every page).
    page_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"), index=True)
    scope: Mapped[str] = mapped_column(String(8), default="page")  # page | site
    category: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(Text)  # normalised sentence: the identity within the page
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(8))
    trigger: Mapped[str | None] = mapped_column(Text)
    trigger_start: Mapped[int | None]
    trigger_end: Mapped[int | None]
    rule_id: Mapped[str | None] = mapped_column(String(120))
    rules_version: Mapped[str | None] = mapped_column(String(64))
    hedged: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[float | None]
    conditions: Mapped[list[Any] | None]
    attributes: Mapped[dict[str, Any] | None]
    location: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)  # page where it stands (first page, for site claims)
    pages: Mapped[list[Any] | None]  # for site claims: the URLs it was seen on
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    first_snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    last_snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))

    site: Mapped[Site] = relationship()
    page: Mapped[Page | None] = relationship()


class ChangeEvent(Base):
    """A claim that appeared, changed or disappeared (or was reclassified by new rules)."""

    __tablename__ = "change_events"
    __table_args__ = (
        Index("ix_change_events_site_detected", "site_id", "detected_at"),
        # The review queue lists events oldest first across all sites.
        Index("ix_change_events_detected", "detected_at", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    crawl_id: Mapped[int | None] = mapped_column(ForeignKey("crawls.id"), index=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    # new | changed | removed | reclassified
    event: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    old_text: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None]
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When alerts for this event were queued; NULL for an alertable event means a check died
    # between storing it and queuing its alert, and the next check queues it.
    queued_at: Mapped[datetime | None]

    site: Mapped[Site] = relationship()
    claim: Mapped[Claim] = relationship()


class AlertOutbox(Base):
    """An alert e-mail, written before it is sent; `status` pending → sending → sent."""

    __tablename__ = "alert_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    event_ids: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(200))


class User(Base):
    """A person who signs in to the review app."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | reviewer | viewer
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Review(Base):
    """A reviewer's decision on a claim: confirmed, dismissed (false positive) or escalated."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("change_events.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))  # confirmed | dismissed | escalated
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()
    claim: Mapped[Claim] = relationship()
