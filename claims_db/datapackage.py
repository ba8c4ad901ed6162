"""The self-description of an export: Table Schemas, the codebook and ``datapackage.json``.

Every exported file gets a Frictionless Data Package descriptor beside it, so a dataset found on a
disk years later still says what each column means, which categories exist, which filters made it,
which clinicwatch wrote it and when. Several exports written to one folder share one descriptor:
each is a resource of the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from claims_db.codebook import CATEGORY_DEFINITIONS, EVENT_TYPES

DATAPACKAGE_NAME = "datapackage.json"
PACKAGE_NAME = "clinicwatch-export"
MEDIA_TYPES = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
# CSV cells starting with one of these are prefixed with an apostrophe (see docs/exports.md).
CSV_NEUTRALISED_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "'")


class DatapackageError(Exception):
    """A ``datapackage.json`` that exists but cannot be read or is not clinicwatch's."""


@dataclass(frozen=True)
class ExportField:
    """One column of an export: its name, Table Schema type and meaning."""

    name: str
    type: str  # Table Schema type: integer, number, string, boolean, datetime, array, object
    description: str
    codebook: dict[str, str] | None = None  # allowed values and what each means
    required: bool = False

    def descriptor(self, fmt: str) -> dict[str, Any]:
        """The Table Schema field for a file in `fmt` (Parquet keeps objects as JSON text)."""
        field_type, description = self.type, self.description
        if self.type == "object" and fmt == "parquet":
            field_type, description = "string", description + " Stored as JSON text."
        out: dict[str, Any] = {"name": self.name, "type": field_type, "description": description}
        constraints: dict[str, Any] = {}
        if self.required:
            constraints["required"] = True
        if self.codebook:
            constraints["enum"] = list(self.codebook)
            out["categories"] = [{"value": k, "label": v} for k, v in self.codebook.items()]
        if constraints:
            out["constraints"] = constraints
        return out


def _f(name: str, type_: str, description: str, **kw: Any) -> ExportField:
    return ExportField(name, type_, description, **kw)


REVIEW_FIELDS = (
    _f(
        "review_decision",
        "string",
        "Latest reviewer decision on the claim: confirmed, dismissed (a false positive) or "
        "escalated; empty when nobody has reviewed it.",
        codebook={
            "confirmed": "A reviewer confirmed the claim.",
            "dismissed": "A reviewer judged it not a claim (false positive).",
            "escalated": "A reviewer passed it on for further action.",
        },
    ),
    _f("reviewed_by", "string", "Name of the reviewer who made the latest decision."),
    _f("reviewed_at", "datetime", "When the latest decision was made (UTC)."),
)

CLAIM_FIELDS: tuple[ExportField, ...] = (
    _f(
        "id",
        "integer",
        "Stable claim id: the same claim keeps this id in every export.",
        required=True,
    ),
    _f("site_id", "integer", "Stable id of the site (see the sites export).", required=True),
    _f(
        "site",
        "string",
        "Name of the watched site, as in the clinicwatch configuration.",
        required=True,
    ),
    _f("country", "string", "ISO 3166-1 alpha-2 country of the clinic, if configured."),
    _f(
        "url",
        "string",
        "Page where the claim stands (for site-wide claims, the first page it was seen on).",
        required=True,
    ),
    _f(
        "scope",
        "string",
        "page: the claim is on one page; site: it repeats in site-wide chrome (header, footer, sidebar).",
        codebook={
            "page": "Found in the content of one page.",
            "site": "Found in chrome repeated across the site.",
        },
    ),
    _f(
        "category",
        "string",
        "Claim category (see the codebook).",
        codebook=CATEGORY_DEFINITIONS,
        required=True,
    ),
    _f("lang", "string", "Language of the sentence (en, ja, zh, ...)."),
    _f("text", "string", "The sentence as the site published it, verbatim.", required=True),
    _f("trigger", "string", "The words in the sentence that made the rule fire."),
    _f("hedged", "boolean", 'True when the sentence is hedged ("may help", 「期待されます」).'),
    _f("confidence", "number", "Extractor confidence between 0 and 1."),
    _f(
        "conditions",
        "array",
        "Conditions the sentence names (ALS, stroke, spinal-cord injury, ...).",
    ),
    _f(
        "attributes",
        "object",
        "Further extracted details (figures, interventions, ...) as a JSON object.",
    ),
    _f("rule_id", "string", "Id of the extraction rule that found the claim."),
    _f("rules_version", "string", "Version of the rule set that extracted the claim."),
    _f(
        "location",
        "string",
        "Where on the page the sentence stood (main, header, footer, ... and an element path).",
    ),
    _f(
        "active",
        "boolean",
        "True while the claim is still on the site; false once a successful fetch lacked it.",
    ),
    _f("first_seen_at", "datetime", "When the claim was first observed (UTC).", required=True),
    _f("last_seen_at", "datetime", "When the claim was last observed (UTC).", required=True),
    _f(
        "removed_at",
        "datetime",
        "When a successful fetch first lacked the claim (UTC); empty while active.",
    ),
    _f(
        "first_snapshot_id",
        "integer",
        "Stable id of the snapshot in which the claim was first seen.",
    ),
    _f("first_fetched_at", "datetime", "Fetch time of that first snapshot (UTC)."),
    _f("first_content_sha256", "string", "SHA-256 of the page body in that first snapshot."),
    _f(
        "snapshot_id",
        "integer",
        "Stable id of the latest snapshot (one fetch of the page) that contained the claim.",
    ),
    _f("snapshot_fetched_at", "datetime", "Fetch time of that latest snapshot (UTC)."),
    _f(
        "content_sha256",
        "string",
        "SHA-256 of the page body in that latest snapshot: cite it with the URL and fetch time.",
    ),
    *REVIEW_FIELDS,
)

