"""What a labelled corpus line looks like; shared by the checks of both labelled sets."""

from __future__ import annotations

import json
from pathlib import Path

from claims_db.codebook import CATEGORIES as CATEGORY_IDS

CATEGORIES = frozenset(CATEGORY_IDS)
KINDS = frozenset(
    {
        "clinic",
        "news",
        "regulator",
        "critique",
        "disclaimer",
        "neutral_procedure",
        "disease_description",
        "negated",
        "credentials",
        "other",
    }
)
FIELDS = frozenset({"id", "text", "lang", "labels", "hedged", "conditions", "kind", "note"})


def load_jsonl(path: Path, *, allow_blank_lines: bool = True) -> list[dict]:
    """Parse a corpus file strictly: every (non-empty) line must be a JSON object."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if allow_blank_lines and not line.strip():
            continue
        item = json.loads(line)
        assert isinstance(item, dict), f"{path.name}:{number} is not an object"
        items.append(item)
    return items
