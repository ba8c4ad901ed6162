"""Print the labelled corpus's counts as Markdown tables (used in docs/corpus.md).

Run: .venv/bin/python tests/labelled/stats.py
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from claims_db.codebook import CATEGORIES

HERE = Path(__file__).parent
LANGS = ("en", "ja", "zh")


def load(lang: str) -> list[dict]:
    """Every item of one language's file."""
    lines = (HERE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def table(rows: list[list[object]]) -> str:
    """A Markdown table; the first row is the header."""
    head, *body = rows
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in body]
    return "\n".join(lines)


def main() -> None:
    """Totals, categories and kinds per language."""
    items = {lang: load(lang) for lang in LANGS}
    totals = [["", *LANGS, "all"]]
    for name, pick in (
        ("items", lambda xs: len(xs)),
        ("negatives (no label)", lambda xs: sum(not x["labels"] for x in xs)),
        ("hedged claims", lambda xs: sum(x["hedged"] for x in xs)),
        ("two or more categories", lambda xs: sum(len(x["labels"]) > 1 for x in xs)),
    ):
        counts = [pick(items[lang]) for lang in LANGS]
        totals.append([name, *counts, sum(counts)])
    share = [sum(not x["labels"] for x in items[lang]) / len(items[lang]) for lang in LANGS]
    totals.append(["negative share", *(f"{s:.1%}" for s in share), ""])
    print(table(totals), end="\n\n")

    per_category = [["category", *LANGS]]
    for category in CATEGORIES:
        per_category.append(
            [category, *(sum(category in x["labels"] for x in items[lang]) for lang in LANGS)]
        )
    print(table(per_category), end="\n\n")

    kinds = {lang: Counter(x["kind"] for x in items[lang]) for lang in LANGS}
    all_kinds = sorted(set().union(*kinds.values()))
    print(table([["kind", *LANGS], *([k, *(kinds[lang][k] for lang in LANGS)] for k in all_kinds)]))


if __name__ == "__main__":
    main()
