"""The review flow in a real headless Chromium: sign in, open a site, confirm from the queue.

Set CLINICWATCH_SCREENSHOT_DIR to keep the screenshots (docs/img/site-page.png comes from here).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from claims_db.engine import session_scope
from monitor.config import config_from_dict
from monitor.web.app import create_app
from monitor.web.auth import add_user
from monitor.web.sample import fill_sample

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    """The app on a SQLite file, served by uvicorn in a thread on a loopback port."""
    import uvicorn

    app = create_app(
        config_from_dict({"database": f"sqlite:///{tmp_path / 'review.db'}"}),
        secret_key="browser-test",
    )
    with session_scope(app.state.engine) as session:
        sample = fill_sample(session, sites=4, claims_per_site=10)
        add_user(session, "rita", "reviewer", PASSWORD)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", sample
    server.should_exit = True
    thread.join(timeout=10)
    app.state.engine.dispose()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        context.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        context.dialogs = dialogs
        yield context
        browser.close()


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CLINICWATCH_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=False)
    return path


def test_sign_in_open_site_confirm_from_queue_and_see_decision(server, page, tmp_path):
    base, sample = server
    page.goto(f"{base}/sites")
    assert "/login" in page.url  # not signed in yet
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{base}/sites")
    assert page.locator("table.sites tbody tr").count() == 5

    page.click("text=clinic-000")
    page.wait_for_url(f"{base}/sites/{sample.site_ids[0]}")
    assert page.locator("li.claim").count() == 10
    assert page.locator("li.claim mark").first.inner_text() == "improved in 60%"
    assert _screenshot(page, "site-page.png", tmp_path).stat().st_size > 10_000

    page.click("nav >> text=Review queue")
    page.wait_for_url(f"{base}/queue")
    first = page.locator("li.queue-item").first
    claim_href = first.locator("a.claim-link").get_attribute("href")
    first.locator("input[name=note]").fill("promise of efficacy for ALS")
    first.locator("button[value=confirmed]").click()
    page.wait_for_url(re.compile(r"/queue\?page=1$"))
    assert page.locator(f"a.claim-link[href='{claim_href}']").count() == 0

    page.goto(f"{base}{claim_href}")
    decision = page.locator("ul.reviews li").first
    assert "confirmed" in decision.inner_text()
    assert "rita" in decision.inner_text()
    assert "promise of efficacy for ALS" in decision.inner_text()
    _screenshot(page, "claim-page.png", tmp_path)


def test_hostile_site_text_does_not_run_in_the_browser(server, page):
    base, sample = server
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{base}/sites")
    for path in (
        f"/sites/{sample.hostile_site_id}",
        f"/claims/{sample.hostile_claim_id}",
        f"/queue?site={sample.hostile_site_id}",
    ):
        page.goto(f"{base}{path}")
        page.wait_for_load_state("load")
        assert page.locator("img").count() == 0, path
        assert "<script>alert(" in page.inner_text("main"), path  # shown as text
        assert page.title().endswith("clinicwatch"), path
        hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.href)")
        assert all(h.startswith(("http://", "https://")) for h in hrefs), path
    assert page.dialogs == []  # no alert() ever ran
