"""A small trained claim classifier that complements the rules: hashed n-grams → logistic regression.

Features are character n-grams (1–4 characters, so Japanese and Chinese need no word segmentation)
and, for English, word unigrams and bigrams, hashed into 2^18 buckets. Each category has its own
binary logistic regression over those buckets; its threshold was calibrated by cross-validation
when the model was trained (`monitor.extract.train`). The shipped model is one compressed ``.npz``
file that loads with numpy alone, offline.

Hashing is vectorised: one polynomial prefix hash of the sentence gives the hash of any substring
in O(1), so every n-gram of a sentence is hashed by a few numpy operations instead of a Python
loop over n-grams.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.config import ConfigError

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "model_data" / "claim_model.npz"
HASH_BITS = 18
CHAR_NGRAMS = (1, 2, 3, 4)
# Longer texts are cut: a sentence is at most 600 characters in the extractor.
MAX_CHARS = 2000
_FORMAT_VERSION = 1

_MASK = (1 << 64) - 1
# An odd 64-bit base, so it has an inverse modulo 2^64 (substring hashes need it).
_BASE = 0x5BD1E9955BD1E995 | 1
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
# Fibonacci hashing spreads the polynomial hash over the top bits that pick the bucket.
_SPREAD = np.uint64(0x9E3779B97F4A7C15)
# Each kind of feature gets its own tag, so the word "a" and the character "a" differ.
_CHAR_TAGS = {n: np.uint64((0x51ED27 * (n + 1)) & _MASK) for n in CHAR_NGRAMS}
_WORD_TAG = np.uint64(0xA5A5_1234_9876_0001)
_BIGRAM_TAG = np.uint64(0x0F0F_7777_3333_0002)
_LANG_TAGS = {"en": 1, "ja": 2, "zh": 3}
_WORDS = re.compile(r"[a-z0-9%$€£¥]+(?:['’][a-z]+)?")
_SPACES = re.compile(r"\s+")


def _powers(base: int, length: int) -> np.ndarray:
    """base^0 … base^(length-1) modulo 2^64 (uint64 arithmetic wraps)."""
    values = np.full(length, base, dtype=np.uint64)
    values[0] = 1
    return np.cumprod(values, dtype=np.uint64)


class _PowerTables:
    """Powers of the hash base and of its inverse, grown (doubling) as longer texts arrive."""

    def __init__(self, length: int) -> None:
        self.grow(length)

    def grow(self, length: int) -> None:
        """Make both tables at least `length` long."""
        self.powers = _powers(_BASE, length)
        self.inverse = _powers(_BASE_INVERSE, length)

    def up_to(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Tables covering positions ``0 … length - 1``."""
        if length > len(self.powers):
            self.grow(max(length, 2 * len(self.powers)))
        return self.powers, self.inverse


_TABLES = _PowerTables(1 << 14)


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form features are read from.

    Idempotent, so the verbatim sentence and the extractor's folded sentence give the same
    features.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", folded).strip()[:MAX_CHARS]


def feature_buckets(sentence: str, lang: str, bits: int = HASH_BITS) -> np.ndarray:
    """The hash buckets of one sentence's n-grams in `lang`, one per occurrence (int64)."""
    groups = hash_sentences([sentence], lang, bits)
    buckets = np.concatenate([group.buckets for group in groups])
    return buckets[buckets < (1 << bits)]  # drop the padding of n-grams past the end


@dataclass(frozen=True)
class FeatureGroup:
    """Buckets of one kind of feature for several sentences, grouped by sentence.

    Sentence ``i`` owns ``buckets[starts[i]:starts[i + 1]]``; the bucket ``2**bits`` is padding
    (an n-gram past the sentence's end) and has no weight.
    """

    buckets: np.ndarray
    starts: np.ndarray


def hash_sentences(
    sentences: Sequence[str], lang: str, bits: int = HASH_BITS
) -> list[FeatureGroup]:
    """Character n-gram, word and word-bigram buckets of several sentences in one pass.

    numpy calls cost about the same for one sentence as for forty, so a page's sentences are
    hashed together; every group stays in sentence order, so no sorting is needed.
    """
    # Spaces mark where each sentence starts and ends.
    texts = [f" {normalise(sentence)} " for sentence in sentences]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    joined = "".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
        np.uint64
    )
    powers, inverse = _TABLES.up_to(len(codes) + len(CHAR_NGRAMS) + 1)
    size = len(codes) + len(CHAR_NGRAMS)  # room for n-grams that run past the end
    prefix = np.zeros(size + 1, dtype=np.uint64)
    np.cumsum((codes + np.uint64(1)) * powers[: len(codes)], out=prefix[1 : len(codes) + 1])
    prefix[len(codes) + 1 :] = prefix[len(codes)]
    positions = np.arange(len(codes))
    columns = []
    for n in CHAR_NGRAMS:
        hashes = (prefix[positions + n] - prefix[positions]) * inverse[positions]
        columns.append(_bucket(hashes ^ _CHAR_TAGS[n], bits))
    char_buckets = np.stack(columns, axis=1)  # row-major: grouped by position, so by sentence
    ends = np.repeat(offsets[1:], lengths)
    char_buckets[positions[:, None] + np.array(CHAR_NGRAMS) > ends[:, None]] = 1 << bits
    lang_bucket = _bucket(np.array([_LANG_TAGS.get(lang, 0)], dtype=np.uint64), bits)
    groups = [
        FeatureGroup(np.repeat(lang_bucket, len(texts)), np.arange(len(texts))),
        FeatureGroup(char_buckets.ravel(), offsets[:-1] * len(CHAR_NGRAMS)),
    ]
    if lang == "en":
        groups.extend(_word_groups(joined, prefix, inverse, offsets, bits))
    return groups


