"""Research exports: every format round-trips, filters select, ids stay, the datapackage validates."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from frictionless import validate
from sqlalchemy import Engine

from claims_db.datapackage import TABLE_FIELDS
from claims_db.engine import open_database, session_scope
from claims_db.export import (
    ExportError,
    ExportFilters,
    arrow_schema,
    export_stream,
    export_to_path,
    iter_rows,
)
from claims_db.models import (
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
from monitor.cli_support import CliContext
from monitor.export_cli import export_command

JA_TEXT = "厚生労働省に届出・受理された、安全な再生医療です。"
MULTILINE_TEXT = 'ALSの症状の改善が見られました。\n"個人の感想です", 効果には個人差があります。'
FORMULA_TEXT = '=HYPERLINK("http://evil.example/","click") cures stroke, "guaranteed"'
MINUS_TEXT = "-50% off: $14,500 per infusion"
AT_TEXT = "@home recovery: Aurora gave me my life back"
QUOTE_TEXT = "'Miracle' results in 60% of patients"


def at(day: int, month: int = 1) -> datetime:
    return datetime(2024, month, day, 9, 30, tzinfo=UTC)


def _snapshot(s, crawl: Crawl, page: Page, sha: str, fetched: datetime) -> Snapshot:
    s.merge(Content(sha256=sha, body=sha.encode(), size=64))
    snap = Snapshot(
        crawl_id=crawl.id,
        page_id=page.id,
        ok=True,
        status=200,
        content_sha256=sha,
        fetched_at=fetched,
    )
    s.add(snap)
    s.flush()
    return snap


def _claim(s, site: Site, page: Page, snap: Snapshot, **kw) -> Claim:
    claim = Claim(
        site_id=site.id,
        page_id=page.id,
        key=kw["text"].lower(),
        url=page.url,
        rule_id=f"{kw.get('lang', 'en')}.rule",
        rules_version="r7",
        first_snapshot_id=snap.id,
        last_snapshot_id=snap.id,
        **kw,
    )
    s.add(claim)
    s.flush()
    return claim


def build_database(url: str) -> Engine:
    """Two clinics in two countries, claims in Japanese and English, change events and reviews.

    Claim ids 1..6 are created in the order of the texts above.
    """
    engine = open_database(url)
    with session_scope(engine) as s:
        aurora = Site(
            name="aurora", url="http://aurora.test/", country="JP", lang="ja", created_at=at(1)
        )
        bayside = Site(
            name="bayside", url="http://bayside.test/", country="US", lang="en", created_at=at(1)
        )
        s.add_all([aurora, bayside, Site(name="quiet", url="http://quiet.test/", created_at=at(2))])
        s.flush()
        crawl_a = Crawl(site_id=aurora.id, started_at=at(10), status="done", rules_version="r7")
        crawl_b = Crawl(site_id=bayside.id, started_at=at(12), status="done", rules_version="r7")
        s.add_all([crawl_a, crawl_b])
        s.flush()
        page_a = Page(site_id=aurora.id, url="http://aurora.test/治療/")
        page_b = Page(site_id=bayside.id, url="http://bayside.test/stroke?x=1,2")
        s.add_all([page_a, page_b])
        s.flush()
        snap_a = _snapshot(s, crawl_a, page_a, "a" * 64, at(10))
        snap_b = _snapshot(s, crawl_b, page_b, "b" * 64, at(12))
        c1 = _claim(
            s,
            aurora,
            page_a,
            snap_a,
            category="registry_endorsement",
            lang="ja",
            text=JA_TEXT,
            conditions=[],
            first_seen_at=at(10),
            last_seen_at=at(20),
        )
        _claim(
            s,
            aurora,
            page_a,
            snap_a,
            category="efficacy_promise",
            lang="ja",
            text=MULTILINE_TEXT,
            conditions=["ALS"],
            attributes={"figures": [{"value": 60, "unit": "%"}]},
            hedged=True,
            confidence=0.8,
            first_seen_at=at(10),
            last_seen_at=at(20),
        )
        c3 = _claim(
            s,
            bayside,
            page_b,
            snap_b,
            category="efficacy_promise",
            lang="en",
            text=FORMULA_TEXT,
            conditions=["stroke"],
            first_seen_at=at(12),
            last_seen_at=at(12, 3),
        )
        _claim(
            s,
            bayside,
            page_b,
            snap_b,
            category="price",
            lang="en",
            text=MINUS_TEXT,
            trigger="$14,500",
            first_seen_at=at(12),
            last_seen_at=at(12, 3),
        )
        c5 = _claim(
            s,
            bayside,
            page_b,
            snap_b,
            category="testimonial",
            lang="en",
            text=AT_TEXT,
            active=False,
            first_seen_at=at(12),
            last_seen_at=at(13),
            removed_at=at(14),
        )
        _claim(
            s,
            bayside,
            page_b,
            snap_b,
            category="efficacy_promise",
            lang="en",
            text=QUOTE_TEXT,
            conditions=["Stroke", "ALS"],
            first_seen_at=at(1, 3),
            last_seen_at=at(12, 3),
        )
        events = [
            ChangeEvent(site_id=aurora.id, claim_id=c1.id, event="new", category=c1.category,
                        url=c1.url, text=c1.text, detected_at=at(15), crawl_id=crawl_a.id,
                        snapshot_id=snap_a.id),
            ChangeEvent(site_id=bayside.id, claim_id=c3.id, event="changed", category=c3.category,
                        url=c3.url, text=c3.text, old_text="Cures stroke.", detected_at=at(1, 2),
                        crawl_id=crawl_b.id, snapshot_id=snap_b.id),
            ChangeEvent(site_id=bayside.id, claim_id=c5.id, event="removed", category=c5.category,
                        url=c5.url, text=c5.text, detected_at=at(14), crawl_id=crawl_b.id),
        ]  # fmt: skip
        s.add_all(events)
        rita = User(name="rita", role="reviewer", password_hash="x")
        s.add(rita)
        s.flush()
        s.add_all(
            [
                Review(claim_id=c1.id, user_id=rita.id, decision="escalated", created_at=at(16)),
                Review(claim_id=c1.id, user_id=rita.id, decision="confirmed", created_at=at(17)),
                Review(claim_id=c5.id, user_id=rita.id, decision="dismissed", created_at=at(18)),
            ]
        )
    return engine


@pytest.fixture
def engine(database_url: str) -> Engine:
    """The example database on SQLite and on PostgreSQL."""
    return build_database(database_url)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Engine:
    """The example database on SQLite only (for tests about files, not about the database)."""
    return build_database(sqlite_url)


def export(engine: Engine, kind: str, fmt: str, out: Path, **filters):
    with session_scope(engine) as s:
        return export_to_path(s, kind, fmt, out, ExportFilters(**filters))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_csv_keeps_text_verbatim_and_neutralises_formulas(engine, tmp_path):
    result = export(engine, "claims", "csv", tmp_path / "claims.csv")
    rows = {int(r["id"]): r for r in read_csv(result.path)}
    assert result.rows == 6
    assert list(read_csv(result.path)[0]) == [f.name for f in TABLE_FIELDS["claims"]]
    assert rows[1]["text"] == JA_TEXT
    assert rows[2]["text"] == MULTILINE_TEXT
    assert rows[3]["text"] == "'" + FORMULA_TEXT
    assert rows[4]["text"] == "'" + MINUS_TEXT
    assert rows[5]["text"] == "'" + AT_TEXT
    # An apostrophe is doubled too, so stripping one leading apostrophe is always exact.
    assert rows[6]["text"] == "'" + QUOTE_TEXT
    assert rows[4]["trigger"] == "$14,500"
    assert json.loads(rows[2]["conditions"]) == ["ALS"]
    assert json.loads(rows[2]["attributes"]) == {"figures": [{"value": 60, "unit": "%"}]}
    assert rows[2]["hedged"] == "true"


def test_every_claim_row_carries_its_provenance(engine, tmp_path):
    rows = {
        r["id"]: r for r in read_jsonl(export(engine, "claims", "jsonl", tmp_path / "c.jsonl").path)
    }
    first = rows[1]
    assert first["site"] == "aurora"
    assert first["country"] == "JP"
    assert first["url"] == "http://aurora.test/治療/"
    assert datetime.fromisoformat(first["snapshot_fetched_at"]) == at(10)
    assert first["content_sha256"] == "a" * 64
    assert first["rules_version"] == "r7"
    assert (first["review_decision"], first["reviewed_by"]) == ("confirmed", "rita")
    assert datetime.fromisoformat(first["reviewed_at"]) == at(17)
    assert rows[5]["review_decision"] == "dismissed"
    assert rows[3]["review_decision"] is None


def test_jsonl_is_verbatim(engine, tmp_path):
    rows = read_jsonl(export(engine, "claims", "jsonl", tmp_path / "claims.jsonl").path)
    texts = [r["text"] for r in rows]
    assert texts == [JA_TEXT, MULTILINE_TEXT, FORMULA_TEXT, MINUS_TEXT, AT_TEXT, QUOTE_TEXT]
    assert rows[1]["conditions"] == ["ALS"]
    assert rows[4]["active"] is False


def test_parquet_round_trips_with_types(engine, tmp_path):
    result = export(engine, "claims", "parquet", tmp_path / "claims.parquet")
    table = pq.read_table(result.path)
    assert table.schema.equals(arrow_schema("claims"))
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows[2]["text"] == MULTILINE_TEXT
    assert rows[3]["text"] == FORMULA_TEXT
    assert rows[6]["conditions"] == ["Stroke", "ALS"]
    assert rows[1]["snapshot_fetched_at"] == at(10)
    assert json.loads(rows[2]["attributes"])["figures"][0]["value"] == 60


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"site": "aurora"}, [1, 2]),
        ({"country": "us"}, [3, 4, 5, 6]),
        ({"category": "efficacy_promise"}, [2, 3, 6]),
        ({"condition": "als"}, [2, 6]),
        ({"condition": "stroke", "lang": "en"}, [3, 6]),
        ({"lang": "ja"}, [1, 2]),
        # Observed in the window: last seen after `since`, first seen before `until`.
        ({"since": at(1, 2)}, [3, 4, 6]),
        ({"until": at(11)}, [1, 2]),
        ({"since": at(13), "until": at(13, 2)}, [1, 2, 3, 4, 5]),
    ],
)
def test_claim_filters(engine, filters, expected_ids):
    with session_scope(engine) as s:
        assert [r["id"] for r in iter_rows(s, "claims", ExportFilters(**filters))] == expected_ids


@pytest.mark.parametrize(
    ("filters", "expected_events"),
    [
        ({}, ["new", "changed", "removed"]),
        ({"since": at(14), "until": at(16)}, ["new", "removed"]),
        ({"site": "bayside", "category": "efficacy_promise"}, ["changed"]),
        ({"lang": "ja"}, ["new"]),
    ],
)
def test_change_filters(engine, filters, expected_events):
    with session_scope(engine) as s:
        rows = list(iter_rows(s, "changes", ExportFilters(**filters)))
    assert [r["event"] for r in rows] == expected_events


def test_change_rows_carry_old_text_and_snapshot(engine, tmp_path):
    rows = {
        r["event"]: r for r in read_csv(export(engine, "changes", "csv", tmp_path / "ch.csv").path)
    }
    assert rows["changed"]["old_text"] == "Cures stroke."
    assert rows["changed"]["content_sha256"] == "b" * 64
    assert rows["changed"]["rules_version"] == "r7"
    assert rows["new"]["review_decision"] == "confirmed"
    # A removal seen without a snapshot keeps its row with empty snapshot columns.
    assert rows["removed"]["snapshot_id"] == ""


def test_sites_export_counts_claims_and_checks(engine):
    with session_scope(engine) as s:
        rows = {r["name"]: r for r in iter_rows(s, "sites", ExportFilters())}
    assert (rows["bayside"]["claims"], rows["bayside"]["active_claims"]) == (4, 3)
    assert rows["bayside"]["changes"] == 2
    assert rows["aurora"]["last_check_status"] == "done"
    assert rows["quiet"]["claims"] == 0
    assert rows["aurora"]["added_at"] == at(1)
    assert rows["quiet"]["last_check_at"] is None


def test_ids_are_stable_across_exports(sqlite_engine, tmp_path):
    before = read_jsonl(export(sqlite_engine, "claims", "jsonl", tmp_path / "one" / "c.jsonl").path)
    with session_scope(sqlite_engine) as s:
        s.get(Claim, 2).active = False
        site = s.get(Site, 1)
        page = s.get(Page, 1)
        s.add(Claim(site=site, page=page, category="price", key="k", text="150万円", url=page.url))
    after = read_jsonl(export(sqlite_engine, "claims", "jsonl", tmp_path / "two" / "c.jsonl").path)
    texts_before = {r["id"]: r["text"] for r in before}
    texts_after = {r["id"]: r["text"] for r in after}
    assert texts_after == {**texts_before, 7: "150万円"}
    assert {r["id"]: r["active"] for r in after}[2] is False


def test_datapackage_validates_with_frictionless(sqlite_engine, tmp_path):
    for kind in ("claims", "changes", "sites"):
        export(sqlite_engine, kind, "csv", tmp_path / f"{kind}.csv")
    export(sqlite_engine, "claims", "jsonl", tmp_path / "claims.jsonl", country="JP")
    descriptor = json.loads((tmp_path / "datapackage.json").read_text(encoding="utf-8"))
    names = [r["name"] for r in descriptor["resources"]]
    assert names == ["claims", "changes", "sites", "claims.jsonl"]
    export(sqlite_engine, "claims", "csv", tmp_path / "claims.csv")  # again: replaces, not adds
    report = validate(tmp_path / "datapackage.json")
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "message"])
    jsonl = descriptor["resources"][3]
    assert jsonl["clinicwatch"]["filters"] == {"country": "JP"}
    assert jsonl["clinicwatch"]["rows"] == 2
    assert descriptor["clinicwatch"]["codebook"]["category"]["efficacy_promise"]
    assert descriptor["clinicwatch"]["version"] == jsonl["clinicwatch"]["version"] != ""
    fields = {f["name"]: f for f in jsonl["schema"]["fields"]}
    assert all(f["description"] for f in fields.values())
    assert "price" in fields["category"]["constraints"]["enum"]


def test_frictionless_notices_an_edited_file(sqlite_engine, tmp_path):
    result = export(sqlite_engine, "claims", "csv", tmp_path / "claims.csv")
    edited = result.path.read_text(encoding="utf-8").replace("安全な", "確実な")
    result.path.write_text(edited, encoding="utf-8", newline="")
    report = validate(result.datapackage)
    assert not report.valid
    assert "hash-count" in {e.type for e in report.tasks[0].errors}


def test_parquet_resource_schema_matches_the_file(sqlite_engine, tmp_path):
    result = export(sqlite_engine, "changes", "parquet", tmp_path / "changes.parquet")
    resource = json.loads(result.datapackage.read_text(encoding="utf-8"))["resources"][0]
    assert resource["format"] == "parquet"
    assert [f["name"] for f in resource["schema"]["fields"]] == pq.read_schema(result.path).names
    assert resource["clinicwatch"]["rows"] == pq.read_metadata(result.path).num_rows == 3


def test_odd_stored_values_still_export(sqlite_engine, tmp_path):
    with session_scope(sqlite_engine) as s:
        site, page = s.get(Site, 1), s.get(Page, 1)
        s.add(
            Claim(site=site, page=page, category="efficacy_promise", key="odd", url=page.url,
                  text="\t=SUM(A1) 脳梗塞に効く", conditions=[3, "脳梗塞"],
                  attributes={"note": "日本語", "nested": {"n": [1, None]}})
        )  # fmt: skip
    csv_rows = read_csv(
        export(sqlite_engine, "claims", "csv", tmp_path / "c.csv", site="aurora").path
    )
    odd = csv_rows[-1]
    assert odd["text"] == "'\t=SUM(A1) 脳梗塞に効く"
    assert odd["conditions"] == '[3, "脳梗塞"]'  # readable JSON, not \\u escapes
    assert json.loads(odd["attributes"]) == {"note": "日本語", "nested": {"n": [1, None]}}
    table = pq.read_table(export(sqlite_engine, "claims", "parquet", tmp_path / "c.parquet").path)
    assert table.to_pylist()[-1]["conditions"] == ["3", "脳梗塞"]
    with session_scope(sqlite_engine) as s:
        matches = list(iter_rows(s, "claims", ExportFilters(condition="脳梗塞")))
    assert [m["conditions"] for m in matches] == [[3, "脳梗塞"]]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_stream_yields_the_same_file(sqlite_engine, tmp_path, fmt):
    result = export(sqlite_engine, "claims", fmt, tmp_path)
    assert result.path == tmp_path / f"claims.{fmt}"
    with session_scope(sqlite_engine) as s:
        streamed = b"".join(export_stream(s, "claims", fmt, ExportFilters()))
    if fmt == "parquet":
        assert pq.read_table(io.BytesIO(streamed)).equals(pq.read_table(result.path))
    else:
        assert streamed == result.path.read_bytes()


@pytest.mark.parametrize(
    ("kind", "fmt", "filters", "message"),
    [
        ("claims", "csv", {"site": "nowhere"}, "no site named 'nowhere' (sites: aurora, bayside, quiet)"),
        ("claims", "csv", {"category": "miracle"}, "unknown category 'miracle'"),
        ("claims", "csv", {"since": at(5), "until": at(5)}, "is not before --until"),
        ("sites", "csv", {"category": "price"}, "sites export takes --site, --country and --lang only"),
        ("claims", "xlsx", {}, "unknown format 'xlsx'"),
        ("pages", "csv", {}, "unknown export 'pages'"),
    ],
)  # fmt: skip
def test_bad_requests_fail_clearly_before_streaming(sqlite_engine, kind, fmt, filters, message):
    with session_scope(sqlite_engine) as s, pytest.raises(ExportError, match=re.escape(message)):
        export_stream(s, kind, fmt, ExportFilters(**filters))


def test_foreign_datapackage_is_not_overwritten(sqlite_engine, tmp_path):
    foreign = tmp_path / "datapackage.json"
    foreign.write_text('{"name": "someone-else", "resources": []}', encoding="utf-8")
    with pytest.raises(ExportError, match="not written by clinicwatch"):
        export(sqlite_engine, "claims", "csv", tmp_path / "claims.csv")
    assert foreign.read_text(encoding="utf-8") == '{"name": "someone-else", "resources": []}'
    assert not (tmp_path / "claims.csv").exists()


# --- command line ---------------------------------------------------------------------------


def run_cli(sqlite_url: str, tmp_path: Path, *args: str):
    config = tmp_path / "clinicwatch.yaml"
    config.write_text(f"database: {sqlite_url}\n", encoding="utf-8")
    return CliRunner().invoke(export_command, list(args), obj=CliContext(config))


def test_cli_exports_with_filters(sqlite_engine, sqlite_url, tmp_path):
    out = tmp_path / "out" / "claims.parquet"
    result = run_cli(
        sqlite_url,
        tmp_path,
        "claims",
        "--out",
        str(out),
        "--country",
        "US",
        "--until",
        "2024-01-12",
    )
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == f"exported 3 claims to {out} (parquet); described in {out.parent / 'datapackage.json'}\n"
    )
    assert pq.read_table(out).column("id").to_pylist() == [3, 4, 5]
    filters = json.loads((out.parent / "datapackage.json").read_text())["resources"][0][
        "clinicwatch"
    ]["filters"]
    assert filters == {"until": "2024-01-13T00:00:00+00:00", "country": "US"}


def test_cli_writes_into_an_existing_folder(sqlite_engine, sqlite_url, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    result = run_cli(sqlite_url, tmp_path, "sites", "--out", str(folder), "--country", "JP")
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in read_csv(folder / "sites.csv")] == ["aurora"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["claims", "--out", "x.csv", "--since", "last tuesday"], "not an ISO date or datetime: 'last tuesday'"),
        (["claims", "--out", "x.txt"], "cannot tell the format from 'x.txt'"),
        (["claims", "--out", "x.csv", "--site", "nowhere"], "no site named 'nowhere'"),
        (["claims", "--out", "x.csv", "--category", "miracle"], "'miracle' is not one of"),
        (["sites", "--out", "x.csv", "--condition", "ALS"], "takes --site, --country and --lang only"),
    ],
)  # fmt: skip
def test_cli_rejects_bad_input_with_a_clear_message(
    sqlite_engine, sqlite_url, tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    result = run_cli(sqlite_url, tmp_path, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert not list(tmp_path.glob("x.*"))  # nothing written


def test_docs_describe_every_field_and_option():
    docs = (Path(__file__).parent.parent / "docs" / "exports.md").read_text(encoding="utf-8")
    for kind, table_fields in TABLE_FIELDS.items():
        for field in table_fields:
            assert f"| `{field.name}` | {field.type} | {field.description} |" in docs, (kind, field)
    for option in export_command.params:
        if option.name != "kind":
            assert f"`{option.opts[0]}" in docs, option.opts[0]
