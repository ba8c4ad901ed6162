"""The command-line contract of DESIGN.md, read back the way scripts read it."""

import json
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from monitor.cli import cli
from monitor.demo import SAMPLE_SITES

RULES = Path(__file__).parents[1] / "config" / "rules"


def jsonl(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def test_extract_reads_html_and_text_files_without_a_database(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><p>Our stem cell therapy improved symptoms in 60% of ALS patients.</p>"
        "<p>We are open on Mondays.</p></body></html>",
        encoding="utf-8",
    )
    notes = tmp_path / "notes.txt"
    notes.write_text("当院の治療は厚生労働省に届出・受理されています。\n", encoding="utf-8")
    rows = jsonl(CliRunner().invoke(cli, ["extract", str(page), str(notes), "--format", "jsonl"]))
    by_source = {r["source"]: r for r in rows}
    assert by_source[str(page)]["category"] == "efficacy_promise"
    assert by_source[str(page)]["lang"] == "en"
    assert "60% of ALS patients" in by_source[str(page)]["text"]
    assert by_source[str(notes)]["category"] == "registry_endorsement"
    assert by_source[str(notes)]["lang"] == "ja"
    assert not (tmp_path / "clinicwatch.db").exists()


def test_extract_decodes_an_undeclared_shift_jis_page():
    page = SAMPLE_SITES / "sakura" / "price.html"
    assert b"charset" not in page.read_bytes().lower()
    rows = jsonl(CliRunner().invoke(cli, ["extract", str(page), "--format", "jsonl"]))
    texts = " ".join(r["text"] for r in rows)
    assert "円" in texts and "\ufffd" not in texts
    assert {r["category"] for r in rows} >= {"price"}


def test_extract_of_a_missing_file_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["extract", str(tmp_path / "nope.html")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_reextract_records_reclassifications_that_are_never_alerted(tmp_path, copy_site, serve_dir):
    from monitor.check import check
    from monitor.config import load_config

    root = copy_site("clinic_en")
    rules = Path(shutil.copytree(RULES, tmp_path / "rules"))
    config = tmp_path / "clinicwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": "sqlite:///cw.db",
                "rules_dir": "rules",
                "sites": [{"name": "renova", "url": serve_dir(root)}],
                "crawl": {"download_delay": 0, "retries": 0, "timeout": 5},
                "alerts": {"file_dir": "outbox", "subscribers": [{"email": "w@example.org"}]},
            }
        ),
        encoding="utf-8",
    )
    cfg = load_config(config)
    check(cfg)
    before = jsonl(
        CliRunner().invoke(cli, ["--config", str(config), "claims", "--format", "jsonl"])
    )
    registry = [c for c in before if c["category"] == "registry_endorsement"]
    assert registry
    # New rules: every English registry rule is dropped (and the model, which would find
    # some of those claims by itself, is switched off).
    (rules / "model.yaml").write_text("enabled: false\n", encoding="utf-8")
    en = yaml.safe_load((rules / "en.yaml").read_text(encoding="utf-8"))
    kept = [r for r in en["rules"] if r["category"] != "registry_endorsement"]
    (rules / "en.yaml").write_text(
        yaml.safe_dump({**en, "rules": kept}, allow_unicode=True), encoding="utf-8"
    )

    result = CliRunner().invoke(cli, ["--config", str(config), "reextract"])
    assert result.exit_code == 0, result.output
    assert f"renova: {len(registry)} reclassified" in result.output
    events = jsonl(
        CliRunner().invoke(cli, ["--config", str(config), "changes", "--format", "jsonl"])
    )
    assert {e["event"] for e in events} == {"reclassified"}
    assert {e["claim_id"] for e in events} == {c["id"] for c in registry}
    after = jsonl(CliRunner().invoke(cli, ["--config", str(config), "claims", "--format", "jsonl"]))
    assert not [c for c in after if c["category"] == "registry_endorsement"]
    check(cfg)  # the site did not change: nothing to alert, now or later
    assert not list((tmp_path / "outbox").glob("*.eml"))


def test_table_columns_line_up_with_japanese_text():
    import io

    from monitor.cli_support import display_width, emit_rows

    out = io.StringIO()
    rows = [
        {"category": "price", "text": "幹細胞点滴療法は1回1,650,000円（税込）です。", "lang": "ja"},
        {
            "category": "efficacy_promise",
            "text": "Symptoms improved in 60% of patients.",
            "lang": "en",
        },
    ]
    emit_rows(rows, "table", ["category", "text", "lang"], out=out, width=30)
    lines = out.getvalue().splitlines()
    starts = {display_width(line[: line.rindex(" ") + 1]) for line in lines}
    assert len(starts) == 1  # the last column starts at the same screen column on every line
    assert "…" in lines[2] and "…" in lines[3]
