"""Train the claim model from the labelled corpus, and measure it against and with the rules.

    python -m monitor.extract.train                      # retrain on all of tests/labelled, ship it
    python -m monitor.extract.train --out /tmp/m.npz     # write elsewhere
    python -m monitor.extract.train --experiment         # dev-trained model vs rules on held-out

Training is deterministic: full-batch logistic regression (AdaGrad, L2) per category over the
hashed buckets of `monitor.extract.model.feature_buckets`. Each category's threshold is chosen on
out-of-fold probabilities (5-fold cross-validation over the training items), never on the items
it is measured on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError
from monitor.extract.evaluate import (
    ALL,
    DEV,
    HELD_OUT,
    EvaluationReport,
    evaluate_items,
    read_corpus,
    split_of,
)
from monitor.extract.extractor import Extractor
from monitor.extract.learned import ModelStage, load_model_stage
from monitor.extract.model import (
    CUTS,
    DEFAULT_MODEL_PATH,
    HASH_BITS,
    ClaimModel,
    feature_buckets,
)
from monitor.extract.rules import DEFAULT_RULES_DIR, LANGUAGES

# What the shipped model is trained on: every labelled set (labelled_general: ordinary text of
# other topics, all negatives), except the held-out part of the real-text set, which stays the
# honest measure of rules and model together.
TRAINING_SETS = (
    "tests/labelled",
    "tests/labelled_fresh",
    "tests/labelled_extra",
    "tests/labelled_general",
    f"tests/labelled_real:{DEV}",
)
FOLDS = 5
EPOCHS = 200
L2 = 1e-5
LEARNING_RATE = 2.0
# The model's threshold for adding a category the rules missed: out-of-fold precision this high.
HIGH_PRECISION = 0.90
# A language gets cuts of its own from this many training items (else the cuts for all).
MIN_LANGUAGE_ITEMS = 300
# Thresholds stay in this range: a tiny corpus can make the F1-best cut look extreme.
THRESHOLD_RANGE = (0.05, 0.95)


@dataclass
class Matrix:
    """Items as hashed features: the buckets of each item, and its labels (items × categories)."""

    buckets: list[np.ndarray]
    labels: np.ndarray

    def take(self, rows: np.ndarray) -> Matrix:
        """The items at `rows`."""
        return Matrix([self.buckets[r] for r in rows], self.labels[rows])


def featurise(items: Sequence[dict[str, Any]], bits: int = HASH_BITS) -> Matrix:
    """The hashed features and label matrix of labelled items."""
    buckets = [feature_buckets(item["text"], item["lang"], bits) for item in items]
    labels = np.array(
        [[category in item["labels"] for category in CATEGORIES] for item in items], dtype=bool
    ).reshape(len(items), len(CATEGORIES))
    return Matrix(buckets, labels)


def fit(
    matrix: Matrix,
    *,
    bits: int = HASH_BITS,
    epochs: int = EPOCHS,
    l2: float = L2,
    learning_rate: float = LEARNING_RATE,
) -> ClaimModel:
    """Logistic regression per category, all at once; thresholds are left at 0.5."""
    if not matrix.buckets:
        raise ConfigError("no labelled items to train on")
    used, columns = np.unique(np.concatenate(matrix.buckets), return_inverse=True)
    lengths = np.array([len(b) for b in matrix.buckets])
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    scale = (1.0 / np.sqrt(lengths))[rows][:, None]
    targets = matrix.labels.astype(np.float64)
    prior = (targets.sum(axis=0) + 1) / (len(targets) + 2)
    weights = np.zeros((len(used), targets.shape[1]))
    bias = np.log(prior / (1 - prior))
    squared = np.zeros_like(weights)  # AdaGrad: rare n-grams keep a large step
    for _ in range(epochs):
        logits = bias + np.add.reduceat(weights[columns] * scale, starts, axis=0)
        error = (1.0 / (1.0 + np.exp(-logits)) - targets) / len(targets)
        gradient = _scatter(columns, error[rows] * scale, len(used)) + l2 * weights
        squared += gradient**2
        weights -= learning_rate * gradient / (np.sqrt(squared) + 1e-8)
        bias -= learning_rate * error.sum(axis=0)
    full = np.zeros(((1 << bits) + 1, targets.shape[1]), dtype=np.float32)
    full[used] = weights
    thresholds = dict.fromkeys(CATEGORIES, 0.5)
    return ClaimModel(CATEGORIES, full, bias.astype(np.float32), thresholds, bits)


def _scatter(columns: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Sum the rows of `values` into `size` rows by `columns`."""
    return np.stack(
        [
            np.bincount(columns, weights=values[:, c], minlength=size)
            for c in range(values.shape[1])
        ],
        axis=1,
    )


