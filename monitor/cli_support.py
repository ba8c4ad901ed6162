"""Helpers shared by every command: the lazily loaded config and the output formats.

Commands take `@pass_config` to receive the validated `Config`; listing commands take
`@output_format` and hand an iterator of dicts to `emit_rows`, which streams one line per record.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor.config import Config, load_config

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "jsonl", "json", "csv")


class CliContext:
    """What the top-level group knows: where the config is; loads it on first use."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self) -> Config:
        """The validated config (raises `ConfigError`, which `main` prints)."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


def pass_config(fn: F) -> F:
    """Give the command the validated `Config` as its first argument."""

    @functools.wraps(fn)
    @click.pass_obj
    def wrapper(obj: CliContext, *args: Any, **kwargs: Any) -> Any:
        return fn(obj.config(), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def output_format(fn: F) -> F:
    """Add ``--format table|jsonl|json|csv`` (default table) to a listing command."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format: a readable table, JSON lines, one JSON array, or CSV.",
    )(fn)


def json_default(value: Any) -> Any:
    """JSON encoding for datetimes, paths and sets."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(row: dict[str, Any]) -> str:
    """One record as compact UTF-8 JSON."""
    return json.dumps(row, ensure_ascii=False, default=json_default)


def display_width(text: str) -> int:
    """Columns a terminal gives `text`: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, width: int) -> str:
    """`text` cut (with …) or padded to exactly `width` terminal columns."""
    if display_width(text) > width:
        out, used = "", 0
        for char in text:
            char_width = display_width(char)
            if used + char_width > width - 1:
                break
            out, used = out + char, used + char_width
        text = out + "…"
    return text + " " * (width - display_width(text))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value).replace("\n", " ")


def _table_lines(rows: Iterable[dict[str, Any]], columns: list[str], width: int) -> Iterator[str]:
    rows = list(rows)
    if not rows:
        yield "(none)"
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [
        min(width, max(display_width(c), *(display_width(r[i]) for r in cells)))
        for i, c in enumerate(columns)
    ]

    def fmt(values: list[str]) -> str:
        return "  ".join(_fit(v, w) for v, w in zip(values, widths, strict=True)).rstrip()

    yield fmt(columns)
    yield fmt(["-" * w for w in widths])
    for row in cells:
        yield fmt(row)


def emit_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    columns: list[str],
    *,
    out: Any = None,
    width: int = 60,
) -> int:
    """Write records in `fmt`; `columns` are the table/CSV columns. Returns the count."""
    out = out or sys.stdout
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(to_json(row) + "\n")
            count += 1
    elif fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("," if count else "") + "\n  " + to_json(row))
            count += 1
        out.write("\n]\n" if count else "]\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})
            count += 1
    else:
        materialised = list(rows)
        count = len(materialised)
        for line in _table_lines(materialised, columns, width):
            out.write(line + "\n")
    out.flush()
    return count