CHANGE_FIELDS: tuple[ExportField, ...] = (
    _f("id", "integer", "Stable change-event id.", required=True),
    _f(
        "event",
        "string",
        "What happened to the claim (see the codebook).",
        codebook=EVENT_TYPES,
        required=True,
    ),
    _f(
        "category",
        "string",
        "Claim category (see the codebook).",
        codebook=CATEGORY_DEFINITIONS,
        required=True,
    ),
    _f("claim_id", "integer", "Stable id of the claim (see the claims export).", required=True),
    _f("site_id", "integer", "Stable id of the site.", required=True),
    _f("site", "string", "Name of the watched site.", required=True),
    _f("country", "string", "ISO 3166-1 alpha-2 country of the clinic, if configured."),
    _f("url", "string", "Page on which the change was seen.", required=True),
    _f("lang", "string", "Language of the claim's sentence."),
    _f(
        "text",
        "string",
        "The claim's sentence, verbatim (for removed: the sentence that disappeared).",
        required=True,
    ),
    _f("old_text", "string", "For changed: the sentence before the edit, verbatim."),
    _f("conditions", "array", "Conditions the claim names."),
    _f("detected_at", "datetime", "When the check that saw the change ran (UTC).", required=True),
    _f("crawl_id", "integer", "Stable id of the check (crawl) that detected the change."),
    _f("rules_version", "string", "Version of the rule set used by that check."),
    _f("snapshot_id", "integer", "Stable id of the snapshot that showed the change."),
    _f("snapshot_fetched_at", "datetime", "Fetch time of that snapshot (UTC)."),
    _f("content_sha256", "string", "SHA-256 of the page body in that snapshot."),
    *REVIEW_FIELDS,
)

SITE_FIELDS: tuple[ExportField, ...] = (
    _f("id", "integer", "Stable site id.", required=True),
    _f("name", "string", "Name of the site in the clinicwatch configuration.", required=True),
    _f("url", "string", "Start page of the crawl.", required=True),
    _f("country", "string", "ISO 3166-1 alpha-2 country of the clinic, if configured."),
    _f("lang", "string", "Main language of the site, if configured."),
    _f("added_at", "datetime", "When the site was first watched (UTC).", required=True),
    _f("first_check_at", "datetime", "Start of the first check (UTC)."),
    _f("last_check_at", "datetime", "Start of the latest check (UTC)."),
    _f(
        "last_check_status",
        "string",
        "Outcome of the latest check: running, crawled, done or failed.",
    ),
    _f("rules_version", "string", "Rule set used by the latest check."),
    _f("claims", "integer", "Number of claims ever recorded for the site."),
    _f("active_claims", "integer", "Number of claims still on the site."),
    _f("changes", "integer", "Number of change events recorded for the site."),
)

TABLE_FIELDS: dict[str, tuple[ExportField, ...]] = {
    "claims": CLAIM_FIELDS,
    "changes": CHANGE_FIELDS,
    "sites": SITE_FIELDS,
}
TABLE_TITLES = {
    "claims": "Claims: one row per claim identity on a page or site",
    "changes": "Change events: one row per new, changed, removed or reclassified claim",
    "sites": "Sites: one row per watched clinic website",
}


