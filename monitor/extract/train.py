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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError
from monitor.extract.evaluate import DEV, HELD_OUT, Score, read_corpus, split_of
from monitor.extract.model import DEFAULT_MODEL_PATH, HASH_BITS, ClaimModel, feature_buckets

DEFAULT_CORPUS = Path("tests/labelled")
FOLDS = 5
EPOCHS = 200
L2 = 1e-5
LEARNING_RATE = 2.0
# The model's threshold for adding a category the rules missed: out-of-fold precision this high.
HIGH_PRECISION = 0.90
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


def train(items: Sequence[dict[str, Any]], *, use_high: bool = True) -> ClaimModel:
    """A model fitted on `items`, with thresholds calibrated by cross-validation on them."""
    matrix = featurise(items)
    f1, high = calibrate(out_of_fold(items, matrix), matrix.labels)
    model = fit(matrix)
    thresholds = high if use_high else f1
    return ClaimModel(model.categories, model.weights, model.bias, thresholds, model.bits)


# --- the experiment: train on dev, compare with the rules on held-out --------------------------

Predictor = Callable[[int], set[str]]


def _anchored(items: Sequence[dict[str, Any]]) -> list[bool]:
    """Whether each item holds an anchor of its language: only such sentences reach the model."""
    from monitor.extract import load_extractor
    from monitor.extract.fold import fold

    languages = load_extractor().languages
    return [bool(languages[i["lang"]].anchors_in(fold(i["text"]).text)) for i in items]


def _rule_predictions(items: Sequence[dict[str, Any]]) -> list[set[str]]:
    from monitor.extract import load_extractor

    extractor = load_extractor()
    return [
        {c.category for c in extractor.extract_text(i["text"], lang_hint=i["lang"])} for i in items
    ]


def variants(
    rules: list[set[str]],
    probs: np.ndarray,
    anchored: list[bool],
    f1: dict[str, float],
    high: dict[str, float],
) -> dict[str, Predictor]:
    """The ways of combining rules and model that the experiment compares."""

    def model_at(cuts: dict[str, float]) -> Predictor:
        return lambda i: (
            {c for j, c in enumerate(CATEGORIES) if probs[i, j] >= cuts[c]}
            if anchored[i]
            else set()
        )

    model_f1, model_high = model_at(f1), model_at(high)
    veto = dict.fromkeys(CATEGORIES, 0.05)
    return {
        "rules": lambda i: rules[i],
        "model (F1 cut)": model_f1,
        "model (high cut)": model_high,
        "rules ∪ model(high)": lambda i: rules[i] | model_high(i),
        "rules ∪ model(F1)": lambda i: rules[i] | model_f1(i),
        "rules, else model(F1)": lambda i: rules[i] or model_f1(i),
        "rules, else model(high)": lambda i: rules[i] or model_high(i),
        "rules − model veto(p<.05)": lambda i: {
            c for c in rules[i] if probs[i, CATEGORIES.index(c)] >= veto[c]
        },
    }


def score_table(items: Sequence[dict[str, Any]], predictors: dict[str, Predictor]) -> str:
    """P/R per category (all languages) and per language for each predictor: aggregates only."""
    columns = [*CATEGORIES, "all", "en", "ja", "zh"]
    short = {c: c.split("_")[0][:8] for c in CATEGORIES}
    header = f"{'variant':<27}" + "".join(f" {short.get(c, c):>11}" for c in columns)
    lines = [header, f"{'':<27}" + "".join(f" {'P/R':>11}" for c in columns)]
    for name, predict in predictors.items():
        scores = {c: Score() for c in columns}
        for i, item in enumerate(items):
            expected, predicted = set(item["labels"]), predict(i)
            for category in expected | predicted:
                for cell in (category, "all", item["lang"]):
                    _tally(scores[cell], category in expected, category in predicted)
        cells = "".join(f" {scores[c].precision:>5.2f}/{scores[c].recall:.2f}" for c in columns)
        lines.append(f"{name:<27}{cells}")
    return "\n".join(lines)


def _tally(score: Score, expected: bool, predicted: bool) -> None:
    if expected and predicted:
        score.tp += 1
    elif predicted:
        score.fp += 1
    else:
        score.fn += 1


def experiment(corpus_dir: Path) -> str:
    """Train on dev only, calibrate by cross-validation on dev, and compare on held-out."""
    items = read_corpus(corpus_dir)
    dev = [i for i in items if split_of(i) == DEV]
    held = [i for i in items if split_of(i) == HELD_OUT]
    dev_matrix = featurise(dev)
    f1, high = calibrate(out_of_fold(dev, dev_matrix), dev_matrix.labels)
    model = fit(dev_matrix)
    probs = probabilities(model, featurise(held))
    table = score_table(held, variants(_rule_predictions(held), probs, _anchored(held), f1, high))
    cuts = " ".join(f"{c}={f1[c]:.2f}/{high[c]:.2f}" for c in CATEGORIES)
    return (
        f"trained on {len(dev)} dev items, measured on {len(held)} held-out items\n"
        f"thresholds (F1/high, from {FOLDS}-fold CV on dev): {cuts}\n{table}"
    )


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
    "corpus_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CORPUS,
    show_default=True,
    help="Folder of labelled *.jsonl files.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_MODEL_PATH,
    show_default=True,
    help="Where to write the trained model.",
)
@click.option("--experiment", "run_experiment", is_flag=True, help="Dev → held-out comparison.")
def main(corpus_dir: Path, out: Path, run_experiment: bool) -> None:
    """Retrain the claim model on every labelled item and save it (or run the experiment)."""
    try:
        if run_experiment:
            click.echo(experiment(corpus_dir))
            return
        items = read_corpus(corpus_dir)
        model = train(items)
        model.save(out)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    pairs = [(i["text"], i["lang"]) for i in items]
    cuts = " ".join(f"{c}={t:.2f}" for c, t in model.thresholds.items())
    click.echo(f"trained on {len(items)} items → {out} ({out.stat().st_size / 1024:.0f} KiB)")
    click.echo(f"thresholds: {cuts}")
    single, page = speed(ClaimModel.load(out), pairs)
    click.echo(f"predict: {single:.0f} µs per sentence; {page:.0f} µs per page of 40 sentences")


if __name__ == "__main__":
    main()