def probabilities(model: ClaimModel, matrix: Matrix) -> np.ndarray:
    """Items × categories probabilities of already hashed items."""
    scores = np.stack([model.weights[b].sum(axis=0) / np.sqrt(len(b)) for b in matrix.buckets])
    return 1.0 / (1.0 + np.exp(-(scores + model.bias)))


def fold_of(item: dict[str, Any], folds: int = FOLDS) -> int:
    """A stable cross-validation fold from the item's id (independent of the dev split)."""
    key = str(item.get("id") or item["text"]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[4:8], "big") % folds


def out_of_fold(items: Sequence[dict[str, Any]], matrix: Matrix, **fit_options: Any) -> np.ndarray:
    """Each item's probabilities from a model trained on the other folds."""
    folds = np.array([fold_of(item) for item in items])
    result = np.zeros(matrix.labels.shape)
    for fold in range(FOLDS):
        held = np.flatnonzero(folds == fold)
        if len(held) and len(held) < len(items):
            model = fit(matrix.take(np.flatnonzero(folds != fold)), **fit_options)
            result[held] = probabilities(model, matrix.take(held))
    return result


def best_f1_threshold(probs: np.ndarray, truth: np.ndarray) -> float:
    """The cut with the best F1 on these out-of-fold probabilities, kept in THRESHOLD_RANGE."""
    best, best_f1 = 0.5, -1.0
    for cut in np.unique(np.clip(probs, *THRESHOLD_RANGE)):
        predicted = probs >= cut
        tp = np.sum(predicted & truth)
        f1 = 2 * tp / (predicted.sum() + truth.sum()) if truth.sum() else 0.0
        if f1 > best_f1:
            best, best_f1 = float(cut), f1
    return best


def high_precision_threshold(probs: np.ndarray, truth: np.ndarray) -> float:
    """The lowest cut whose predictions reach HIGH_PRECISION (1.0: no such cut)."""
    order = np.argsort(-probs, kind="stable")
    hits = np.cumsum(truth[order])
    precision = hits / np.arange(1, len(order) + 1)
    good = np.flatnonzero((precision >= HIGH_PRECISION) & (hits >= 3))
    if not len(good):
        return 1.0
    return float(max(probs[order][good[-1]], THRESHOLD_RANGE[0]))


