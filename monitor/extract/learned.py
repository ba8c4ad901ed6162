"""The trained model as a second reader of the sentences the rules checked.

Rules are precise but only as wide as the phrasings their authors thought of, and they match
words a sentence can have without making the claim; the model (`monitor.extract.model`) has read
every labelled sentence of several writers. For each sentence the rules checked that it reads —
by default those that name a term of context.yaml (``context: sentence``; ``page``: also every
sentence of a medical page; ``any``: all; with ``sentences: all``, also the sentences without an
anchor word the rules skip) — a category the rules did not find is added when the
model's probability reaches its language's cut and the sentence is in the publisher's own voice
(the exclusions of the language's rule file), and a category the rules found is dropped when the
model gives it less than ``veto``.

``config/rules/model.yaml`` switches the stage on and says which model file and categories it
uses; the model file is part of the rules version, so retraining it changes the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError
from monitor.extract.model import CUTS, DEFAULT_MODEL_PATH, ClaimModel
from monitor.extract.rules import read_yaml

MODEL_FILE = "model.yaml"
_KEYS = {
    "enabled",
    "file",
    "categories",
    "cut",
    "min_probability",
    "min_words",
    "context",
    "veto",
    "sentences",
}
# The first of each is the default. sentence: the sentence names a medical term; page: or its
# page is medical; any: no such test.
CONTEXTS = ("sentence", "page", "any")
# checked: the sentences the rules checked (they hold an anchor word); all: every sentence of a
# block in a language with rules.
SENTENCES = ("checked", "all")


@dataclass(frozen=True)
class ModelStage:
    """The loaded model and the categories it may add."""

    model: ClaimModel
    categories: frozenset[str]
    cut: str = "precise"
    min_probability: float = 0.0
    # Sentences shorter than this (words; CJK: characters / 3) give the model too little to read.
    min_words: int = 0
    # Which sentences the model reads (CONTEXTS): "sentence" — those naming a term of
    # context.yaml; "page" — also every sentence of a medical page; "any" — every one.
    context: str = "sentence"
    # A rule's category on a sentence the model reads is dropped when the model gives it less.
    veto: float = 0.0
    # Which sentences are offered to the model (SENTENCES): "checked" — those holding an anchor
    # word of the rules; "all" — every one (a patient's story rarely names what the rules look
    # for). The context and length tests apply either way.
    sentences: str = "checked"
    # Cuts per language as arrays, made on first use; which model categories the stage may add
    # or veto.
    _cut_cache: dict[str, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _allowed: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        allowed = np.array([c in self.categories for c in self.model.categories])
        object.__setattr__(self, "_allowed", allowed)  # frozen: set once, here

    def long_enough(self, lowered: str, lang: str) -> bool:
        """Whether a sentence has `min_words` words (Japanese, Chinese: 3 characters a word)."""
        if not self.min_words:
            return True
        if lang == "en":  # splitting stops once there are enough words
            return len(lowered.split(None, self.min_words - 1)) >= self.min_words
        return len(lowered) >= 3 * self.min_words

    def read(self, sentences: list[str], langs: list[str]) -> list[Reading]:
        """The model's reading of each folded sentence (in its language), all in one call."""
        if not sentences:
            return []
        probabilities = self.model.probabilities(sentences, langs, folded=True)
        above = (probabilities >= np.array([self._cuts(lang) for lang in langs])) & self._allowed
        low = (probabilities < self.veto) & self._allowed
        categories = self.model.categories
        return [
            Reading(
                {categories[j]: float(row[j]) for j in np.flatnonzero(hits)} if hits.any() else {},
                frozenset(categories[j] for j in np.flatnonzero(lows)) if lows.any() else _NONE,
            )
            for row, hits, lows in zip(probabilities, above, low, strict=True)
        ]

    def _cuts(self, lang: str) -> np.ndarray:
        """`lang`'s cut per model category (at least `min_probability`), computed once."""
        cuts = self._cut_cache.get(lang)
        if cuts is None:
            by_category = self.model.cut(self.cut, lang)
            cuts = np.array(
                [max(by_category[c], self.min_probability) for c in self.model.categories]
            )
            self._cut_cache[lang] = cuts
        return cuts


_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reading:
    """What the model reads in one sentence: the allowed categories at or above the cut (with
    their probability), and the allowed categories under `veto`."""

    above: dict[str, float]
    vetoed: frozenset[str]


def model_settings(rules_dir: Path) -> dict[str, Any] | None:
    """model.yaml's settings, checked; None when the folder has no model.yaml or it is off."""
    path = rules_dir / MODEL_FILE
    if not path.exists():
        return None
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (enabled, file, categories)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: enabled: true or false is required")
    if not enabled:
        return None
    categories = data.get("categories", list(CATEGORIES))
    if not isinstance(categories, list) or not categories:
        raise ConfigError(f"{path}: categories: a list of claim categories is required")
    for category in categories:
        if category not in CATEGORIES:
            raise ConfigError(
                f"{path}: categories: unknown category {category!r} (known: {', '.join(CATEGORIES)})"
            )
    min_words = data.get("min_words", 0)
    if not isinstance(min_words, int) or isinstance(min_words, bool) or min_words < 0:
        raise ConfigError(f"{path}: min_words: a whole number ≥ 0 is required")
    file = data.get("file")
    if file is not None and not isinstance(file, str):
        raise ConfigError(f"{path}: file: a path (relative to the rules folder) is required")
    return {
        "path": (rules_dir / file) if file else DEFAULT_MODEL_PATH,
        # The rest are the ModelStage's fields.
        "categories": frozenset(categories),
        "cut": _choice(path, data, "cut", CUTS),
        "min_probability": _fraction(path, data, "min_probability"),
        "min_words": min_words,
        "context": _choice(path, data, "context", CONTEXTS),
        "veto": _fraction(path, data, "veto"),
        "sentences": _choice(path, data, "sentences", SENTENCES),
    }


def _choice(path: Path, data: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """The value of `key`, one of `choices` (default: the first)."""
    value = data.get(key, choices[0])
    if value not in choices:
        raise ConfigError(f"{path}: {key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _fraction(path: Path, data: dict[str, Any], key: str) -> float:
    """The value of `key`, a number from 0 up to (not including) 1 (default 0)."""
    value = data.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{path}: {key}: a number from 0 up to (not including) 1")
    return float(value)


def model_file(rules_dir: Path) -> Path | None:
    """The model file the rules folder uses (for the rules version), or None."""
    settings = model_settings(rules_dir)
    return settings["path"] if settings else None


def load_model_stage(rules_dir: Path) -> ModelStage | None:
    """The model stage configured by the folder's model.yaml, or None when there is none."""
    settings = model_settings(rules_dir)
    if settings is None:
        return None
    model = ClaimModel.load(settings.pop("path"))
    missing = settings["categories"] - set(model.categories)
    if missing:
        raise ConfigError(
            f"{rules_dir / MODEL_FILE}: categories: the model has no {sorted(missing)[0]!r}"
        )
    return ModelStage(model, **settings)
