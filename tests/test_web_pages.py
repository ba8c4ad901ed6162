"""The review app's pages and API: what a reviewer sees and does, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from claims_db.engine import session_scope
from claims_db.models import ChangeEvent, Claim, Content, Review, Snapshot
from monitor.config import config_from_dict
from monitor.web.app import create_app
from monitor.web.auth import add_user, authenticate
from monitor.web.sample import fill_sample, read_sample
from monitor.web.textview import highlight, safe_http_url, word_diff

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """Built once per module (argon2 hashing is slow on purpose); each test gets a copy."""
    path = tmp_path_factory.mktemp("web") / "template.db"
    app = create_app(config_from_dict({"database": f"sqlite:///{path}"}), secret_key="x")
    with session_scope(app.state.engine) as session:
        fill_sample(session, sites=3, claims_per_site=8)
        add_user(session, "rita", "reviewer", PASSWORD)
        add_user(session, "vic", "viewer", PASSWORD)
    app.state.engine.dispose()
    return path


@pytest.fixture
def app(template_db: Path, tmp_path: Path):
    db = tmp_path / "web.db"
    shutil.copy(template_db, db)
    app = create_app(config_from_dict({"database": f"sqlite:///{db}"}), secret_key="test-secret")
    with session_scope(app.state.engine) as session:
        app.state.sample = read_sample(session)
    yield app
    app.state.engine.dispose()


def signed_in(app, name: str) -> TestClient:
    client = TestClient(app)
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post(
        "/login",
        data={"username": name, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    return client


def first_queue_item(client: TestClient) -> tuple[int, int, str]:
    html = client.get("/queue").text
    match = re.search(
        r'id="event-(\d+)".*?href="/claims/(\d+)".*?name="csrf_token" value="([^"]+)"', html, re.S
    )
    assert match, "the queue shows no reviewable item"
    return int(match.group(1)), int(match.group(2)), match.group(3)


def test_sites_list_shows_checks_counts_and_unreviewed(app):
    html = signed_in(app, "vic").get("/sites").text
    assert "clinic-000" in html and "clinic-002" in html and "hostile" in html
    assert "efficacy_promise" in html and "registry_endorsement" in html
    assert "failed" in html  # clinic-003 is not there, but the hostile site (index 3) failed
    assert 'href="/queue?site=' in html


@pytest.mark.parametrize(
    ("query", "present", "absent"),
    [
        ("country=JP", ["clinic-000"], ["clinic-001", "clinic-002"]),
        ("category=price", ["clinic-000", "clinic-001"], []),
        ("condition=stroke", ["clinic-000"], []),
        ("q=%E5%8E%9A%E7%94%9F%E5%8A%B4%E5%83%8D%E7%9C%81", ["clinic-001", "hostile"], []),
        ("q=cure+ALS", ["hostile"], ["clinic-000", "clinic-001"]),
        ("q=no+such+words+anywhere", [], ["clinic-000", "clinic-001"]),
    ],
)
def test_sites_list_filters(app, query, present, absent):
    html = signed_in(app, "vic").get(f"/sites?{query}").text
    rows = re.findall(r'<a href="/sites/\d+">([^<]+)</a>', html)
    for name in present:
        assert name in rows, query
    for name in absent:
        assert name not in rows, query


def test_sites_list_sorts_by_unreviewed(app):
    client = signed_in(app, "rita")
    with session_scope(app.state.engine) as session:
        events = session.scalars(
            select(ChangeEvent).where(ChangeEvent.site_id == app.state.sample.site_ids[1])
        ).all()
        user = authenticate(session, "rita", PASSWORD)
        for event in events:
            session.add(Review(claim_id=event.claim_id, event_id=event.id, user_id=user.id,
                               decision="dismissed"))  # fmt: skip
    html = client.get("/sites?sort=unreviewed&order=asc").text
    rows = re.findall(r'<a href="/sites/\d+">([^<]+)</a>', html)
    assert rows[0] == "clinic-001"


def test_site_page_groups_claims_by_page_and_shows_the_timeline(app):
    site_id = app.state.sample.site_ids[0]
    html = signed_in(app, "vic").get(f"/sites/{site_id}").text
    assert html.count('class="page-claims"') == 2
    assert "<mark>improved in 60%</mark>" in html
    assert 'class="condition">ALS<' in html
    assert "first seen" in html and "baseline" in html
    assert html.count('class="event event-new"') == 8
    assert 'class="event event-changed"' in html


def test_claim_page_shows_diff_context_live_link_and_decisions(app):
    client = signed_in(app, "rita")
    with session_scope(app.state.engine) as session:
        changed = session.scalars(select(ChangeEvent).where(ChangeEvent.event == "changed")).first()
        claim_id = changed.claim_id
    html = client.get(f"/claims/{claim_id}").text
    assert "<del>" in html or "<ins>" in html or "old" in html
    assert 'class="archived"' in html and "<mark>" in html
    assert re.search(r'<a class="live" href="https://clinic-\d+\.example/treatments/\d"', html)
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "Not reviewed yet." in html


def test_changed_event_shows_a_word_diff(app):
    client = signed_in(app, "vic")
    with session_scope(app.state.engine) as session:
        claim = session.scalar(select(Claim).where(Claim.text.like("Symptoms improved%(8)%")))
        if claim is None:
            claim = session.scalar(select(Claim).where(Claim.text.like("Symptoms improved%")))
        session.add(ChangeEvent(site_id=claim.site_id, claim_id=claim.id, event="changed",
                                category=claim.category, url=claim.url, text=claim.text,
                                old_text=claim.text.replace("60%", "40%")))  # fmt: skip
        claim_id = claim.id
    html = client.get(f"/claims/{claim_id}").text
    assert "<del>40</del><ins>60</ins>" in html


def test_confirm_from_queue_is_stored_and_shown_on_the_claim(app):
    client = signed_in(app, "rita")
    total_before = int(re.search(r"(\d+) unreviewed change", client.get("/queue").text).group(1))
    event_id, claim_id, token = first_queue_item(client)
    response = client.post(
        f"/claims/{claim_id}/reviews",
        data={"decision": "confirmed", "note": "clear promise", "event_id": event_id,
              "csrf_token": token, "next": "/queue"},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    queue = client.get("/queue").text
    assert f'id="event-{event_id}"' not in queue
    assert f"{total_before - 1} unreviewed change" in queue
    claim_page = client.get(f"/claims/{claim_id}").text
    assert "decision-confirmed" in claim_page and "rita" in claim_page
    assert "clear promise" in claim_page
    with session_scope(app.state.engine) as session:
        review = session.scalar(select(Review))
        assert (review.decision, review.event_id, review.user.name) == (
            "confirmed",
            event_id,
            "rita",
        )
        assert review.created_at is not None


def test_queue_is_oldest_first(app):
    html = signed_in(app, "vic").get("/queue").text
    ids = [int(i) for i in re.findall(r'id="event-(\d+)"', html)]
    with session_scope(app.state.engine) as session:
        times = {e.id: e.detected_at for e in session.scalars(select(ChangeEvent))}
    shown = [times[i] for i in ids]
    assert shown == sorted(shown) and len(ids) == len(times) == 40


def test_review_of_an_event_of_another_claim_is_refused(app):
    client = signed_in(app, "rita")
    event_id, claim_id, token = first_queue_item(client)
    response = client.post(
        f"/claims/{claim_id + 1}/reviews",
        data={"decision": "confirmed", "event_id": event_id, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "does not belong" in response.text


def test_missing_site_and_claim_are_404_pages(app):
    client = signed_in(app, "vic")
    assert client.get("/sites/9999").status_code == 404
    assert client.get("/claims/9999").status_code == 404
    assert client.get("/api/claims/9999").status_code == 404


def test_broken_archived_page_does_not_break_the_claim_page(app):
    client = signed_in(app, "vic")
    with session_scope(app.state.engine) as session:
        claim = session.scalar(select(Claim).limit(1))
        snapshot = session.get(Snapshot, claim.last_snapshot_id)
        session.get(Content, snapshot.content_sha256).body = b"\xff\xfe\x00<<<\x80 not html"
        claim_id = claim.id
    response = client.get(f"/claims/{claim_id}")
    assert response.status_code == 200
    assert "not available" in response.text


# -- API ---------------------------------------------------------------------------------


def test_api_lists_sites_claims_changes_and_reviews(app):
    client = signed_in(app, "rita")
    sites = client.get("/api/sites").json()["items"]
    assert {s["name"] for s in sites} == {"clinic-000", "clinic-001", "clinic-002", "hostile"}
    assert all(s["unreviewed_changes"] > 0 for s in sites)
    claims = client.get("/api/claims?category=price").json()["items"]
    assert claims and all(c["category"] == "price" for c in claims)
    first = client.get("/api/claims?limit=5").json()
    second = client.get(f"/api/claims?limit=5&after_id={first['next_after_id']}").json()
    assert first["items"][-1]["id"] < second["items"][0]["id"]
    changes = client.get("/api/changes?event=changed").json()["items"]
    assert changes and all(c["old_text"] for c in changes)
    token = client.get("/api/me").json()["csrf_token"]
    claim_id = claims[0]["id"]
    created = client.post(
        "/api/reviews",
        json={"claim_id": claim_id, "decision": "escalated", "note": "ask the ministry"},
        headers={"X-CSRF-Token": token},
    )
    assert created.status_code == 201
    assert created.json()["reviewer"] == "rita"
    reviews = client.get(f"/api/reviews?claim_id={claim_id}").json()["items"]
    assert [r["decision"] for r in reviews] == ["escalated"]
    detail = client.get(f"/api/claims/{claim_id}").json()
    assert detail["reviews"][0]["note"] == "ask the ministry"
    assert detail["events"][0]["event"] == "new"


def test_api_rejects_unknown_decision(app):
    client = signed_in(app, "rita")
    token = client.get("/api/me").json()["csrf_token"]
    response = client.post(
        "/api/reviews",
        json={"claim_id": 1, "decision": "approved"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 400 and "unknown decision" in response.json()["detail"]


def test_openapi_description_lists_the_api_only_for_signed_in_users(app):
    assert TestClient(app).get("/api/openapi.json").status_code == 401
    spec = signed_in(app, "vic").get("/api/openapi.json").json()
    assert {"/api/sites", "/api/claims", "/api/changes", "/api/reviews"} <= set(spec["paths"])
    assert not any(path.startswith(("/sites", "/queue", "/login")) for path in spec["paths"])


def test_export_route_streams_a_file(app):
    pytest.importorskip("claims_db.export")
    response = signed_in(app, "vic").get("/api/export/claims?format=jsonl")
    assert response.status_code == 200
    assert "clinicwatch-claims.jsonl" in response.headers["content-disposition"]
    assert response.content.count(b"\n") >= 8
    bad = signed_in(app, "vic").get("/api/export/claims?format=csv&site=nowhere")
    assert bad.status_code == 400 and "no site named 'nowhere'" in bad.json()["detail"]


# -- text helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://clinic.example/a", "https://clinic.example/a"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/"),
        ("javascript:alert(1)", None),
        (" JavaScript:alert(1)", None),
        ("data:text/html,<script>", None),
        ("/relative/path", None),
        ("https://x.example/\nSet-Cookie:", None),
        (None, None),
    ],
)
def test_safe_http_url(url, expected):
    assert safe_http_url(url) == expected


def test_highlight_ignores_offsets_out_of_range():
    assert [s.kind for s in highlight("abc def", 4, 7)] == ["text", "mark"]
    assert [s.kind for s in highlight("abc", 2, 10)] == ["text"]


def test_word_diff_splits_japanese_by_character():
    kinds = [(s.kind, s.text) for s in word_diff("届出された治療", "受理された治療")]
    assert ("del", "届出") in kinds and ("ins", "受理") in kinds


def test_filters_queue_and_review_work_on_sqlite_and_postgresql(database_url):
    app = create_app(config_from_dict({"database": database_url}), secret_key="test-secret")
    with session_scope(app.state.engine) as session:
        fill_sample(session, sites=2, claims_per_site=8)
        add_user(session, "rita", "reviewer", PASSWORD)
    client = signed_in(app, "rita")
    stroke = client.get("/api/claims?condition=stroke").json()["items"]
    assert stroke and all("stroke" in c["conditions"] for c in stroke)
    assert client.get("/api/claims?q=SYMPTOMS+improved").json()["items"]
    assert "clinic-001" in client.get("/sites?category=price&sort=claims&order=desc").text
    event_id, claim_id, token = first_queue_item(client)
    client.post(
        f"/claims/{claim_id}/reviews",
        data={"decision": "dismissed", "event_id": event_id, "csrf_token": token},
    )
    unreviewed = client.get("/api/changes?unreviewed=true&limit=1000").json()["items"]
    assert event_id not in {e["id"] for e in unreviewed}
    app.state.engine.dispose()
