"""Research exports: claims, change events and sites as CSV, JSONL or Parquet, streamed.

Rows come from the database in batches (`yield_per`: a server-side cursor on PostgreSQL, SQLite's
own cursor on SQLite) and leave as encoded chunks, so a million claims export in bounded memory.
Ids are the database ids, which never change, so rows can be matched across exports. Every claim
and change row carries its provenance: site, page URL, snapshot fetch time, the SHA-256 of that
snapshot's body, the rules version and the latest review decision.

`export_to_path` writes a file and its ``datapackage.json``; `export_stream` yields the bytes of
the same file for an HTTP response.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, and_, func, select, type_coerce
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import NullType

from claims_db.codebook import CATEGORIES
from claims_db.datapackage import (
    CSV_NEUTRALISED_PREFIXES,
    TABLE_FIELDS,
    DatapackageError,
    ExportField,
    read_existing,
    resource_descriptor,
    write_datapackage,
)
from claims_db.models import ChangeEvent, Claim, Crawl, Review, Site, Snapshot, User

KINDS = ("claims", "changes", "sites")
FORMATS = ("csv", "jsonl", "parquet")
FILE_SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
FETCH_BATCH = 2_000  # rows fetched from the database at a time, and encoded per CSV/JSONL chunk
PARQUET_BATCH = 50_000  # rows per Parquet row group, held as Arrow data until written
_CLAIM_ONLY_FILTERS = ("since", "until", "category", "condition")  # not for the sites export
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ExportError(ValueError):
    """An export that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class ExportFilters:
    """Which rows to export; `None` means no restriction.

    `since`/`until` bound a time window (`until` is exclusive; naive datetimes are UTC): claims
    observed in the window, changes detected in it. `site` is a site name, `country` an ISO
    alpha-2 code, `category` a claim category id, `condition` a condition the claim names
    (case-insensitive), `lang` the claim's language.
    """

    since: datetime | None = None
    until: datetime | None = None
    site: str | None = None
    country: str | None = None
    category: str | None = None
    condition: str | None = None
    lang: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The filters in use, as text (for the datapackage's record of how the file was made)."""
        out: dict[str, str] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = (
                    _utc_datetime(value).isoformat() if isinstance(value, datetime) else value
                )
        return out


@dataclass(frozen=True)
class ExportResult:
    """What `export_to_path` wrote."""

    kind: str
    fmt: str
    path: Path
    datapackage: Path
    rows: int
    exported_at: datetime


def _utc_datetime(value: Any) -> datetime:
    """An aware UTC datetime from a datetime or ISO text (naive means UTC, as stored)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_request(
    session: Session, kind: str, filters: ExportFilters, fmt: str | None = None
) -> None:
    """Raise `ExportError` for an unknown kind, format, site or category, an empty window, or a
    filter the sites export does not take (it takes `site`, `country` and `lang` only)."""
    if kind not in KINDS:
        raise ExportError(f"unknown export {kind!r} (choose from: {', '.join(KINDS)})")
    if fmt is not None and fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (choose from: {', '.join(FORMATS)})")
    if filters.category is not None and filters.category not in CATEGORIES:
        raise ExportError(f"unknown category {filters.category!r} (known: {', '.join(CATEGORIES)})")
    if (
        filters.since
        and filters.until
        and _utc_datetime(filters.since) >= _utc_datetime(filters.until)
    ):
        raise ExportError(
            f"--since {filters.since.isoformat()} is not before --until {filters.until.isoformat()}"
        )
    unused = [name for name in _CLAIM_ONLY_FILTERS if getattr(filters, name) is not None]
    if kind == "sites" and unused:
        raise ExportError(
            f"the sites export takes --site, --country and --lang only (not --{unused[0]})"
        )
    if (
        filters.site is not None
        and session.scalar(select(Site.id).where(Site.name == filters.site)) is None
    ):
        names = session.scalars(select(Site.name).order_by(Site.name).limit(20)).all()
        raise ExportError(f"no site named {filters.site!r} (sites: {', '.join(names) or 'none'})")


# --- queries -------------------------------------------------------------------------------


def _latest_reviews() -> Any:
    """Each claim's reviews ranked newest first; rank 1 is the decision in force."""
    newest_first = (Review.created_at.desc(), Review.id.desc())
    return (
        select(
            Review.claim_id,
            Review.decision,
            Review.created_at,
            User.name.label("reviewer"),
            func.row_number()
            .over(partition_by=Review.claim_id, order_by=newest_first)
            .label("rank"),
        )
        .join(User, User.id == Review.user_id)
        .subquery("latest_review")
    )


def _review_columns(review: Any) -> list[Any]:
    return [
        review.c.decision.label("review_decision"),
        review.c.reviewer.label("reviewed_by"),
        review.c.created_at.label("reviewed_at"),
    ]


def _site_filters(stmt: Select[Any], filters: ExportFilters) -> Select[Any]:
    if filters.site is not None:
        stmt = stmt.where(Site.name == filters.site)
    if filters.country is not None:
        stmt = stmt.where(Site.country == filters.country.upper())
    return stmt


def _claims_query(filters: ExportFilters) -> Select[Any]:
    first, last, review = aliased(Snapshot), aliased(Snapshot), _latest_reviews()
    stmt = (
        select(
            Claim.id.label("id"),
            Claim.site_id.label("site_id"),
            Site.name.label("site"),
            Site.country.label("country"),
            Claim.url.label("url"),
            Claim.scope.label("scope"),
            Claim.category.label("category"),
            Claim.lang.label("lang"),
            Claim.text.label("text"),
            Claim.trigger.label("trigger"),
            Claim.hedged.label("hedged"),
            Claim.confidence.label("confidence"),
            Claim.conditions.label("conditions"),
            Claim.attributes.label("attributes"),
            Claim.rule_id.label("rule_id"),
            Claim.rules_version.label("rules_version"),
            Claim.location.label("location"),
            Claim.active.label("active"),
            Claim.first_seen_at.label("first_seen_at"),
            Claim.last_seen_at.label("last_seen_at"),
            Claim.removed_at.label("removed_at"),
            first.id.label("first_snapshot_id"),
            first.fetched_at.label("first_fetched_at"),
            first.content_sha256.label("first_content_sha256"),
            last.id.label("snapshot_id"),
            last.fetched_at.label("snapshot_fetched_at"),
            last.content_sha256.label("content_sha256"),
            *_review_columns(review),
        )
        .join(Site, Site.id == Claim.site_id)
        .outerjoin(first, first.id == Claim.first_snapshot_id)
        .outerjoin(last, last.id == Claim.last_snapshot_id)
        .outerjoin(review, and_(review.c.claim_id == Claim.id, review.c.rank == 1))
        .order_by(Claim.id)
    )
    # A claim belongs to the window when it was observed in it: seen last after `since`, and
    # first before `until`.
    if filters.since is not None:
        stmt = stmt.where(Claim.last_seen_at >= _utc_datetime(filters.since))
    if filters.until is not None:
        stmt = stmt.where(Claim.first_seen_at < _utc_datetime(filters.until))
    if filters.category is not None:
        stmt = stmt.where(Claim.category == filters.category)
    if filters.lang is not None:
        stmt = stmt.where(Claim.lang == filters.lang)
    return _site_filters(stmt, filters)


def _changes_query(filters: ExportFilters) -> Select[Any]:
    review = _latest_reviews()
    stmt = (
        select(
            ChangeEvent.id.label("id"),
            ChangeEvent.event.label("event"),
            ChangeEvent.category.label("category"),
            ChangeEvent.claim_id.label("claim_id"),
            ChangeEvent.site_id.label("site_id"),
            Site.name.label("site"),
            Site.country.label("country"),
            ChangeEvent.url.label("url"),
            Claim.lang.label("lang"),
            ChangeEvent.text.label("text"),
            ChangeEvent.old_text.label("old_text"),
            Claim.conditions.label("conditions"),
            ChangeEvent.detected_at.label("detected_at"),
            ChangeEvent.crawl_id.label("crawl_id"),
            func.coalesce(Crawl.rules_version, Claim.rules_version).label("rules_version"),
            Snapshot.id.label("snapshot_id"),
            Snapshot.fetched_at.label("snapshot_fetched_at"),
            Snapshot.content_sha256.label("content_sha256"),
            *_review_columns(review),
        )
        .join(Site, Site.id == ChangeEvent.site_id)
        .join(Claim, Claim.id == ChangeEvent.claim_id)
        .outerjoin(Crawl, Crawl.id == ChangeEvent.crawl_id)
        .outerjoin(Snapshot, Snapshot.id == ChangeEvent.snapshot_id)
        .outerjoin(review, and_(review.c.claim_id == ChangeEvent.claim_id, review.c.rank == 1))
        .order_by(ChangeEvent.id)
    )
    if filters.since is not None:
        stmt = stmt.where(ChangeEvent.detected_at >= _utc_datetime(filters.since))
    if filters.until is not None:
        stmt = stmt.where(ChangeEvent.detected_at < _utc_datetime(filters.until))
    if filters.category is not None:
        stmt = stmt.where(ChangeEvent.category == filters.category)
    if filters.lang is not None:
        stmt = stmt.where(Claim.lang == filters.lang)
    return _site_filters(stmt, filters)


def _sites_query(filters: ExportFilters) -> Select[Any]:
    latest_crawl = (
        select(Crawl.status, Crawl.rules_version)
        .where(Crawl.site_id == Site.id)
        .order_by(Crawl.started_at.desc(), Crawl.id.desc())
        .limit(1)
        .correlate(Site)
    )

    def count(model: Any, *where: Any) -> Any:
        return (
            select(func.count(model.id)).where(model.site_id == Site.id, *where).scalar_subquery()
        )

    stmt = select(
        Site.id.label("id"),
        Site.name.label("name"),
        Site.url.label("url"),
        Site.country.label("country"),
        Site.lang.label("lang"),
        Site.created_at.label("added_at"),
        select(func.min(Crawl.started_at))
        .where(Crawl.site_id == Site.id)
        .scalar_subquery()
        .label("first_check_at"),
        select(func.max(Crawl.started_at))
        .where(Crawl.site_id == Site.id)
        .scalar_subquery()
        .label("last_check_at"),
        latest_crawl.with_only_columns(Crawl.status).scalar_subquery().label("last_check_status"),
        latest_crawl.with_only_columns(Crawl.rules_version)
        .scalar_subquery()
        .label("rules_version"),
        count(Claim).label("claims"),
        count(Claim, Claim.active.is_(True)).label("active_claims"),
        count(ChangeEvent).label("changes"),
    ).order_by(Site.id)
    if filters.lang is not None:
        stmt = stmt.where(Site.lang == filters.lang)
    return _site_filters(stmt, filters)


_QUERIES: dict[str, Callable[[ExportFilters], Select[Any]]] = {
    "claims": _claims_query,
    "changes": _changes_query,
    "sites": _sites_query,
}


Batch = Sequence[Sequence[Any]]  # rows as tuples, in the order of the kind's TABLE_FIELDS
# Columns whose values are taken as the database driver returns them and decoded here, per format:
# SQLite gives datetimes and JSON as text, PostgreSQL (psycopg) as objects. SQLAlchemy's per-value
# type processing of these columns took most of the time of a million-row export.
_DRIVER_TYPES = ("datetime", "array", "object")


def row_batches(session: Session, kind: str, filters: ExportFilters) -> Iterator[Batch]:
    """The rows of the `kind` export in batches of tuples, fields in Table Schema order.

    Datetime and JSON fields hold driver values (text on SQLite); `iter_rows` decodes them.
    Checks the request at call time (`check_request`), before any row is read.
    """
    check_request(session, kind, filters)
    wanted = filters.condition.casefold() if filters.condition else None
    position = [f.name for f in TABLE_FIELDS[kind]].index("conditions") if wanted else 0
    return _fetch(session, _driver_values(_QUERIES[kind](filters), kind), wanted, position)


def _driver_values(stmt: Select[Any], kind: str) -> Select[Any]:
    """`stmt` with its datetime and JSON columns returned undecoded."""
    columns = []
    for column, field in zip(stmt.selected_columns, TABLE_FIELDS[kind], strict=True):
        if column.name != field.name:  # the query and the Table Schema must list the same fields
            raise RuntimeError(f"{kind} query column {column.name!r} is not field {field.name!r}")
        if field.type in _DRIVER_TYPES:
            column = type_coerce(column, NullType()).label(field.name)
        columns.append(column)
    return stmt.with_only_columns(*columns)


def _fetch(session: Session, stmt: Select[Any], condition: str | None, at: int) -> Iterator[Batch]:
    # Core execution (no ORM row processing) with yield_per: a server-side cursor on PostgreSQL.
    connection = session.connection().execution_options(yield_per=FETCH_BATCH)
    for batch in connection.execute(stmt).partitions():
        if condition is not None:
            # Conditions are a JSON list; matching here keeps one query for both databases.
            batch = [row for row in batch if _names_condition(_json_list(row[at]), condition)]
        if batch:
            yield batch


def _names_condition(conditions: Any, wanted: str) -> bool:
    return isinstance(conditions, list) and any(str(c).casefold() == wanted for c in conditions)


# --- decoding driver values ----------------------------------------------------------------


def _iso_text(value: Any) -> str:
    """ISO 8601 in UTC with its offset, e.g. ``2024-05-01T09:30:00+00:00``."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # stored as UTC (models.UTCDateTime); cheaper than replace()
        return moment.isoformat() + "+00:00"
    return moment.astimezone(UTC).isoformat()


@functools.lru_cache(maxsize=4096)
def _parsed_json(text: str) -> Any:
    return json.loads(text)


def _json_list(value: Any) -> Any:
    # Condition lists repeat endlessly ("ALS", "stroke"): parse each distinct text once, and copy
    # so a caller changing a row cannot change the cache.
    return list(_parsed_json(value)) if isinstance(value, str) else value


def _json_object(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _json_text(value: Any) -> str:
    """Readable JSON text (non-ASCII kept as is)."""
    if isinstance(value, str):
        # Stored by json.dumps: the same text unless non-ASCII characters were escaped.
        return value if "\\u" not in value else json.dumps(json.loads(value), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def _converters(kind: str, table: dict[str, Callable[[Any], Any]]) -> list[tuple[int, Any]]:
    return [(i, table[f.type]) for i, f in enumerate(TABLE_FIELDS[kind]) if f.type in table]


def _converted(batch: Batch, converters: list[tuple[int, Any]]) -> Iterator[tuple[Any, ...]]:
    """The batch's rows with `converters` applied to their non-empty values, column by column."""
    if not converters:
        return iter(batch)  # type: ignore[arg-type]
    columns: list[Sequence[Any]] = list(zip(*batch, strict=True))
    for i, convert in converters:
        columns[i] = [None if value is None else convert(value) for value in columns[i]]
    return zip(*columns, strict=True)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _utc_datetime,
    "array": _json_list,
    "object": _json_object,
}


