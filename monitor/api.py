"""The small Python API that the command line mirrors.

>>> from monitor import api
>>> cfg = api.load_config("clinicwatch.yaml")
>>> report = api.check(cfg)                         # crawl, extract, diff, alert
>>> for row in api.claims(cfg): print(row["category"], row["text"])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from claims_db import queries
from claims_db.engine import open_database, session_scope
from claims_db.models import Site
from monitor.check import CheckReport, check
from monitor.claim_store import reclassify_site
from monitor.config import Config, load_config

__all__ = [
    "CheckReport",
    "changes",
    "check",
    "claims",
    "extract_files",
    "load_config",
    "reextract",
    "sites",
]


def claims(
    cfg: Config,
    *,
    site: str | None = None,
    category: str | None = None,
    include_removed: bool = False,
) -> Iterator[dict[str, Any]]:
    """Current claims as dicts (see `claims_db.queries.claim_rows`)."""
    if site:
        cfg.site(site)
    engine = open_database(cfg.database)
    with session_scope(engine) as session:
        yield from queries.claim_rows(
            session, site=site, category=category, include_removed=include_removed
        )


def changes(
    cfg: Config,
    *,
    site: str | None = None,
    event: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Change events as dicts, oldest first."""
    engine = open_database(cfg.database)
    with session_scope(engine) as session:
        yield from queries.change_rows(
            session, site=site, event=event, category=category, since=since
        )


def sites(cfg: Config) -> Iterator[dict[str, Any]]:
    """Configured sites with their last check."""
    engine = open_database(cfg.database)
    with session_scope(engine) as session:
        yield from queries.site_rows(session, [s.name for s in cfg.sites])


def extract_files(
    paths: Sequence[str | Path], rules_dir: Path | None = None, lang: str | None = None
) -> Iterator[dict[str, Any]]:
    """Claims in local .html/.htm/.txt files, no database; each dict carries `source`."""
    from monitor.extract import load_extractor

    extractor = load_extractor(rules_dir)
    for path in paths:
        data = Path(path).read_bytes()
        if Path(path).suffix.lower() in (".html", ".htm", ".xhtml"):
            found = extractor.extract_html(data, lang_hint=lang)
        else:
            from crawler.encoding import decode_html

            text, _ = decode_html(data, "text/plain")
            found = extractor.extract_text(text, lang_hint=lang)
        for claim in found:
            yield {"source": str(path), **claim.to_dict()}


def reextract(cfg: Config, site: str | None = None, *, force: bool = True) -> dict[str, int]:
    """Re-apply the current rules to stored snapshots; returns reclassified events per site."""
    from monitor.extract import load_extractor

    extractor = load_extractor(cfg.rules_dir)
    engine = open_database(cfg.database)
    counts: dict[str, int] = {}
    names = [cfg.site(site).name] if site else [s.name for s in cfg.sites]
    for name in names:
        with session_scope(engine) as session:
            row = session.scalar(select(Site).where(Site.name == name))
            if row is None:
                counts[name] = 0
                continue
            events = reclassify_site(session, row, extractor, force=force)
            counts[name] = len(events)
    return counts
