"""Export benchmark: build a database of a million claims, export it in every format.

Prints, per format, the rows written, wall time, peak resident memory of the exporting process and
the file size. Each export runs in its own child process so each peak is its own.

    .venv/bin/python bench/export.py                       # 1,000,000 claims in a SQLite file
    .venv/bin/python bench/export.py --claims 100000       # smaller
    .venv/bin/python bench/export.py --database postgresql+psycopg://postgres@127.0.0.1/bench

The database (default: clinicwatch-export-bench/claims-N.db in the temp dir) is built once and
reused while its claim count matches (delete the file to rebuild).
Targets (issue 4): Parquet under 30 s and under 300 MB for a million claims.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, func, insert, select  # noqa: E402

from claims_db.codebook import CATEGORIES  # noqa: E402
from claims_db.engine import open_database, session_scope  # noqa: E402
from claims_db.models import (  # noqa: E402
    ChangeEvent,
    Claim,
    Content,
    Crawl,
    Page,
    Review,
    Site,
    Snapshot,
    User,
)

SITES = 200
PAGES_PER_SITE = 25
INSERT_BATCH = 20_000
START = datetime(2024, 1, 1, tzinfo=UTC)
SENTENCES = (
    ("en", 'Symptoms improved in {n}% of our ALS patients after stem cell therapy, "guaranteed".'),
    ("en", "=Our laboratory is FDA registered and our protocol was approved by an IRB, #{n}."),
    ("ja", "厚生労働省に届出・受理された安全な再生医療です（第{n}号）。"),
    ("ja", "脳梗塞の後遺症に、{n}割の患者様で改善が見られました。\n個人の感想です。"),
    ("zh", "已获日本厚生劳动省认可，有效改善动脉硬化 {n}%。"),
)
CONDITIONS = (["ALS"], ["stroke"], [], ["spinal cord injury", "ALS"], ["knee osteoarthritis"])


def _insert(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), INSERT_BATCH):
            conn.execute(insert(table), rows[start : start + INSERT_BATCH])


def _build_sites(engine: Engine) -> None:
    countries = ("JP", "US", "MX", "CN", "DE")
    _insert(
        engine,
        Site.__table__,
        [
            {
                "id": i,
                "name": f"clinic{i}",
                "url": f"https://clinic{i}.example/",
                "country": countries[i % 5],
                "lang": "ja" if i % 5 == 0 else "en",
                "created_at": START,
            }
            for i in range(1, SITES + 1)
        ],
    )
    _insert(
        engine,
        Crawl.__table__,
        [
            {
                "id": i,
                "site_id": i,
                "started_at": START,
                "status": "done",
                "rules_version": "bench-1",
            }
            for i in range(1, SITES + 1)
        ],
    )
    pages = [
        {
            "id": p,
            "site_id": (p - 1) // PAGES_PER_SITE + 1,
            "url": f"https://clinic{(p - 1) // PAGES_PER_SITE + 1}.example/p{p}",
        }
        for p in range(1, SITES * PAGES_PER_SITE + 1)
    ]
    _insert(engine, Page.__table__, pages)
    _insert(
        engine,
        Content.__table__,
        [
            {"sha256": f"{p['id']:064x}", "body": b"<html></html>", "size": 13, "created_at": START}
            for p in pages
        ],
    )
    _insert(
        engine,
        Snapshot.__table__,
        [
            {
                "id": p["id"],
                "crawl_id": p["site_id"],
                "page_id": p["id"],
                "ok": True,
                "status": 200,
                "content_sha256": f"{p['id']:064x}",
                "fetched_at": START,
            }
            for p in pages
        ],
    )
    _insert(
        engine,
        User.__table__,
        [{"id": 1, "name": "bench", "role": "reviewer", "password_hash": "x"}],
    )


def _claim_row(i: int) -> dict[str, Any]:
    page = i % (SITES * PAGES_PER_SITE) + 1
    lang, sentence = SENTENCES[i % len(SENTENCES)]
    seen = START + timedelta(minutes=i)
    text = sentence.format(n=i % 97)
    return {
        "id": i,
        "site_id": (page - 1) // PAGES_PER_SITE + 1,
        "page_id": page,
        "scope": "page",
        "category": CATEGORIES[i % len(CATEGORIES)],
        "key": text.lower(),
        "text": text,
        "lang": lang,
        "trigger": text[:12],
        "rule_id": f"{lang}.bench",
        "rules_version": "bench-1",
        "hedged": i % 7 == 0,
        "confidence": 0.9,
        "conditions": CONDITIONS[i % len(CONDITIONS)],
        "attributes": {"figures": [i % 97]},
        "location": "main > p",
        "url": f"https://clinic.example/p{page}",
        "active": i % 11 != 0,
        "first_seen_at": seen,
        "last_seen_at": seen + timedelta(days=3),
        "first_snapshot_id": page,
        "last_snapshot_id": page,
    }


def build(url: str, claims: int) -> Engine:
    """The bench database with `claims` claims (reused when it already has that many)."""
    engine = open_database(url)
    with session_scope(engine) as s:
        existing = s.scalar(select(func.count(Claim.id)))
    if existing == claims:
        return engine
    if existing:
        raise SystemExit(f"{url} holds {existing} claims, not {claims}: delete it or pick another")
    started = time.perf_counter()
    _build_sites(engine)
    with engine.begin() as conn:
        for start in range(1, claims + 1, INSERT_BATCH):
            stop = min(start + INSERT_BATCH, claims + 1)
            conn.execute(insert(Claim.__table__), [_claim_row(i) for i in range(start, stop)])
    events = [
        {
            "id": i,
            "site_id": 1,
            "claim_id": i,
            "event": "new",
            "category": CATEGORIES[i % len(CATEGORIES)],
            "url": "https://clinic1.example/",
            "text": "x",
            "detected_at": START,
            "crawl_id": 1,
            "snapshot_id": 1,
        }
        for i in range(1, min(claims, 100_000) + 1)
    ]
    _insert(engine, ChangeEvent.__table__, events)
    _insert(
        engine,
        Review.__table__,
        [
            {"claim_id": i, "user_id": 1, "decision": "confirmed", "created_at": START}
            for i in range(1, claims + 1, 100)
        ],
    )
    print(f"built {claims:,} claims in {time.perf_counter() - started:.1f} s", flush=True)
    return engine


def measure(url: str, kind: str, fmt: str, out_dir: Path) -> dict[str, Any]:
    """Export once in this process; wall time, peak RSS (MB), rows and bytes."""
    from claims_db.export import ExportFilters, export_to_path

    engine = open_database(url)
    started = time.perf_counter()
    with session_scope(engine) as session:
        result = export_to_path(session, kind, fmt, out_dir, ExportFilters())
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "kind": kind,
        "format": fmt,
        "rows": result.rows,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "file_mb": round(result.path.stat().st_size / 1e6, 1),
    }


def main() -> None:
    """Build (or reuse) the database, then time each format in a child process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--database", help="database URL (default: a SQLite file in the temp dir)")
    parser.add_argument("--kind", default="claims", choices=("claims", "changes", "sites"))
    parser.add_argument("--formats", default="parquet,csv,jsonl")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child mode: one format
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    default = Path(tempfile.gettempdir()) / "clinicwatch-export-bench" / f"claims-{args.claims}.db"
    url = args.database or f"sqlite:///{default}"
    if args.measure:
        print(json.dumps(measure(url, args.kind, args.measure, Path(args.out))))
        return
    build(url, args.claims).dispose()
    print(f"{'format':8} {'rows':>10} {'seconds':>8} {'peak MB':>8} {'file MB':>8}")
    with tempfile.TemporaryDirectory() as out:
        for fmt in args.formats.split(","):
            child = [
                sys.executable,
                __file__,
                "--claims",
                str(args.claims),
                "--database",
                url,
                "--kind",
                args.kind,
                "--measure",
                fmt,
                "--out",
                out,
            ]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            m = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{fmt:8} {m['rows']:>10,} {m['seconds']:>8} {m['peak_rss_mb']:>8} {m['file_mb']:>8}",
                flush=True,
            )


if __name__ == "__main__":
    main()
