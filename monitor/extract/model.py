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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monitor.config import ConfigError

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "model_data" / "claim_model.npz"
HASH_BITS = 16
CHAR_NGRAMS = (2, 3, 4)
# Longer texts are cut: a sentence is at most 600 characters in the extractor.
MAX_CHARS = 2000
CUTS = ("precise", "balanced", "recall")
_FORMAT_VERSION = 3  # 2: recall thresholds stored too; 3: and cuts per language
_READABLE_VERSIONS = (2, 3)

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
# Word characters (the text is case-folded): letters, digits and the signs of figures and prices.
_WORD_SIGNS = tuple(np.uint64(ord(c)) for c in "%$€£¥")
_APOSTROPHES = tuple(np.uint64(ord(c)) for c in "'’")
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
    buckets, _ = hash_sentences([sentence], lang, bits)
    return buckets[buckets < (1 << bits)]  # drop the padding of n-grams past the end


def hash_sentences(
    sentences: Sequence[str],
    lang: str | Sequence[str],
    bits: int = HASH_BITS,
    *,
    folded: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The feature buckets of several sentences in one pass, and the sentence owning each.

    numpy calls cost about the same for one sentence as for forty, so a page's sentences are
    hashed together. Features: character n-grams, the language and, for English, words and word
    bigrams. `lang` is the language of all sentences, or one per sentence. The bucket
    ``2**bits`` is padding (an n-gram past a sentence's end; no weight).
    `folded` sentences are already NFKC-normalised and case-folded (the extractor's): only their
    spaces are collapsed.
    """
    # Spaces mark where each sentence starts and ends.
    if folded:
        texts = [f" {' '.join(sentence.split())[:MAX_CHARS]} " for sentence in sentences]
    else:
        texts = [f" {normalise(sentence)} " for sentence in sentences]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    joined = "".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
        np.uint64
    )
    powers, inverse = _TABLES.up_to(len(codes) + len(CHAR_NGRAMS) + 1)
    size = len(codes) + max(CHAR_NGRAMS)  # room for n-grams that run past the end
    prefix = np.zeros(size + 1, dtype=np.uint64)
    np.cumsum((codes + np.uint64(1)) * powers[: len(codes)], out=prefix[1 : len(codes) + 1])
    prefix[len(codes) + 1 :] = prefix[len(codes)]
    positions = np.arange(len(codes))
    owner = np.repeat(np.arange(len(texts)), lengths)  # the sentence of each character
    grams = np.array(CHAR_NGRAMS)
    starts = np.repeat(positions, len(grams))
    stops = starts + np.tile(grams, len(positions))
    tags = np.tile(np.array(list(_CHAR_TAGS.values()), dtype=np.uint64), len(positions))
    chars = _bucket(((prefix[stops] - prefix[starts]) * inverse[starts]) ^ tags, bits)
    chars[stops > np.repeat(offsets[1:], lengths * len(grams))] = 1 << bits
    langs = [lang] * len(texts) if isinstance(lang, str) else list(lang)
    tags = np.array([_LANG_TAGS.get(one, 0) for one in langs], dtype=np.uint64)
    buckets = [_bucket(tags, bits), chars]
    owners = [np.arange(len(texts)), np.repeat(owner, len(grams))]
    english = np.array([one == "en" for one in langs])
    if english.any():
        words, word_owners = _word_buckets(codes, prefix, inverse, owner, bits)
        keep = english[word_owners]
        buckets.append(words[keep])
        owners.append(word_owners[keep])
    return np.concatenate(buckets), np.concatenate(owners)


def _bucket(hashes: np.ndarray, bits: int) -> np.ndarray:
    """The top `bits` bits of the spread hash: the bucket (int64)."""
    return ((hashes * _SPREAD) >> np.uint64(64 - bits)).astype(np.int64)


def _word_buckets(
    codes: np.ndarray, prefix: np.ndarray, inverse: np.ndarray, owner: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """The buckets of the English words and word bigrams of the joined text, and their owners.

    A word is a run of letters, digits and figure signs; an apostrophe between a word and a
    letter belongs to the word ("don't"). Found with array operations, not a regex loop.
    """
    letter = (codes >= ord("a")) & (codes <= ord("z"))
    word = letter | ((codes >= ord("0")) & (codes <= ord("9"))) | _any_of(codes, _WORD_SIGNS)
    inner = np.zeros_like(word)
    inner[1:-1] = _any_of(codes[1:-1], _APOSTROPHES) & word[:-2] & letter[2:]
    word |= inner
    edges = np.diff(np.concatenate([[False], word, [False]]).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    words = (prefix[ends] - prefix[starts]) * inverse[starts]
    sentence_of = owner[starts]
    same = sentence_of[:-1] == sentence_of[1:]  # a bigram never spans two sentences
    bigrams = words[:-1][same] * np.uint64(_BASE) + words[1:][same]
    buckets = np.concatenate(
        [_bucket(words ^ _WORD_TAG, bits), _bucket(bigrams ^ _BIGRAM_TAG, bits)]
    )
    return buckets, np.concatenate([sentence_of, sentence_of[:-1][same]])


def _any_of(codes: np.ndarray, values: tuple[np.uint64, ...]) -> np.ndarray:
    """Where `codes` equals one of a few `values` (faster than np.isin for so few)."""
    found = codes == values[0]
    for value in values[1:]:
        found |= codes == value
    return found


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
    # Per category: the precise cut (out-of-fold precision ≥ 0.90) and the F1-best cut.
    thresholds: dict[str, float]
    bits: int = HASH_BITS
    recall_thresholds: dict[str, float] | None = None
    # Per language: its own (precise, F1-best) cuts. The model's probabilities run lower in one
    # language than another, so one cut for all leaves recall behind where they run low.
    language_cuts: dict[str, tuple[dict[str, float], dict[str, float]]] = field(
        default_factory=dict
    )

    def cut(self, name: str, lang: str | None = None) -> dict[str, float]:
        """Thresholds per category: ``precise`` (the shipped ones), ``recall`` (F1-best) or
        ``balanced`` (half-way between) — `lang`'s own where the model has them."""
        if lang in self.language_cuts:
            precise, recall = self.language_cuts[lang]
        else:
            precise, recall = self.thresholds, self.recall_thresholds or self.thresholds
        if name == "precise":
            return dict(precise)
        if name == "recall":
            return dict(recall)
        if name == "balanced":
            return {c: (precise[c] + recall[c]) / 2 for c in self.categories}
        raise ValueError(f"unknown cut {name!r} (known: {', '.join(CUTS)})")

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
        version = int(data["format_version"])
        if version not in _READABLE_VERSIONS:
            raise ValueError(f"format version {version}")
        categories = tuple(str(c) for c in data["categories"])
        bits = int(data["bits"])
        weights = np.zeros(((1 << bits) + 1, len(categories)), dtype=np.float32)
        weights[data["buckets"]] = data["values"].astype(np.float32)

        def by_category(values: np.ndarray) -> dict[str, float]:
            return dict(zip(categories, values.astype(float).tolist(), strict=True))

        languages = {}
        if version >= 3:
            for lang, precise, best in zip(
                data["cut_languages"],
                data["language_precise"],
                data["language_recall"],
                strict=True,
            ):
                languages[str(lang)] = (by_category(precise), by_category(best))
        thresholds, recall = by_category(data["thresholds"]), by_category(data["recall_thresholds"])
        bias = data["bias"].astype(np.float32)
        return cls(categories, weights, bias, thresholds, bits, recall, languages)

    def save(self, path: Path | str) -> None:
        """Write the model compactly: only non-zero rows, as float16."""
        used = np.flatnonzero(np.any(self.weights != 0, axis=1))
        languages = sorted(self.language_cuts)
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
                recall_thresholds=np.array([self.cut("recall")[c] for c in self.categories]),
                cut_languages=np.array(languages, dtype=str),
                language_precise=self._language_table(languages, 0),
                language_recall=self._language_table(languages, 1),
            )

    def _language_table(self, languages: list[str], which: int) -> np.ndarray:
        """Languages × categories: each language's precise (0) or F1-best (1) cuts."""
        rows = [[self.language_cuts[lang][which][c] for c in self.categories] for lang in languages]
        return np.array(rows, dtype=float).reshape(len(languages), len(self.categories))

    def probabilities(
        self, sentences: Sequence[str], lang: str | Sequence[str], *, folded: bool = False
    ) -> np.ndarray:
        """Sentences × categories probabilities, all sentences of a page in one pass.

        `lang`: the language of all sentences, or one per sentence. `folded`: the sentences are
        already NFKC-normalised and case-folded (saves that work)."""
        if not sentences:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        buckets, owners = hash_sentences(sentences, lang, self.bits, folded=folded)
        order = np.argsort(owners, kind="stable")
        buckets, owners = buckets[order], owners[order]
        padding = self.weights.shape[0] - 1
        real = buckets < padding
        buckets, owners = buckets[real], owners[real]
        counts = np.bincount(owners, minlength=len(sentences))
        totals = np.zeros((len(sentences), len(self.categories)), dtype=np.float32)
        if len(buckets):
            # Owners ascend, so one reduceat sums each sentence's weight rows.
            starts = np.searchsorted(owners, np.arange(len(sentences)))
            sums = np.add.reduceat(self.weights[buckets], np.minimum(starts, len(buckets) - 1))
            present = counts > 0
            totals[present] = sums[present]
        scores = self.bias + totals / np.sqrt(np.maximum(counts, 1).astype(np.float32))[:, None]
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
