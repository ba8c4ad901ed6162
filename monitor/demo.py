"""`clinicwatch demo`: the whole cycle on bundled sample clinic sites, on loopback, offline.

Two sample clinics (English and Japanese, one page Shift_JIS without a declared charset) are copied
to the demo folder and served over HTTP on 127.0.0.1. A first check records the baseline; the
`changes/` overlay then edits the sites; a second check finds the new, changed and removed claims
and writes the alert e-mail to the demo folder (no SMTP server needed).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from claims_db.queries import CHANGE_COLUMNS
from monitor.check import SUMMARY_COLUMNS
from monitor.cli_support import emit_rows
from monitor.config import load_config

SAMPLE_SITES = Path(__file__).parent / "demo_sites"
SITE_NAMES = {"aurora": "MX", "sakura": "JP"}
MARKER = ".clinicwatch-demo"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def prepare_workdir(workdir: Path) -> Path:
    """A fresh demo folder with copies of the sample sites (an old demo folder is replaced)."""
    if workdir.exists():
        if not (workdir / MARKER).exists():
            raise FileExistsError(
                f"{workdir} exists and is not a clinicwatch demo folder; choose another --dir"
            )
        shutil.rmtree(workdir)
    (workdir / "sites").mkdir(parents=True)
    (workdir / MARKER).write_text("created by clinicwatch demo\n")
    for name in SITE_NAMES:
        shutil.copytree(SAMPLE_SITES / name, workdir / "sites" / name)
    return workdir


def write_config(workdir: Path, urls: dict[str, str]) -> Path:
    """The demo's config: its own SQLite file, no politeness delay, e-mails to a folder."""
    config = {
        "database": "sqlite:///clinicwatch.db",
        "sites": [
            {"name": name, "url": urls[name], "country": country, "interval": "1d"}
            for name, country in SITE_NAMES.items()
        ],
        "crawl": {"download_delay": 0, "timeout": 10, "retries": 0},
        "alerts": {
            "from": "clinicwatch@example.org",
            "file_dir": "outbox",
            "subscribers": [{"email": "watchdog@example.org"}],
        },
    }
    path = workdir / "clinicwatch.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# Noise on every page that must produce no event: the footer's copyright year moves on.
YEAR_BUMPS = ((b"&copy; 2024", b"&copy; 2025"), (b"Copyright 2024", b"Copyright 2025"))


def bump_years(root: Path) -> list[str]:
    """Move the copyright year of every page under `root` (bytes, so Shift_JIS pages stay intact)."""
    changed = []
    for page in sorted(root.rglob("*.html")):
        body = page.read_bytes()
        bumped = body
        for old, new in YEAR_BUMPS:
            bumped = bumped.replace(old, new)
        if bumped != body:
            page.write_bytes(bumped)
            changed.append(str(page.relative_to(root)))
    return changed


def apply_changes(workdir: Path) -> list[str]:
    """Copy the `changes/` overlay over the served sites and bump every footer year.

    Returns the files changed.
    """
    changed = []
    overlay = SAMPLE_SITES / "changes"
    for source in sorted(p for p in overlay.rglob("*") if p.is_file()):
        relative = source.relative_to(overlay)
        if relative.parts[0] not in SITE_NAMES:
            continue
        target = workdir / "sites" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        changed.append(str(relative))
    return sorted(set(changed) | set(bump_years(workdir / "sites")))


def alert_text(path: Path) -> str:
    """The plain-text part of a written .eml file, with its headers."""
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    body = message.get_body(preferencelist=("plain",))
    head = "\n".join(f"{k}: {message[k]}" for k in ("From", "To", "Subject"))
    return f"{head}\n\n{body.get_content() if body else ''}"


def run_demo(workdir: Path, echo: Callable[[str], None] = print) -> Path:
    """Run the demonstration in `workdir`; returns the config file it wrote."""
    from monitor.api import changes
    from monitor.check import check

    workdir = prepare_workdir(Path(workdir)).resolve()
    with serve_folder(workdir / "sites") as base:
        urls = {name: f"{base}{name}/" for name in SITE_NAMES}
        config_path = write_config(workdir, urls)
        cfg = load_config(config_path)
        echo(f"Serving the sample clinics at {base} (aurora: English, sakura: Japanese)\n")
        echo("== Check 1: the baseline (claims recorded, nothing alerted)")
        emit_rows(check(cfg).summary_rows(), "table", _SUMMARY)
        edited = apply_changes(workdir)
        echo(f"\nThe clinics edit their sites ({len(edited)} files changed)\n")
        echo("== Check 2: what changed")
        report = check(cfg)
        emit_rows(report.summary_rows(), "table", _SUMMARY)
    echo("\n== Change events (clinicwatch changes)")
    emit_rows(changes(cfg), "table", CHANGE_COLUMNS, width=70)
    emails = sorted((workdir / "outbox").glob("*.eml"))
    echo(f"\n== The alert e-mail ({len(emails)} written to {workdir / 'outbox'})")
    for path in emails[-1:]:
        echo(alert_text(path))
    echo(
        "Explore further:\n"
        f"  clinicwatch --config {config_path} claims\n"
        f"  clinicwatch --config {config_path} changes --format jsonl\n"
        f"  clinicwatch --config {config_path} sites"
    )
    return config_path


_SUMMARY = [c for c in SUMMARY_COLUMNS if c not in ("reclassified", "active_claims")]
