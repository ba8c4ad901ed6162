"""Made-up review data for the app's tests, its benchmark and its screenshots.

`fill_sample(session, ...)` writes sites, checks, archived pages, claims and change events in
bulk; with `hostile=True` one site's text is full of markup that must stay inert in the app.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from claims_db.models import (
    ChangeEvent,
    Claim,
    Content,
    Crawl,
    Page,
    Site,
    Snapshot,
    utcnow,
)

HOSTILE_TEXT = (
    'Our stem cells cure ALS <script>alert("xss")</script> '
    '<img src=x onerror=alert(1)> <a href="javascript:alert(2)">see results</a>'
)
HOSTILE_URL = "javascript:alert(3)"

# (category, sentence, trigger, conditions)
SENTENCES: tuple[tuple[str, str, str, list[str]], ...] = (
    (
        "efficacy_promise",
        "Symptoms improved in 60% of our ALS patients after three infusions.",
        "improved in 60%",
        ["ALS"],
    ),
    (
        "registry_endorsement",
        "Our therapy is registered with the Ministry of Health, Labour and Welfare.",
        "registered with the Ministry",
        [],
    ),
    (
        "safety_claim",
        "Because the cells are your own, there are no side effects and no rejection.",
        "no side effects",
        [],
    ),
    (
        "anti_aging",
        "Turn back the clock on ageing with exosome therapy.",
        "Turn back the clock",
        [],
    ),
    (
        "efficacy_promise",
        "Stroke patients regained movement within weeks of treatment.",
        "regained movement",
        ["stroke"],
    ),
    (
        "registry_endorsement",
        "厚生労働省に届出・受理された安全な再生医療です。",
        "厚生労働省に届出・受理",
        [],
    ),
    (
        "price",
        "One infusion of 100 million cells costs $14,500.",
        "$14,500",
        [],
    ),
    (
        "testimonial",
        "“Aurora gave me my life back,” says a patient with spinal cord injury.",
        "gave me my life back",
        ["spinal cord injury"],
    ),
)
COUNTRIES = ("JP", "US", "MX", "TH", "DE")


@dataclass
class SampleData:
    """Ids of what `fill_sample` wrote."""

    site_ids: list[int] = field(default_factory=list)
    hostile_site_id: int | None = None
    hostile_claim_id: int | None = None


def _page_html(sentences: list[str], hostile: bool) -> bytes:
    extra = (
        f"<p>{HOSTILE_TEXT}</p><script>document.title='owned'</script>"
        '<a href="javascript:alert(4)">click</a>'
        if hostile
        else ""
    )
    paragraphs = "".join(f"<p>{s}</p>" for s in sentences)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Clinic</title></head>"
        f"<body><nav>Home · Treatments</nav><main>{paragraphs}{extra}</main>"
        "<footer>© Clinic</footer></body></html>"
    )
    return html.encode("utf-8")


def _add_site(
    session: Session, index: int, now: datetime, pages: int, hostile: bool
) -> tuple[Site, list[tuple[Page, Snapshot]]]:
    name = "hostile" if hostile else f"clinic-{index:03d}"
    site = Site(
        name=name,
        url=f"https://{name}.example/",
        country=COUNTRIES[index % len(COUNTRIES)],
        lang="en",
        created_at=now - timedelta(days=30),
    )
    session.add(site)
    baseline = Crawl(
        site=site,
        started_at=now - timedelta(days=2),
        finished_at=now - timedelta(days=2),
        status="done",
        baseline=True,
        pages_ok=pages,
    )
    latest = Crawl(
        site=site,
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3),
        status="failed" if index % 7 == 3 else "done",
        error="timeout after 30 s" if index % 7 == 3 else None,
        pages_ok=pages,
    )
    session.add_all([baseline, latest])
    session.flush()
    archived: list[tuple[Page, Snapshot]] = []
    for number in range(pages):
        page = Page(site_id=site.id, url=f"https://{name}.example/treatments/{number}")
        sentences = [s[1] for s in SENTENCES]
        body = _page_html(sentences, hostile)
        sha = hashlib.sha256(body).hexdigest()
        if session.get(Content, sha) is None:
            session.add(Content(sha256=sha, body=body, size=len(body)))
        session.add(page)
        session.flush()
        snapshot = Snapshot(
            crawl_id=latest.id,
            page_id=page.id,
            fetched_at=now - timedelta(hours=3),
            ok=True,
            status=200,
            final_url=page.url,
            content_type="text/html; charset=utf-8",
            content_sha256=sha,
        )
        session.add(snapshot)
        session.flush()
        archived.append((page, snapshot))
    return site, archived


def _claim_rows(
    site: Site, archived: list[tuple[Page, Snapshot]], count: int, now: datetime, hostile: bool
) -> list[dict[str, Any]]:
    rows = []
    for number in range(count):
        category, text, trigger, conditions = SENTENCES[number % len(SENTENCES)]
        page, snapshot = archived[number % len(archived)]
        url = page.url
        if hostile and number == 0:
            text, trigger, url = HOSTILE_TEXT, "cure ALS", HOSTILE_URL
        elif number >= len(SENTENCES):
            text = f"{text} ({number})"  # distinct sentences, as on a large site
        start = text.find(trigger)
        rows.append(
            {
                "site_id": site.id,
                "page_id": page.id,
                "scope": "page",
                "category": category,
                "key": text.casefold(),
                "text": text,
                "lang": "ja" if text.startswith("厚生") else "en",
                "trigger": trigger,
                "trigger_start": start if start >= 0 else None,
                "trigger_end": start + len(trigger) if start >= 0 else None,
                "rule_id": f"sample.{category}",
                "hedged": False,
                "conditions": conditions,
                "attributes": {},
                "url": url,
                "active": True,
                "first_seen_at": now - timedelta(days=2),
                "last_seen_at": now - timedelta(hours=3),
                "first_snapshot_id": snapshot.id,
                "last_snapshot_id": snapshot.id,
            }
        )
    return rows


def _event_rows(claims: list[Claim], now: datetime, changed_every: int) -> list[dict[str, Any]]:
    rows = []
    for number, claim in enumerate(claims):
        rows.append(
            {
                "site_id": claim.site_id,
                "claim_id": claim.id,
                "snapshot_id": claim.first_snapshot_id,
                "event": "new",
                "category": claim.category,
                "url": claim.url,
                "text": claim.text,
                "detected_at": now - timedelta(days=1, seconds=-number),
            }
        )
        if changed_every and number % changed_every == 1:
            rows.append(
                {
                    "site_id": claim.site_id,
                    "claim_id": claim.id,
                    "snapshot_id": claim.last_snapshot_id,
                    "event": "changed",
                    "category": claim.category,
                    "url": claim.url,
                    "text": claim.text,
                    "old_text": claim.text.replace("60%", "40%").replace("weeks", "months"),
                    "detected_at": now - timedelta(hours=3, seconds=-number),
                }
            )
    return rows


def fill_sample(
    session: Session,
    *,
    sites: int = 3,
    claims_per_site: int = 8,
    pages_per_site: int = 2,
    hostile: bool = True,
    changed_every: int = 4,
    now: datetime | None = None,
) -> SampleData:
    """Write `sites` sites (plus a hostile one) with claims, archived pages and change events."""
    now = now or utcnow()
    data = SampleData()
    plan = [(i, False) for i in range(sites)] + ([(sites, True)] if hostile else [])
    for index, is_hostile in plan:
        site, archived = _add_site(session, index, now, pages_per_site, is_hostile)
        data.site_ids.append(site.id)
        rows = _claim_rows(site, archived, claims_per_site, now, is_hostile)
        session.execute(insert(Claim), rows)
        claims = list(session.scalars(select(Claim).where(Claim.site_id == site.id)))
        session.execute(insert(ChangeEvent), _event_rows(claims, now, changed_every))
        if is_hostile:
            data.hostile_site_id = site.id
            data.hostile_claim_id = min(c.id for c in claims)
    session.flush()
    return data


def read_sample(session: Session) -> SampleData:
    """The ids `fill_sample` wrote, read back (e.g. from a copy of a filled database)."""
    hostile = session.scalar(select(Site).where(Site.name == "hostile"))
    data = SampleData(site_ids=list(session.scalars(select(Site.id).order_by(Site.id))))
    if hostile is not None:
        data.hostile_site_id = hostile.id
        data.hostile_claim_id = session.scalar(
            select(func.min(Claim.id)).where(Claim.site_id == hostile.id)
        )
    return data
