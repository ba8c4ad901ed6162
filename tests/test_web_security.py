"""Security of the review app: hashes, cookies, CSRF, roles, rate limiting, stored XSS, headers."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from claims_db.engine import session_scope
from claims_db.models import Review, User
from monitor.config import config_from_dict
from monitor.web.app import create_app
from monitor.web.auth import add_user
from monitor.web.routes import admin, api, login, pages
from monitor.web.sample import HOSTILE_URL, fill_sample, read_sample
from monitor.web.security import SESSION_COOKIE, LoginRateLimiter

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PUBLIC = {"/login", "/logout"}
ROUTERS = (login, pages, admin, api)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """Built once per module (argon2 hashing is slow on purpose); each test gets a copy."""
    path = tmp_path_factory.mktemp("web") / "template.db"
    app = create_app(config_from_dict({"database": f"sqlite:///{path}"}), secret_key="x")
    with session_scope(app.state.engine) as session:
        app.state.sample = fill_sample(session, sites=2, claims_per_site=8)
        for name, role in (("ada", "admin"), ("rita", "reviewer"), ("vic", "viewer")):
            add_user(session, name, role, PASSWORD)
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


def csrf_of(client: TestClient, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD):
    token = csrf_of(client)
    return client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token, "next": "/sites"},
        follow_redirects=False,
    )


def signed_in(app, name: str, **kwargs) -> TestClient:
    client = TestClient(app, **kwargs)
    assert sign_in(client, name).status_code == 303
    return client


def test_passwords_are_stored_as_argon2_hashes(app):
    with session_scope(app.state.engine) as session:
        hashes = session.scalars(select(User.password_hash)).all()
    assert len(hashes) == 3
    for value in hashes:
        assert value.startswith("$argon2id$")
        assert PASSWORD not in value


def test_wrong_password_is_refused(app):
    client = TestClient(app)
    response = sign_in(client, "rita", "not the password")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert client.get("/sites", follow_redirects=False).status_code == 303


def test_session_cookie_is_httponly_and_samesite_not_secure_over_http(app):
    cookie = sign_in(TestClient(app), "rita").headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()


def test_session_cookie_is_secure_over_https(app):
    client = TestClient(app, base_url="https://testserver")
    cookie = sign_in(client, "rita").headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_forged_session_cookie_is_ignored(app):
    client = TestClient(app, cookies={SESSION_COOKIE: "eyJ1aWQiOjF9.forged.signature"})
    assert client.get("/api/sites").status_code == 401


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_login_post_without_the_right_csrf_token_is_refused(app, token):
    client = TestClient(app)
    csrf_of(client)
    data = {"username": "rita", "password": PASSWORD}
    if token:
        data["csrf_token"] = token
    assert client.post("/login", data=data, follow_redirects=False).status_code == 403


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_review_post_without_the_right_csrf_token_is_refused(app, token):
    client = signed_in(app, "rita")
    claim_id = app.state.sample.hostile_claim_id
    data = {"decision": "confirmed"} | ({"csrf_token": token} if token else {})
    response = client.post(f"/claims/{claim_id}/reviews", data=data, follow_redirects=False)
    assert response.status_code == 403
    headers = {"X-CSRF-Token": token} if token else {}
    response = client.post(
        "/api/reviews", json={"claim_id": claim_id, "decision": "confirmed"}, headers=headers
    )
    assert response.status_code == 403
    with session_scope(app.state.engine) as session:
        assert session.scalars(select(Review)).all() == []


def test_every_post_form_carries_a_csrf_token(app):
    client = signed_in(app, "ada")
    site_id = app.state.sample.site_ids[0]
    claim_id = app.state.sample.hostile_claim_id
    for path in ("/sites", f"/sites/{site_id}", f"/claims/{claim_id}", "/queue", "/admin/users"):
        html = client.get(path).text
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S)
        assert forms, f"{path} has no POST form"
        for form in forms:
            assert 'name="csrf_token"' in form, f"a form on {path} lacks the CSRF field"


def _guarded_routes(app) -> list[APIRoute]:
    # The routers' own tables: FastAPI's app.routes nests included routers differently by version.
    routes = [r for module in ROUTERS for r in module.router.routes]
    return [r for r in routes if isinstance(r, APIRoute) and r.path not in PUBLIC]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path).replace("/export/1", "/export/claims")


def test_every_route_declares_a_role(app):
    routes = _guarded_routes(app)
    assert len(routes) > 15
    for route in routes:
        roles = [getattr(dep.call, "required_role", None) for dep in route.dependant.dependencies]
        assert any(roles), f"{route.path} does not check the role"


def test_unauthenticated_requests_get_401_or_a_redirect_to_login(app):
    client = TestClient(app)
    for route in _guarded_routes(app):
        for method in route.methods - {"HEAD"}:
            path = _concrete(route.path)
            headers = {}
            if method == "POST":  # a valid token, so the role check is what answers
                headers["X-CSRF-Token"] = csrf_of(client)
            response = client.request(method, path, headers=headers, follow_redirects=False)
            if path.startswith("/api/"):
                assert response.status_code == 401, f"{method} {path}"
            else:
                assert response.status_code == 303, f"{method} {path}"
                assert response.headers["location"].startswith("/login?next=")


def test_viewer_reads_but_cannot_review_or_manage_users(app):
    client = signed_in(app, "vic")
    claim_id = app.state.sample.hostile_claim_id
    assert client.get(f"/claims/{claim_id}").status_code == 200
    assert 'form class="review"' not in client.get(f"/claims/{claim_id}").text
    token = client.get("/api/me").json()["csrf_token"]
    response = client.post(
        f"/claims/{claim_id}/reviews",
        data={"decision": "confirmed", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 403
    response = client.post(
        "/api/reviews",
        json={"claim_id": claim_id, "decision": "confirmed"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 403
    assert client.get("/admin/users").status_code == 403


def test_reviewer_cannot_manage_users_admin_can(app):
    reviewer = signed_in(app, "rita")
    assert reviewer.get("/admin/users").status_code == 403
    admin = signed_in(app, "ada")
    token = csrf_of(admin, "/admin/users")
    response = admin.post(
        "/admin/users",
        data={"name": "newbie", "role": "viewer", "password": "long enough", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "newbie" in admin.get("/admin/users").text


def test_switched_off_user_loses_their_session(app):
    client = signed_in(app, "vic")
    assert client.get("/api/me").status_code == 200
    with session_scope(app.state.engine) as session:
        session.scalar(select(User).where(User.name == "vic")).active = False
    assert client.get("/api/me").status_code == 401


def test_login_is_rate_limited_per_address_and_user(app):
    client = TestClient(app)
    for _ in range(5):
        assert sign_in(client, "rita", "guess").status_code == 401
    blocked = sign_in(client, "rita", PASSWORD)  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    # Another account from the same address is not locked out by these failures.
    assert sign_in(TestClient(app), "vic").status_code == 303


def test_rate_limiter_forgets_failures_after_the_window():
    now = [1000.0]
    limiter = LoginRateLimiter(max_failures=2, window=60, clock=lambda: now[0])
    limiter.record_failure("1.2.3.4", "Rita")
    limiter.record_failure("1.2.3.4", "rita")
    assert limiter.retry_after("1.2.3.4", "RITA") > 0
    now[0] += 61
    assert limiter.retry_after("1.2.3.4", "rita") == 0


def test_login_next_cannot_redirect_off_site(app):
    client = TestClient(app)
    token = csrf_of(client)
    response = client.post(
        "/login",
        data={
            "username": "rita",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/sites"


def _pages_showing_hostile_text(app) -> list[str]:
    sample = app.state.sample
    return [
        f"/sites/{sample.hostile_site_id}",
        f"/claims/{sample.hostile_claim_id}",
        f"/queue?site={sample.hostile_site_id}",
    ]


class TagCollector(HTMLParser):
    """Every real tag and its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parsed_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = TagCollector()
    collector.feed(html)
    return collector.tags


