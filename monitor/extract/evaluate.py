"""Measure the extractor against the hand-labelled corpus (tests/labelled/*.jsonl).

Each labelled item is a sentence or block with the categories a coder gave it (an empty list means
"not a claim"). The item's text goes through `Extractor.extract_text`; the predicted categories
are the categories of the claims it returns. Counts are per item and category.

The corpus is split deterministically by a hash of each item's id into a development part (about
70 %, the only part whose mistakes rule authors look at) and a held-out part (about 30 %, the
honest figure). Editing the corpus files moves no item between parts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError
from monitor.extract.extractor import Extractor, load_extractor

ALL = "all"
DEV = "dev"
HELD_OUT = "held-out"
SPLITS = (DEV, HELD_OUT, ALL)
# Percent of items (by id hash) kept out of rule development.
HELD_OUT_PERCENT = 30


@dataclass
class Score:
    """True positives, false positives and false negatives of one category (or all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        """How many items carry the label."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """Share of predictions that are right (1.0 when nothing was predicted)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled items found (1.0 when there were none)."""
        return self.tp / self.support if self.support else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass
class Mistake:
    """One item the extractor got wrong, for finding classes of errors."""

    lang: str
    text: str
    kind: str
    missed: list[str]
    spurious: list[str]


@dataclass
class EvaluationReport:
    """Scores by (language, category); language and category ``all`` are the totals."""

    rules_version: str
    items: int
    scores: dict[tuple[str, str], Score] = field(default_factory=dict)
    mistakes: list[Mistake] = field(default_factory=list)

    def score(self, lang: str = ALL, category: str = ALL) -> Score:
        """The score of one cell (an empty score if the cell never occurred)."""
        return self.scores.get((lang, category), Score())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "rules_version": self.rules_version,
            "items": self.items,
            "scores": [
                {"lang": lang, "category": cat, **score.as_dict()}
                for (lang, cat), score in sorted(self.scores.items(), key=_cell_order)
            ],
        }


def _cell_order(item: tuple[tuple[str, str], Score]) -> tuple[int, str, int]:
    (lang, category), _ = item
    order = [*CATEGORIES, ALL]
    return (lang == ALL, lang, order.index(category) if category in order else len(order))


def read_corpus(corpus_dir: Path) -> list[dict[str, Any]]:
    """Every labelled item in ``*.jsonl`` under `corpus_dir`; bad lines are a `ConfigError`."""
    files = sorted(Path(corpus_dir).glob("*.jsonl"))
    if not files:
        raise ConfigError(f"{corpus_dir}: no labelled corpus (*.jsonl files) found")
    items = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                items.append(_item(path, number, line))
    return items


def _item(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from None
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise ConfigError(f"{path}:{number}: each line needs a text")
    labels = item.get("labels", [])
    unknown = [label for label in labels if label not in CATEGORIES]
    if unknown:
        raise ConfigError(f"{path}:{number}: unknown category {unknown[0]!r}")
    item.setdefault("lang", path.stem)
    return item


def split_of(item: dict[str, Any]) -> str:
    """``dev`` or ``held-out``: a stable hash of the item's id (its text when it has none)."""
    key = str(item.get("id") or item["text"]).encode("utf-8")
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 100
    return HELD_OUT if bucket < HELD_OUT_PERCENT else DEV


def evaluate(
    corpus_dir: Path, extractor: Extractor | None = None, split: str = ALL, *, pages: bool = False
) -> EvaluationReport:
    """Precision, recall and F1 per category and language over one split of the corpus; with
    `pages`, items are read page by page (`evaluate_pages`)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    items = read_corpus(corpus_dir)
    if pages:
        return evaluate_pages(items, extractor or load_extractor(), split)
    chosen = [i for i in items if split in (ALL, split_of(i))]
    return evaluate_items(chosen, extractor or load_extractor())


def evaluate_items(items: list[dict[str, Any]], extractor: Extractor) -> EvaluationReport:
    """Score `extractor` on labelled items (each with text, lang and labels), one at a time."""
    report = EvaluationReport(extractor.version, len(items))
    for item in items:
        claims = extractor.extract_text(item["text"], lang_hint=item["lang"])
        _score_item(report, item, {claim.category for claim in claims})
    return report


def evaluate_pages(
    items: list[dict[str, Any]], extractor: Extractor, split: str = ALL
) -> EvaluationReport:
    """Score `extractor` on items read as the pages they came from: the items of one
    `source_url` and language, in corpus order, are the blocks of one page, so what the
    extractor learns from the page (that it is medical, a block in another voice) is there as
    on the web. Only the items of `split` are counted; the others are still read as context."""
    report = EvaluationReport(extractor.version, 0)
    for page in _pages(items):
        claims = extractor.extract_blocks([i["text"] for i in page], lang_hint=page[0]["lang"])
        predicted: dict[int, set[str]] = {}
        for claim in claims:
            predicted.setdefault(claim.block_index, set()).add(claim.category)
        for index, item in enumerate(page):
            if split in (ALL, split_of(item)):
                report.items += 1
                _score_item(report, item, predicted.get(index, set()))
    return report


def _pages(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Items grouped by (source_url, lang) in order of appearance; an item without a
    `source_url` is a page of its own."""
    pages: dict[object, list[dict[str, Any]]] = {}
    for number, item in enumerate(items):
        url = item.get("source_url")
        pages.setdefault((url, item["lang"]) if url else number, []).append(item)
    return list(pages.values())


def _score_item(report: EvaluationReport, item: dict[str, Any], predicted: set[str]) -> None:
    expected = set(item["labels"])
    _count(report, item["lang"], expected, predicted)
    if expected != predicted:
        report.mistakes.append(
            Mistake(
                item["lang"],
                item["text"],
                str(item.get("kind", "")),
                sorted(expected - predicted),
                sorted(predicted - expected),
            )
        )


def _count(report: EvaluationReport, lang: str, expected: set[str], predicted: set[str]) -> None:
    for category in CATEGORIES:
        if category not in expected and category not in predicted:
            continue
        for cell in ((lang, category), (ALL, category), (lang, ALL), (ALL, ALL)):
            score = report.scores.setdefault(cell, Score())
            if category in expected and category in predicted:
                score.tp += 1
            elif category in predicted:
                score.fp += 1
            else:
                score.fn += 1


def format_table(report: EvaluationReport) -> str:
    """A plain-text table, one row per (language, category); `false` counts the claims found that
    the labels do not have (on a set of negatives, the figure that matters)."""
    lines = [
        f"rules {report.rules_version} · {report.items} labelled items",
        f"{'lang':<5} {'category':<22} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"
        f" {'false':>6}",
    ]
    for (lang, category), score in sorted(report.scores.items(), key=_cell_order):
        lines.append(
            f"{lang:<5} {category:<22} {score.precision:>9.3f} {score.recall:>7.3f} "
            f"{score.f1:>6.3f} {score.support:>8} {score.fp:>6}"
        )
    return "\n".join(lines)


def evaluate_splits(
    corpus_dir: Path, extractor: Extractor | None = None, *, pages: bool = False
) -> dict[str, EvaluationReport]:
    """The report of each split: ``dev``, ``held-out`` and ``all``."""
    extractor = extractor or load_extractor()
    return {split: evaluate(corpus_dir, extractor, split, pages=pages) for split in SPLITS}


def format_summary(reports: dict[str, EvaluationReport], lang: str = ALL) -> str:
    """One row per category: precision / recall in each split, side by side."""
    header = f"{'category':<22}" + "".join(f" {s + ' P/R':>15}" for s in reports)
    sizes = " · ".join(f"{s} {r.items} items" for s, r in reports.items())
    lines = [f"lang {lang} · {sizes}", header]
    for category in [*CATEGORIES, ALL]:
        cells = []
        for report in reports.values():
            score = report.score(lang, category)
            cells.append(f" {score.precision:>7.3f}/{score.recall:.3f}")
        lines.append(f"{category:<22}" + "".join(cells))
    return "\n".join(lines)
