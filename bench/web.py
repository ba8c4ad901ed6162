"""Response times of the review app's pages and API routes on a 100,000-claim database.

Builds a SQLite file with `monitor.web.sample.fill_sample` (100 sites × 1,000 claims, 110,000
change events, a few thousand reviews), then requests every page and API route through
TestClient and prints median and 95th percentile per route. Target: every route under 200 ms.

    .venv/bin/python bench/web.py [--sites 100] [--claims-per-site 1000] [--runs 20] [--db FILE]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from claims_db.engine import session_scope
from claims_db.models import ChangeEvent, Claim, Review
from monitor.config import config_from_dict
from monitor.web.app import create_app
from monitor.web.auth import add_user
from monitor.web.sample import fill_sample

PASSWORD = "bench-password"
TARGET_MS = 200.0


def build(app, sites: int, claims_per_site: int) -> None:
    """Fill the database once (skipped when it already has claims)."""
    with session_scope(app.state.engine) as session:
        if session.scalar(select(func.count()).select_from(Claim)):
            return
        started = time.perf_counter()
        fill_sample(session, sites=sites, claims_per_site=claims_per_site, pages_per_site=20,
                    changed_every=10)  # fmt: skip
        user = add_user(session, "bench", "reviewer", PASSWORD)
        events = session.execute(
            select(ChangeEvent.id, ChangeEvent.claim_id).where(ChangeEvent.id % 25 == 0)
        ).all()
        session.execute(
            insert(Review),
            [
                {"claim_id": c, "event_id": e, "user_id": user.id, "decision": "confirmed"}
                for e, c in events
            ],
        )
        print(f"built the database in {time.perf_counter() - started:.1f} s")


def sign_in(client: TestClient) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post(
        "/login",
        data={"username": "bench", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def routes(app) -> list[str]:
    with session_scope(app.state.engine) as session:
        site_id = session.scalar(select(Claim.site_id).order_by(Claim.id.desc()).limit(1))
        claim_id = session.scalar(
            select(ChangeEvent.claim_id).where(ChangeEvent.event == "changed").limit(1)
        )
    return [
        "/sites",
        "/sites?sort=unreviewed&order=desc",
        "/sites?category=efficacy_promise",
        "/sites?condition=ALS",
        "/sites?q=infusion",
        "/sites?country=JP&q=%E5%8E%9A%E7%94%9F",
        f"/sites/{site_id}",
        f"/sites/{site_id}?category=price",
        f"/claims/{claim_id}",
        "/queue",
        "/queue?page=200",
        "/queue?category=price&country=US",
        "/api/sites",
        "/api/claims?limit=100",
        "/api/claims?limit=1000&after_id=50000",
        "/api/claims?q=stroke&limit=100",
        "/api/claims?condition=ALS&limit=100",
        f"/api/claims/{claim_id}",
        "/api/changes?unreviewed=true&limit=100",
        "/api/changes?event=changed&limit=100",
        "/api/reviews?limit=100",
        "/api/openapi.json",
    ]


def measure(client: TestClient, path: str, runs: int) -> list[float]:
    assert client.get(path).status_code == 200, path  # warm-up, and a check
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, path
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--claims-per-site", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", type=Path, help="reuse this SQLite file (built if empty)")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="cw-bench-")) / "bench.db"
    app = create_app(config_from_dict({"database": f"sqlite:///{db.resolve()}"}), secret_key="b")
    build(app, args.sites, args.claims_per_site)
    with session_scope(app.state.engine) as session:
        claims = session.scalar(select(func.count()).select_from(Claim))
        events = session.scalar(select(func.count()).select_from(ChangeEvent))
    print(f"database {db}: {claims} claims, {events} change events; {args.runs} runs per route")
    client = TestClient(app)
    sign_in(client)
    print(f"{'route':48} {'median ms':>10} {'p95 ms':>8}")
    slow = 0
    for path in routes(app):
        times = sorted(measure(client, path, args.runs))
        median = statistics.median(times)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        flag = "" if p95 < TARGET_MS else "  over target"
        slow += bool(flag)
        print(f"{path[:48]:48} {median:10.1f} {p95:8.1f}{flag}")
    print(f"{slow} route(s) over {TARGET_MS:.0f} ms at p95")


if __name__ == "__main__":
    main()