def iter_rows(session: Session, kind: str, filters: ExportFilters) -> Iterator[dict[str, Any]]:
    """The rows of the `kind` export, streamed in id order; keys are the Table Schema field names.

    Values are Python objects: aware UTC datetimes, lists, dicts. Raises `ExportError` at call
    time for a bad request (see `row_batches`).
    """
    batches = row_batches(session, kind, filters)
    names = [f.name for f in TABLE_FIELDS[kind]]
    decoders = _converters(kind, _DECODERS)
    return (
        dict(zip(names, row, strict=True))
        for batch in batches
        for row in _converted(batch, decoders)
    )


# --- encoders ------------------------------------------------------------------------------


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; a lone surrogate (not representable) becomes U+FFFD instead of an error."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def neutralise_formula(text: str) -> str:
    """Prefix an apostrophe to a cell a spreadsheet would run as a formula (and to one starting
    with an apostrophe, so removing exactly one leading apostrophe always restores the text)."""
    return "'" + text if text.startswith(CSV_NEUTRALISED_PREFIXES) else text


def _csv_bool(value: bool) -> str:
    return "true" if value else "false"


# How a value of each Table Schema type becomes a CSV cell (None is written as an empty cell).
_CSV_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": neutralise_formula,
    "boolean": _csv_bool,
    "datetime": _iso_text,
    "array": _json_text,
    "object": _json_text,
}
_JSONL_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _iso_text,
    "array": _json_list,
    "object": _json_object,
}


