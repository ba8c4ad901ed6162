"""The bundled demo sites are well formed and their overlays match changes/EXPECTED.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

DEMO = Path(__file__).parent.parent / "monitor" / "demo_sites"
SITES = ("aurora", "sakura")
SHIFT_JIS_PAGE = DEMO / "sakura" / "price.html"


def page_text(path: Path) -> str:
    """A page's text; the one Shift_JIS page is decoded as cp932, the rest as UTF-8."""
    encoding = "cp932" if path.name == "price.html" and "sakura" in path.parts else "utf-8"
    return path.read_bytes().decode(encoding)


FOOTER_YEAR = r"(©|&copy;|Copyright) 2024"


def html_pages(root: Path) -> list[Path]:
    return sorted(root.rglob("*.html"))


def expected_events() -> list[dict[str, str]]:
    """Rows of the event table in changes/EXPECTED.md."""
    lines = (DEMO / "changes" / "EXPECTED.md").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in row.strip("|").split("|")), strict=True))
        for row in rows[1:]
    ]


@pytest.mark.parametrize("site", SITES)
def test_pages_are_small_but_real(site: str) -> None:
    for root in (DEMO / site, DEMO / "changes" / site):
        for path in html_pages(root):
            if "private" in path.parts:
                continue
            assert 2_000 <= path.stat().st_size <= 8_192, path


@pytest.mark.parametrize("site", SITES)
def test_every_relative_link_resolves(site: str) -> None:
    root = DEMO / site
    for path in html_pages(root):
        soup = BeautifulSoup(page_text(path), "html.parser")
        for tag in soup.find_all(["a", "link"], href=True):
            target = tag["href"].split("?")[0]
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


@pytest.mark.parametrize("site", SITES)
def test_header_and_footer_are_shared(site: str) -> None:
    for root in (DEMO / site, DEMO / "changes" / site):
        chrome = set()
        for path in html_pages(root):
            if "private" in path.parts:
                continue
            soup = BeautifulSoup(page_text(path), "html.parser")
            footer = soup.find("footer").get_text(" ", strip=True)
            nav = [a["href"] for a in soup.find("header").find_all("a")]
            chrome.add((footer, tuple(nav)))
        assert len(chrome) == 1, chrome


def test_shift_jis_page_declares_no_charset_and_needs_cp932() -> None:
    for path in (SHIFT_JIS_PAGE, DEMO / "changes" / "sakura" / "price.html"):
        raw = path.read_bytes()
        assert b"charset" not in raw.lower()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        text = raw.decode("cp932")
        assert "髙橋" in text and "①" in text
        assert "髙" not in raw.decode("shift_jis_2004", "replace")


def test_robots_txt_keeps_crawlers_out_of_private() -> None:
    robots = (DEMO / "aurora" / "robots.txt").read_text(encoding="utf-8")
    assert "Disallow: /private/" in robots
    assert (DEMO / "aurora" / "private" / "staff.html").exists()


def test_overlays_only_replace_existing_pages() -> None:
    for site in SITES:
        for path in (DEMO / "changes" / site).iterdir():
            assert (DEMO / site / path.name).exists(), path


def test_each_site_gets_new_changed_and_removed_events() -> None:
    kinds = {(row["site"], row["event"]) for row in expected_events()}
    assert kinds == {(site, event) for site in SITES for event in ("new", "changed", "removed")}


@pytest.mark.parametrize("row", expected_events(), ids=lambda r: f"{r['site']}-{r['event']}")
def test_expected_event_matches_the_files(row: dict[str, str]) -> None:
    before = page_text(DEMO / row["site"] / row["page"])
    after = page_text(DEMO / "changes" / row["site"] / row["page"])
    if row["old_text"]:
        assert row["old_text"] in before and row["old_text"] not in after
    if row["new_text"]:
        assert row["new_text"] in after and row["new_text"] not in before
    assert row["event"] != "changed" or (row["old_text"] and row["new_text"])


def test_noise_years_move_on_every_page(tmp_path: Path) -> None:
    from monitor.demo import apply_changes, prepare_workdir

    workdir = prepare_workdir(tmp_path / "demo")
    apply_changes(workdir)
    for site in SITES:
        footers = [p for p in html_pages(DEMO / site) if re.search(FOOTER_YEAR, page_text(p))]
        assert len(footers) >= 6
        for original in footers:
            path = workdir / "sites" / original.relative_to(DEMO)
            assert re.search(r"(©|&copy;|Copyright) 2025", page_text(path)), path
