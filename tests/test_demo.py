"""`clinicwatch demo` as a user runs it: a real child process, offline, exactly the expected events."""

import json
import re
import subprocess
import sys

from monitor.demo import SAMPLE_SITES


def expected_events() -> set[tuple]:
    rows = set()
    for line in (SAMPLE_SITES / "changes" / "EXPECTED.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in ("new", "changed", "removed"):
            event, site, page, category, old, new = cells
            text = old if event == "removed" else new
            rows.add((event, site, page, category, text, old if event == "changed" else None))
    return rows


def test_demo_runs_offline_and_reports_exactly_the_expected_events(tmp_path):
    workdir = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--dir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Check 2" in run.stdout and "Subject:" in run.stdout

    changes = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(workdir / "clinicwatch.yaml"),
            "changes",
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    got = {
        (
            e["event"],
            e["site"],
            e["url"].rsplit("/", 1)[1] or "index.html",
            e["category"],
            e["text"],
            e["old_text"],
        )
        for e in map(json.loads, changes.splitlines())
    }
    assert got == expected_events()

    (email,) = sorted((workdir / "outbox").glob("*.eml"))
    body = email.read_bytes().decode("utf-8", "replace")
    assert re.search(r"^To: watchdog@example\.org", body, re.M)