def clinicwatch_version() -> str:
    """The installed clinicwatch version, or ``unknown`` when running from a bare checkout."""
    try:
        return metadata.version("clinicwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def table_schema(kind: str, fmt: str) -> dict[str, Any]:
    """The Frictionless Table Schema of the `kind` export written as `fmt`."""
    return {
        "fields": [field.descriptor(fmt) for field in TABLE_FIELDS[kind]],
        "primaryKey": ["id"],
        "missingValues": [""],
    }


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resource_name(path: Path, taken: set[str]) -> str:
    """A valid resource name from the file name: its stem, or the whole name if the stem is taken."""
    for candidate in (path.stem, path.name):
        name = re.sub(r"[^a-z0-9._-]+", "-", candidate.lower()).strip("-") or "export"
        if name not in taken:
            return name
    return name


def resource_descriptor(
    kind: str,
    fmt: str,
    path: Path,
    *,
    rows: int,
    filters: dict[str, str],
    exported_at: datetime,
    name: str | None = None,
) -> dict[str, Any]:
    """The Data Package resource describing the exported file at `path` (hash and size included)."""
    resource: dict[str, Any] = {
        "name": name or resource_name(path, set()),
        "title": TABLE_TITLES[kind],
        "path": path.name,
        "profile": "tabular-data-resource",
        "format": fmt,
        "mediatype": MEDIA_TYPES[fmt],
        "encoding": "utf-8",
        "bytes": path.stat().st_size,
        "hash": f"sha256:{file_sha256(path)}",
        "schema": table_schema(kind, fmt),
        "clinicwatch": {
            "kind": kind,
            "rows": rows,
            "filters": filters,
            "exported_at": exported_at.isoformat(),
            "version": clinicwatch_version(),
        },
    }
    if fmt == "csv":
        resource["dialect"] = {
            "delimiter": ",",
            "quoteChar": '"',
            "doubleQuote": True,
            "header": True,
        }
        resource["clinicwatch"]["csv_neutralised_prefixes"] = list(CSV_NEUTRALISED_PREFIXES)
    return resource


def package_descriptor(resources: list[dict[str, Any]], exported_at: datetime) -> dict[str, Any]:
    """The whole ``datapackage.json``: the resources, the codebook and who wrote it when."""
    return {
        "name": PACKAGE_NAME,
        "title": "clinicwatch export: claims made on clinic websites selling cell therapies",
        "description": (
            "Claims found by clinicwatch on websites of clinics offering unproven stem-cell and "
            "regenerative treatments, with provenance for every row: site, page URL, snapshot "
            "fetch time and the SHA-256 of the page body. See the codebook for category meanings."
        ),
        "profile": "tabular-data-package",
        "created": exported_at.isoformat(),
        "keywords": ["stem cells", "regenerative medicine", "health claims", "web monitoring"],
        "resources": resources,
        "clinicwatch": {
            "version": clinicwatch_version(),
            "codebook": {"category": dict(CATEGORY_DEFINITIONS), "event": dict(EVENT_TYPES)},
            "csv_formula_neutralisation": (
                "In CSV files, a text cell starting with =, +, -, @, tab, carriage return or an "
                "apostrophe has one apostrophe prepended so spreadsheets do not run it as a "
                "formula; remove one leading apostrophe to get the verbatim text. JSONL and "
                "Parquet files are verbatim."
            ),
        },
    }


def read_existing(directory: Path) -> list[dict[str, Any]]:
    """Resources of the clinicwatch ``datapackage.json`` in `directory` ([] if there is none).

    Raises `DatapackageError` when a file of that name exists but is not clinicwatch's, so an
    export never overwrites someone else's descriptor.
    """
    path = directory / DATAPACKAGE_NAME
    if not path.exists():
        return []
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatapackageError(
            f"{path}: exists but cannot be read ({exc}); export elsewhere"
        ) from None
    if not isinstance(existing, dict) or existing.get("name") != PACKAGE_NAME:
        raise DatapackageError(
            f"{path}: exists and was not written by clinicwatch; export to another folder"
        )
    return [r for r in existing.get("resources", []) if isinstance(r, dict)]


def write_datapackage(directory: Path, resource: dict[str, Any], exported_at: datetime) -> Path:
    """Add (or replace, by file name) `resource` in the folder's ``datapackage.json``."""
    others = [r for r in read_existing(directory) if r.get("path") != resource["path"]]
    taken = {str(r.get("name")) for r in others}
    resource = {**resource, "name": resource_name(Path(resource["path"]), taken)}
    descriptor = package_descriptor([*others, resource], exported_at)
    path = directory / DATAPACKAGE_NAME
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(
        json.dumps(descriptor, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    os.replace(partial, path)
    return path