def _bucket(hashes: np.ndarray, bits: int) -> np.ndarray:
    """The top `bits` bits of the spread hash: the bucket (int64)."""
    return ((hashes * _SPREAD) >> np.uint64(64 - bits)).astype(np.int64)


def _word_groups(
    text: str, prefix: np.ndarray, inverse: np.ndarray, offsets: np.ndarray, bits: int
) -> list[FeatureGroup]:
    """The English words and word bigrams of `text`, grouped by sentence."""
    spans = np.array([m.span() for m in _WORDS.finditer(text)], dtype=np.int64).reshape(-1, 2)
    starts, ends = spans[:, 0], spans[:, 1]
    words = (prefix[ends] - prefix[starts]) * inverse[starts]
    sentence_of = np.searchsorted(offsets, starts, side="right") - 1
    same = sentence_of[:-1] == sentence_of[1:]  # a bigram never spans two sentences
    bigrams = words[:-1][same] * np.uint64(_BASE) + words[1:][same]
    first_word = np.searchsorted(sentence_of, np.arange(len(offsets) - 1))
    first_bigram = np.searchsorted(sentence_of[:-1][same], np.arange(len(offsets) - 1))
    return [
        FeatureGroup(_bucket(words ^ _WORD_TAG, bits), first_word),
        FeatureGroup(_bucket(bigrams ^ _BIGRAM_TAG, bits), first_bigram),
    ]


def _group_sums(weights: np.ndarray, group: FeatureGroup) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence: the summed weight rows of its buckets, and how many real buckets it has."""
    counts = np.diff(np.append(group.starts, len(group.buckets)))
    if not len(group.buckets):
        return np.zeros((len(counts), weights.shape[1]), dtype=weights.dtype), counts
    rows = weights[group.buckets]
    sums = np.add.reduceat(rows, np.minimum(group.starts, len(rows) - 1), axis=0)
    sums[counts == 0] = 0  # reduceat gives the next row for an empty group
    padding = np.add.reduceat(
        group.buckets >= weights.shape[0] - 1, np.minimum(group.starts, len(rows) - 1)
    )
    padding[counts == 0] = 0
    return sums, counts - padding


@dataclass(frozen=True)
class ClaimModel:
    """One logistic regression per category over hashed n-gram buckets.

    `weights` has one row per bucket (plus a last, zero row for padding) and one column per
    category; a sentence's score for a category is ``bias + sum(weights[buckets]) /
    sqrt(len(buckets))``, each n-gram counted as often as it occurs.
    """

    categories: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    thresholds: dict[str, float]
    bits: int = HASH_BITS

    @classmethod
    def load(cls, path: Path | str | None = None) -> ClaimModel:
        """The model saved at `path` (default: the one shipped in model_data/)."""
        path = Path(path) if path else DEFAULT_MODEL_PATH
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls._from_arrays(data)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{path}: not a claim model ({exc}); retrain with `python -m monitor.extract.train`"
            ) from None

    @classmethod
    def _from_arrays(cls, data: np.lib.npyio.NpzFile) -> ClaimModel:
        if int(data["format_version"]) != _FORMAT_VERSION:
            raise ValueError(f"format version {int(data['format_version'])}")
        categories = tuple(str(c) for c in data["categories"])
        bits = int(data["bits"])
        weights = np.zeros(((1 << bits) + 1, len(categories)), dtype=np.float32)
        weights[data["buckets"]] = data["values"].astype(np.float32)
        thresholds = dict(zip(categories, data["thresholds"].astype(float).tolist(), strict=True))
        return cls(categories, weights, data["bias"].astype(np.float32), thresholds, bits)

    def save(self, path: Path | str) -> None:
        """Write the model compactly: only non-zero rows, as float16."""
        used = np.flatnonzero(np.any(self.weights != 0, axis=1))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(
                out,
                format_version=np.array(_FORMAT_VERSION),
                categories=np.array(self.categories),
                bits=np.array(self.bits),
                buckets=used.astype(np.uint32),
                values=self.weights[used].astype(np.float16),
                bias=self.bias.astype(np.float32),
                thresholds=np.array([self.thresholds[c] for c in self.categories]),
            )

    def probabilities(self, sentences: Sequence[str], lang: str) -> np.ndarray:
        """Sentences × categories probabilities, all sentences of a page in one pass."""
        if not sentences:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        totals = np.zeros((len(sentences), len(self.categories)), dtype=np.float32)
        counts = np.zeros(len(sentences), dtype=np.int64)
        for group in hash_sentences(sentences, lang, self.bits):
            sums, real = _group_sums(self.weights, group)
            totals += sums
            counts += real
        scores = self.bias + totals / np.sqrt(counts.astype(np.float32))[:, None]
        return 1.0 / (1.0 + np.exp(-scores))

    def predict(self, sentence: str, lang: str) -> dict[str, float]:
        """The probability of each category for one sentence in `lang` (``en``, ``ja``, ``zh``)."""
        probabilities = self.probabilities([sentence], lang)[0]
        return {c: float(p) for c, p in zip(self.categories, probabilities, strict=True)}

    def categories_for(self, sentence: str, lang: str) -> set[str]:
        """The categories whose probability reaches the shipped threshold."""
        return self.categories_of(self.probabilities([sentence], lang)[0])

    def categories_of(self, probabilities: np.ndarray) -> set[str]:
        """The categories of one row of `probabilities` that reach the shipped thresholds."""
        return {
            category
            for category, probability in zip(self.categories, probabilities, strict=True)
            if probability >= self.thresholds[category]
        }