def test_crawled_markup_is_escaped_everywhere(app):
    client = signed_in(app, "rita")
    for path in _pages_showing_hostile_text(app):
        html = client.get(path).text
        assert "&lt;script&gt;alert(" in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
        tags = parsed_tags(html)
        scripts = [attrs for tag, attrs in tags if tag == "script"]
        assert scripts == [{"src": "/static/app.js", "defer": None}], path
        assert not [t for t, _ in tags if t in ("img", "iframe", "object", "embed")], path
        handlers = [(t, a) for t, a in tags for name in a if name.startswith("on")]
        assert handlers == [], path


def test_no_link_points_to_a_javascript_url(app):
    client = signed_in(app, "rita")
    for path in _pages_showing_hostile_text(app):
        targets = [
            value.strip()
            for _tag, attrs in parsed_tags(client.get(path).text)
            for name, value in attrs.items()
            if name in ("href", "src", "action", "formaction") and value is not None
        ]
        assert targets, path
        for target in targets:
            assert target.startswith(("/", "http://", "https://")), f"{path}: {target}"
    claim_page = client.get(f"/claims/{app.state.sample.hostile_claim_id}").text
    assert HOSTILE_URL in claim_page  # shown as text, so the reviewer sees what the site did


def test_archived_page_is_shown_as_text_not_html(app):
    client = signed_in(app, "rita")
    site_claims = client.get(f"/api/claims?site_id={app.state.sample.hostile_site_id}").json()
    ordinary = next(c for c in site_claims["items"] if c["url"].startswith("https://"))
    html = client.get(f"/claims/{ordinary['id']}").text
    archived = html.split('<div class="archived">', 1)[1].split("</div>", 1)[0]
    assert "<mark>" in archived
    assert "Our stem cells cure ALS see results" in archived  # the hostile paragraph, as text
    assert "document.title" not in archived  # the archived page's own script is not shown
    assert [tag for tag, _ in parsed_tags(archived)] == ["mark"]


def test_security_headers_on_pages_api_and_login(app):
    client = signed_in(app, "vic")
    for path in ("/login", "/sites", "/api/sites", "/static/app.css"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_templates_have_no_inline_script_or_handlers():
    templates = Path(__file__).parents[1] / "monitor" / "web" / "templates"
    for template in templates.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\ssrc=)", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert not re.search(r"\|\s*safe\b|Markup\(|autoescape\s+false", text), template.name