def _csv_chunks(batches: Iterable[Batch], kind: str) -> Iterator[bytes]:
    converters = _converters(kind, _CSV_CONVERTERS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([f.name for f in TABLE_FIELDS[kind]])
    for batch in batches:
        writer.writerows(_converted(batch, converters))
        yield _utf8(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()
    yield _utf8(buffer.getvalue())


def _jsonl_chunks(batches: Iterable[Batch], kind: str) -> Iterator[bytes]:
    names = [f.name for f in TABLE_FIELDS[kind]]
    converters = _converters(kind, _JSONL_CONVERTERS)
    for batch in batches:
        lines = [
            json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False)
            for row in _converted(batch, converters)
        ]
        yield _utf8("\n".join(lines) + "\n")


_ARROW_TYPES = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "array": pa.list_(pa.string()),
    "object": pa.string(),  # free-form JSON: kept as text, a struct would need a fixed shape
}


def arrow_schema(kind: str) -> pa.Schema:
    """The Arrow schema of the `kind` export's Parquet file."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[f.type]) for f in TABLE_FIELDS[kind]])


def _arrow_datetimes(values: Sequence[Any]) -> pa.Array:
    first = next((v for v in values if v is not None), None)
    if isinstance(first, str):
        try:
            # SQLite text holds UTC without an offset; Arrow parses a column at C speed.
            naive = pa.array(values, pa.string()).cast(pa.timestamp("us"))
            return naive.cast(_ARROW_TYPES["datetime"])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    decoded = [None if v is None else _utc_datetime(v) for v in values]
    return pa.array(decoded, _ARROW_TYPES["datetime"])


def _cleaned(value: Any, field_type: str) -> Any:
    """A value Arrow accepts: list items as text, lone surrogates replaced."""
    if value is None:
        return None
    if field_type == "array":
        items = value if isinstance(value, list) else [value]
        return [_LONE_SURROGATE.sub("\ufffd", str(item)) for item in items]
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    return value


def _arrow_column(values: Sequence[Any], field: ExportField) -> pa.Array:
    if field.type == "datetime":
        return _arrow_datetimes(values)
    if field.type == "array":
        values = [None if v is None else _json_list(v) for v in values]
    elif field.type == "object":
        values = [None if v is None else _json_text(v) for v in values]
    try:
        return pa.array(values, _ARROW_TYPES[field.type])
    except (pa.ArrowException, UnicodeEncodeError):
        # Rare: odd items in a list or unencodable text; clean this column and retry once.
        return pa.array([_cleaned(v, field.type) for v in values], _ARROW_TYPES[field.type])


class _ChunkSink(io.RawIOBase):
    """A write-only file that collects what Parquet writes so it can be yielded as it comes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def _record_batch(batch: Batch, kind: str, schema: pa.Schema) -> pa.RecordBatch:
    columns = zip(*batch, strict=True)
    arrays = [_arrow_column(col, f) for col, f in zip(columns, TABLE_FIELDS[kind], strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _parquet_chunks(batches: Iterable[Batch], kind: str) -> Iterator[bytes]:
    # Each fetch batch becomes compact Arrow memory at once; Python row objects never pile up.
    schema, sink = arrow_schema(kind), _ChunkSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    pending: list[pa.RecordBatch] = []
    try:
        for batch in batches:
            pending.append(_record_batch(batch, kind, schema))
            if sum(b.num_rows for b in pending) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=PARQUET_BATCH)
                pending = []
                yield sink.drain()
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=PARQUET_BATCH)
    finally:
        writer.close()
    yield sink.drain()