def calibrate(probs: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Per category: the F1-best threshold and the high-precision threshold."""
    f1 = {c: best_f1_threshold(probs[:, i], labels[:, i]) for i, c in enumerate(CATEGORIES)}
    high = {
        c: max(high_precision_threshold(probs[:, i], labels[:, i]), f1[c])
        for i, c in enumerate(CATEGORIES)
    }
    return f1, high


def train(items: Sequence[dict[str, Any]]) -> ClaimModel:
    """A model fitted on `items`, with both cuts calibrated by cross-validation on them: for all
    items, and for each language with at least MIN_LANGUAGE_ITEMS of them."""
    matrix = featurise(items)
    probs = out_of_fold(items, matrix)
    f1, high = calibrate(probs, matrix.labels)
    langs = np.array([item["lang"] for item in items])
    by_language = {}
    for lang in sorted(set(langs.tolist())):
        chosen = langs == lang
        if chosen.sum() >= MIN_LANGUAGE_ITEMS:
            lang_f1, lang_high = calibrate(probs[chosen], matrix.labels[chosen])
            by_language[lang] = (lang_high, lang_f1)
    model = fit(matrix)
    return ClaimModel(
        model.categories, model.weights, model.bias, high, model.bits, f1, by_language
    )


def read_sets(specs: Sequence[str]) -> list[dict[str, Any]]:
    """The items of several labelled sets; ``folder:dev`` or ``folder:held-out`` takes one part."""
    items: list[dict[str, Any]] = []
    for spec in specs:
        folder, _, split = spec.partition(":")
        if split and split not in (DEV, HELD_OUT):
            raise ConfigError(f"{spec}: unknown split {split!r} (known: {DEV}, {HELD_OUT})")
        items.extend(i for i in read_corpus(Path(folder)) if not split or split_of(i) == split)
    return items


# --- the experiment: train without the test set, compare rules alone and rules + model on it ---


def experiment(train_specs: Sequence[str], test_spec: str) -> str:
    """Train on `train_specs` (minus any test item), then score the extractor on `test_spec`:
    the rules alone, and the rules with the model stage at each cut (precise, balanced, recall).
    Thresholds come from cross-validation on the training items, never from the test items."""
    test = read_sets([test_spec])
    test_ids = {i["id"] for i in test}
    items = [i for i in read_sets(train_specs) if i["id"] not in test_ids]
    if not items or not test:
        raise ConfigError("the experiment needs training items and test items")
    fitted = train(items)
    high, f1 = fitted.cut("precise"), fitted.cut("recall")
    extractor = Extractor(use_model=False)
    lines = [
        f"trained on {len(items)} items, measured on {len(test)} items of {test_spec}",
        "cuts (F1/high, from cross-validation on the training items): "
        + " ".join(f"{c}={f1[c]:.2f}/{high[c]:.2f}" for c in CATEGORIES),
        _variant_line("rules", evaluate_items(test, extractor)),
    ]
    # The stage as config/rules/model.yaml sets it up (length, context …), at each cut in turn.
    configured = load_model_stage(DEFAULT_RULES_DIR) or ModelStage(fitted, frozenset(CATEGORIES))
    for cut in CUTS:
        extractor.model = replace(configured, model=fitted, cut=cut)
        lines.append(_variant_line(f"rules + model ({cut})", evaluate_items(test, extractor)))
    return "\n".join(lines)


def _variant_line(name: str, report: EvaluationReport) -> str:
    """Overall, per-language and two main categories' precision / recall on one line."""
    cells = [("all", ALL, ALL), *((lang, lang, ALL) for lang in LANGUAGES)]
    cells += [(c.split("_")[0], ALL, c) for c in CATEGORIES]
    scores = ((label, report.score(lang, cat)) for label, lang, cat in cells)
    text = " ".join(f"{label} {s.precision:.2f}/{s.recall:.2f}" for label, s in scores)
    return f"{name:<24} {text}"


def speed(
    model: ClaimModel, sentences: Sequence[tuple[str, str]], page: int = 40
) -> tuple[float, float]:
    """Microseconds per sentence for `predict` one by one, and per page of `page` sentences
    scored in one `probabilities` call (best of three runs each)."""
    single = batched = float("inf")
    groups = [sentences[i : i + page] for i in range(0, len(sentences), page)]
    for _ in range(3):
        start = time.perf_counter()
        for sentence, lang in sentences:
            model.predict(sentence, lang)
        single = min(single, (time.perf_counter() - start) / len(sentences) * 1e6)
        start = time.perf_counter()
        for group in groups:
            model.probabilities([s for s, _ in group], group[0][1])
        batched = min(batched, (time.perf_counter() - start) / len(groups) * 1e6)
    return single, batched


@click.command()
@click.option(
    "--corpus",
    "specs",
    multiple=True,
    default=TRAINING_SETS,
    show_default=True,
    help="Labelled set to train on (repeat); FOLDER:dev or FOLDER:held-out takes one part.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_MODEL_PATH,
    show_default=True,
    help="Where to write the trained model.",
)
@click.option(
    "--experiment",
    "test_spec",
    metavar="SET",
    help="Do not save: train on --corpus minus SET's items and compare rules and model on SET "
    "(e.g. tests/labelled_real:held-out).",
)
def main(specs: tuple[str, ...], out: Path, test_spec: str | None) -> None:
    """Retrain the claim model on the labelled sets and save it (or run the experiment)."""
    try:
        if test_spec:
            click.echo(experiment(specs, test_spec))
            return
        items = read_sets(specs)
        model = train(items)
        model.save(out)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    pairs = [(i["text"], i["lang"]) for i in items]
    click.echo(f"trained on {len(items)} items → {out} ({out.stat().st_size / 1024:.0f} KiB)")
    for lang in (None, *sorted(model.language_cuts)):
        for cut in CUTS:
            cuts = " ".join(f"{c}={t:.2f}" for c, t in model.cut(cut, lang).items())
            click.echo(f"thresholds ({cut}{', ' + lang if lang else ''}): {cuts}")
    single, page = speed(ClaimModel.load(out), pairs)
    click.echo(f"predict: {single:.0f} µs per sentence; {page:.0f} µs per page of 40 sentences")


if __name__ == "__main__":
    main()
