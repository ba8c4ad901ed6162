"""``clinicwatch export``: research datasets with provenance and a codebook.

A thin mirror of `claims_db.export.export_to_path`: parse the options, run one export, print one
line. See docs/exports.md for what the files contain.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from claims_db.codebook import CATEGORIES
from claims_db.engine import open_database, session_scope
from claims_db.export import (
    FILE_SUFFIXES,
    FORMATS,
    KINDS,
    ExportError,
    ExportFilters,
    ExportResult,
    export_to_path,
)
from monitor.cli_support import pass_config
from monitor.config import Config

_DATETIME_HELP = (
    "ISO date or datetime, e.g. 2024-05-01 or 2024-05-01T09:00:00+09:00; UTC if no offset."
)


def parse_moment(value: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or datetime as an aware UTC datetime.

    A bare date means the start of that day (UTC), or with `end_of_day` the start of the next day,
    so ``--until 2024-05-31`` includes all of 31 May.
    """
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        moment = datetime.combine(day, time(), tzinfo=UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not an ISO date or datetime: {value!r} (e.g. 2024-05-01 or 2024-05-01T09:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    try:
        return parse_moment(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _until(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    try:
        return parse_moment(value, end_of_day=True) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def format_for(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one the file name's suffix names (CSV into a folder)."""
    if fmt is not None:
        return fmt
    if out.is_dir():
        return "csv"
    for name, suffix in FILE_SUFFIXES.items():
        if out.suffix.lower() == suffix:
            return name
    raise click.UsageError(
        f"cannot tell the format from {str(out)!r}; add --format {'|'.join(FORMATS)} "
        f"or name the file *.csv, *.jsonl or *.parquet"
    )


def _run_export(
    database: str, kind: str, fmt: str, out: Path, filters: ExportFilters
) -> ExportResult:
    engine = open_database(database)
    try:
        with session_scope(engine) as session:
            return export_to_path(session, kind, fmt, out, filters)
    finally:
        engine.dispose()


@click.command("export")
@click.argument("kind", type=click.Choice(KINDS))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="File format (default: from the suffix of --out; csv when --out is a folder).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="File to write, or an existing folder (the file is then named after KIND).",
)
@click.option(
    "--since", callback=_since, help=f"Only rows observed from this moment. {_DATETIME_HELP}"
)
@click.option(
    "--until",
    callback=_until,
    help="Only rows observed before this moment; a date includes that whole day.",
)
@click.option("--site", help="Only this site (its name in the config).")
@click.option("--country", help="Only sites in this country (ISO alpha-2, e.g. JP).")
@click.option("--category", type=click.Choice(CATEGORIES), help="Only claims of this category.")
@click.option("--condition", help="Only claims naming this condition (e.g. ALS; case-insensitive).")
@click.option("--lang", help="Only claims in this language (en, ja, zh, ...).")
@pass_config
def export_command(
    cfg: Config,
    kind: str,
    fmt: str | None,
    out: Path,
    since: datetime | None,
    until: datetime | None,
    site: str | None,
    country: str | None,
    category: str | None,
    condition: str | None,
    lang: str | None,
) -> None:
    """Export claims, changes or sites for research, with a datapackage.json beside the file.

    Example:

    \b
        clinicwatch export claims --format csv --out exports/claims.csv --country JP --since 2024-01-01
    """
    fmt = format_for(out, fmt)
    filters = ExportFilters(
        since=since,
        until=until,
        site=site,
        country=country,
        category=category,
        condition=condition,
        lang=lang,
    )
    try:
        result = _run_export(cfg.database, kind, fmt, out, filters)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database error: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from None
    click.echo(
        f"exported {result.rows} {kind} to {result.path} ({fmt}); described in {result.datapackage}"
    )