_ENCODERS: dict[str, Callable[[Iterable[Batch], str], Iterator[bytes]]] = {
    "csv": _csv_chunks,
    "jsonl": _jsonl_chunks,
    "parquet": _parquet_chunks,
}


def encode_batches(batches: Iterable[Batch], kind: str, fmt: str) -> Iterator[bytes]:
    """Encode `row_batches` of the `kind` export as `fmt`, chunk by chunk."""
    if fmt not in _ENCODERS:
        raise ExportError(f"unknown format {fmt!r} (choose from: {', '.join(FORMATS)})")
    return _ENCODERS[fmt](batches, kind)


def export_stream(session: Session, kind: str, fmt: str, filters: ExportFilters) -> Iterator[bytes]:
    """The bytes of the export file, chunk by chunk, for an HTTP response.

    Bad requests raise `ExportError` here, before the first chunk, so a web handler can still
    answer 400. The session must stay open while the chunks are consumed.
    """
    check_request(session, kind, filters, fmt)
    return encode_batches(row_batches(session, kind, filters), kind, fmt)


class _Counted:
    """Batches passed through unchanged, counting their rows."""

    def __init__(self, batches: Iterator[Batch]) -> None:
        self.batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.batches:
            self.rows += len(batch)
            yield batch


def output_path(out: Path, kind: str, fmt: str) -> Path:
    """`out` itself, or ``<out>/<kind>.<suffix>`` when `out` is an existing folder."""
    return out / f"{kind}{FILE_SUFFIXES[fmt]}" if out.is_dir() else out


def export_to_path(
    session: Session, kind: str, fmt: str, out: Path, filters: ExportFilters
) -> ExportResult:
    """Write the export to `out` and describe it in ``datapackage.json`` beside it.

    The file is written under a temporary name and renamed when complete, so a failed export
    leaves an earlier file of the same name intact. Raises `ExportError` for a bad request or a
    ``datapackage.json`` in the folder that clinicwatch did not write.
    """
    check_request(session, kind, filters, fmt)
    path = output_path(Path(out), kind, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        read_existing(path.parent)  # refuse before the long part, not after it
    except DatapackageError as exc:
        raise ExportError(str(exc)) from None
    exported_at = datetime.now(UTC)
    counted = _Counted(row_batches(session, kind, filters))
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            for chunk in encode_batches(counted, kind, fmt):
                handle.write(chunk)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    resource = resource_descriptor(
        kind, fmt, path, rows=counted.rows, filters=filters.as_dict(), exported_at=exported_at
    )
    datapackage = write_datapackage(path.parent, resource, exported_at)
    return ExportResult(kind, fmt, path, datapackage, counted.rows, exported_at)
