"""The extractor: HTML or text → blocks → sentences → rules → claims with their evidence.

Per sentence: the language's anchor words gate the rules (most text never reaches a regex), each
rule that matches is checked against negation around its trigger and the exclusions that drop text
not spoken in the publisher's own voice, and what survives becomes an `ExtractedClaim`.

Two checks look beyond the sentence. Claims of the rules config/rules/context.yaml gates stand only when the sentence or the page is about medical treatment ("it works" on a software
blog is no claim). And a block most of whose sentences speak in another voice (a news report, a
regulator's warning quoted on the page) gives no claims at all, even from its neutral-looking
sentences.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from monitor.extract.attributes import AttributeFinder, load_attribute_finder
from monitor.extract.context import MedicalContext, load_medical_context
from monitor.extract.fast import TermFinder
from monitor.extract.fold import Folded, fold
from monitor.extract.html import Block, parse_page, parse_page_bytes
from monitor.extract.learned import ModelStage, load_model_stage, model_file
from monitor.extract.rules import (
    DEFAULT_RULES_DIR,
    LanguageRules,
    load_rules,
    rules_version,
)
from monitor.extract.text import (
    clean_block,
    detect_language,
    normalise_sentence,
    split_sentences,
)
from monitor.records import ExtractedClaim, unique_claims

# Clause ends bound the negation window: "no surgery, and it repairs cartilage" is not negated.
_CLAUSE_END = re.compile(r"[,;:、，；：]|\bbut\b|\bhowever\b")
_HEDGED_CONFIDENCE = 0.9
# A block whose sentences are mostly reported speech is someone else's text (at least 2 such).
_VOICED_BLOCK_SHARE = 0.5
_VOICED_BLOCK_MIN = 2
_CHROME_CONFIDENCE = 0.95


@dataclass(frozen=True)
class _Sentence:
    """One sentence: verbatim as on the page, and folded (NFKC, case-folded) for the rules."""

    text: str
    lowered: str
    block: Folded
    offset: int  # where `text` starts in the block's verbatim text
    folded_offset: int  # where `lowered` starts in the block's folded text

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of `text` that the folded span ``start:end`` of `lowered` came from."""
        a, b = self.block.original_span(self.folded_offset + start, self.folded_offset + end)
        length = len(self.text)
        return min(max(a - self.offset, 0), length), min(max(b - self.offset, 0), length)

    def normal(self) -> str:
        """The sentence NFKC-normalised but not case-folded (what attribute patterns read)."""
        return unicodedata.normalize("NFKC", self.text)


class Extractor:
    """Finds claims with the rules of one folder; `version` names those rules."""

    def __init__(self, rules_dir: Path | None = None, *, use_model: bool = True) -> None:
        self.rules_dir = Path(rules_dir) if rules_dir else DEFAULT_RULES_DIR
        self.languages: dict[str, LanguageRules] = load_rules(self.rules_dir)
        self.attributes: AttributeFinder = load_attribute_finder(self.rules_dir / "attributes.yaml")
        self.context: MedicalContext | None = load_medical_context(self.rules_dir)
        # use_model=False: the rules alone, as the model experiment compares them.
        self.model: ModelStage | None = load_model_stage(self.rules_dir) if use_model else None
        self.version: str = _version(self.rules_dir)
        self.any_anchor = TermFinder(a for rules in self.languages.values() for a in rules.anchors)

    def extract_html(
        self,
        html: str | bytes,
        *,
        content_type: str | None = None,
        lang_hint: str | None = None,
    ) -> list[ExtractedClaim]:
        """Claims in a page's visible text; bytes are decoded as the crawler decodes them."""
        page = parse_page_bytes(html, content_type) if isinstance(html, bytes) else parse_page(html)
        hint = lang_hint or page.declared_lang
        return unique_claims(self._claims(page.blocks, hint))

    def extract_text(self, text: str, *, lang_hint: str | None = None) -> list[ExtractedClaim]:
        """Claims in plain text; blank lines separate blocks."""
        pieces = (clean_block(p) for p in re.split(r"\n\s*\n", text))
        blocks = [Block(p, index=i) for i, p in enumerate(pieces) if p]
        return unique_claims(self._claims(blocks, lang_hint))

    def extract_blocks(
        self, texts: list[str], *, lang_hint: str | None = None
    ) -> list[ExtractedClaim]:
        """Claims in the blocks of one page, given as texts in page order; a claim's
        `block_index` is the position of its text in `texts`."""
        blocks = [Block(clean_block(t), index=i) for i, t in enumerate(texts)]
        return unique_claims(self._claims([b for b in blocks if b.text], lang_hint))

    @property
    def _model_reads_every_sentence(self) -> bool:
        """model.yaml's ``sentences: all``: sentences without an anchor word are read too."""
        return self.model is not None and self.model.sentences == "all"

    def _claims(self, blocks: list[Block], hint: str | None) -> Iterator[ExtractedClaim]:
        done: set[str] = set()  # a repeated sentence gives the same claims: do it once
        page = _PageBlocks([fold(block.text) for block in blocks], hint, self.languages)
        page_context = _PageContext(self.context, self.attributes, page)
        checked: list[_CheckedBlock] = []
        every_sentence = self._model_reads_every_sentence
        for number, (block, folded) in enumerate(zip(blocks, page.folded, strict=True)):
            # Most blocks hold no anchor of any language: they need no language and no sentences
            # (unless the model reads every sentence).
            if not every_sentence and not self.any_anchor.occurs_in(folded.text):
                continue
            lang = page.language(number)
            anchors = self.languages[lang].anchors_in(folded.text) if lang else []
            if anchors or (lang and every_sentence):
                checked.append(self._block_claims(block, lang, folded, anchors, done, page_context))
        if self.model is None:
            for result in checked:
                yield from result.claims
        else:
            yield from self._model_claims(checked, page_context)

    def _block_claims(
        self,
        block: Block,
        lang: str,
        folded: Folded,
        anchors: list[str],
        done: set[str],
        page_context: _PageContext,
    ) -> _CheckedBlock:
        """The rules' claims of one block; none when the block as a whole is in another voice."""
        lowered = folded.text
        spans = list(split_sentences(lowered, lang))
        result = _CheckedBlock(block, lang, [lowered[a:b] for a, b in spans])
        checked: list[str] = []
        every_sentence = self._model_reads_every_sentence
        for start, end in spans:
            low = lowered[start:end]
            if low in done:
                continue
            anchored = any(a in low for a in anchors)
            if not anchored and not every_sentence:
                continue
            done.add(low)
            checked.append(low)
            sentence = _verbatim_sentence(block.text, folded, start, end)
            found: set[str] = set()
            if anchored:  # without an anchor word no rule can match: the model's alone
                for claim in self._sentence_claims(block, lang, sentence):
                    if page_context.allows(claim.rule_id, lang, sentence):
                        result.claims.append(claim)
                        found.add(claim.category)
            result.sentences.append((sentence, found))
        # Judged only for blocks with claims: most blocks have none, and this reads every sentence.
        if result.claims:
            result.other_voice = self._in_other_voice(lang, result.all_sentences)
            if result.other_voice:
                done.difference_update(checked)  # the same sentence elsewhere may be the clinic's
                result.claims = []
        return result

    def _in_other_voice(self, lang: str, sentences: list[str]) -> bool:
        """Whether most of a block's sentences (at least 2) report or criticise."""
        voiced = sum(1 for low in sentences if _reported(self.languages[lang], low))
        return voiced >= _VOICED_BLOCK_MIN and voiced >= len(sentences) * _VOICED_BLOCK_SHARE

    def _sentence_claims(
        self, block: Block, lang: str, sentence: _Sentence
    ) -> Iterator[ExtractedClaim]:
        rules = self.languages[lang]
        lowered = sentence.lowered
        seen: set[str] = set()
        for rule in rules.rules_for(lowered):  # only rules whose required literals are present
            if rule.category in seen:
                continue
            match = rule.matcher.search(lowered)
            if match is None or (rule.unless and rule.unless.search(lowered)):
                continue
            if rule.negatable and _negated(rules, lowered, match.start(), match.end()):
                continue
            if _excluded(rules, rule.category, lowered):
                continue
            seen.add(rule.category)
            yield self._claim(
                block,
                lang,
                sentence,
                rule.category,
                rule.id,
                rule.confidence,
                (match.start(), match.end()),
                rule.attributes,
            )

    def _model_claims(
        self, checked: list[_CheckedBlock], page_context: _PageContext
    ) -> Iterator[ExtractedClaim]:
        """The rules' claims less those the model vetoes, then the categories the model reads
        in checked sentences where the rules did not find them.

        The page's sentences are scored in one call (a call per block would cost more than the
        rules themselves)."""
        assert self.model is not None
        model = self.model
        read = self._model_reads(checked, page_context)
        batch = [
            (s, r.lang)
            for r, reads in zip(checked, read, strict=True)
            for (s, _), yes in zip(r.sentences, reads, strict=True)
            if yes
        ]
        readings = iter(model.read([s.lowered for s, _ in batch], [lang for _, lang in batch]))
        added: list[list[ExtractedClaim]] = []
        for result, reads in zip(checked, read, strict=True):
            vetoed: set[tuple[str, str]] = set()
            claims = []
            for (sentence, found), yes in zip(result.sentences, reads, strict=True):
                if not yes:
                    continue
                reading = next(readings)
                vetoed.update((sentence.text, c) for c in reading.vetoed & found)
                claims.extend(
                    self._model_sentence_claims(
                        result.block, result.lang, sentence, reading.above, found
                    )
                )
            yield from (c for c in result.claims if (c.text, c.category) not in vetoed)
            if claims and result.other_voice is None:
                result.other_voice = self._in_other_voice(result.lang, result.all_sentences)
            added.append([] if result.other_voice else claims)
        for claims in added:
            yield from claims

    def _model_reads(
        self, checked: list[_CheckedBlock], page_context: _PageContext
    ) -> list[list[bool]]:
        """Per checked block (not in another voice) and sentence: whether the model reads it.
        Cheap checks first: the model only reads sentences that could give a claim."""
        assert self.model is not None
        model = self.model
        medical = {
            "sentence": page_context.names_medical_term,
            "page": page_context.is_medical,
            "any": lambda _lang, _sentence: True,
        }[model.context]
        return [
            [
                result.other_voice is not True
                and model.long_enough(s.lowered, result.lang)
                and medical(result.lang, s)
                for s, _ in result.sentences
            ]
            for result in checked
        ]

    def _model_sentence_claims(
        self,
        block: Block,
        lang: str,
        sentence: _Sentence,
        row: dict[str, float],
        found: set[str],
    ) -> Iterator[ExtractedClaim]:
        """The model's categories for one (medical) sentence that are in the publisher's voice."""
        assert self.model is not None
        rules = self.languages[lang]
        # A second category on a sentence the rules already read as a claim needs the precise
        # cut: the model's probabilities leak between a sentence's categories.
        precise = self.model.model.cut("precise", lang) if found and row else {}
        for category, probability in row.items():
            if category in found or _excluded(rules, category, sentence.lowered):
                continue
            if found and probability < precise[category]:
                continue
            rule_id = f"{lang}.model.{category}"
            span = (0, len(sentence.lowered))  # the model reads the sentence as a whole
            yield self._claim(block, lang, sentence, category, rule_id, probability, span)

    def _claim(
        self,
        block: Block,
        lang: str,
        sentence: _Sentence,
        category: str,
        rule_id: str,
        base_confidence: float,
        span: tuple[int, int],
        fixed_attributes: dict | None = None,
    ) -> ExtractedClaim:
        hedged = self.languages[lang].hedges.search(sentence.lowered) is not None
        confidence = base_confidence * (_HEDGED_CONFIDENCE if hedged else 1.0)
        attributes = dict(fixed_attributes or {})
        normal = sentence.normal()  # figures and lexicons read full-width digits as ASCII
        if category == "registry_endorsement":
            attributes.update(self.attributes.registry(normal))
        text = sentence.text
        trigger_start, trigger_end = sentence.original_span(*span)
        return ExtractedClaim(
            category=category,
            text=text,
            key=normalise_sentence(text),
            lang=lang,
            trigger=text[trigger_start:trigger_end],
            trigger_start=trigger_start,
            trigger_end=trigger_end,
            rule_id=rule_id,
            rules_version=self.version,
            hedged=hedged,
            confidence=round(confidence * (_CHROME_CONFIDENCE if block.chrome else 1.0), 3),
            conditions=self.attributes.conditions.find(normal),
            interventions=self.attributes.interventions.find(normal),
            figures=self.attributes.figures(normal),
            attributes=attributes,
            location=block.location,
            chrome=block.chrome,
            block_index=block.index,
        )


def _verbatim_sentence(text: str, folded: Folded, start: int, end: int) -> _Sentence:
    """The sentence at folded offsets ``start:end`` of a block, as the block's text has it."""
    first, last = folded.original_span(start, end)
    while first < last and text[first].isspace():
        first += 1
    while last > first and text[last - 1].isspace():
        last -= 1
    return _Sentence(text[first:last], folded.text[start:end], folded, first, start)


def _negated(rules: LanguageRules, lowered: str, start: int, end: int) -> bool:
    """A negation cue in the same clause just before (or, for Japanese, just after) the trigger."""
    window = rules.negation_window
    if rules.negation_before:
        before = lowered[max(0, start - window) : start]
        clauses = _CLAUSE_END.split(before)
        if rules.negation_before.search(clauses[-1]):
            return True
    if rules.negation_after:
        after = _CLAUSE_END.split(lowered[end : end + window])[0]
        if rules.negation_after.search(after):
            return True
    return False


def _excluded(rules: LanguageRules, category: str, lowered: str) -> bool:
    """Whether an exclusion (reported speech, disclaimer, the law explained …) drops the claim."""
    for exclusion in rules.exclusions:
        if not exclusion.applies(category):
            continue
        if exclusion.matcher.search(lowered) and not (
            exclusion.unless and exclusion.unless.search(lowered)
        ):
            return True
    return False


def _reported(rules: LanguageRules, lowered: str) -> bool:
    """Whether an exclusion for every category (reported speech, critique …) matches."""
    return any(
        exclusion.categories is None
        and exclusion.matcher.search(lowered)
        and not (exclusion.unless and exclusion.unless.search(lowered))
        for exclusion in rules.exclusions
    )


@dataclass
class _CheckedBlock:
    """A block the rules read: their claims, and its checked sentences for the model."""

    block: Block
    lang: str
    all_sentences: list[str]  # every sentence, folded, for judging the block's voice
    claims: list[ExtractedClaim] = field(default_factory=list)
    sentences: list[tuple[_Sentence, set[str]]] = field(default_factory=list)
    other_voice: bool | None = None  # None: not judged (only blocks with claims are)


class _PageBlocks:
    """A page's folded blocks and, detected on first need, the language of each."""

    def __init__(
        self, folded: list[Folded], hint: str | None, languages: dict[str, LanguageRules]
    ) -> None:
        self.folded = folded
        self.hint = hint
        self.languages = languages
        self.detected: dict[int, str | None] = {}

    def language(self, number: int) -> str | None:
        """The language of block `number` when there are rules for it, else None."""
        if number not in self.detected:
            lang = detect_language(self.folded[number].text, self.hint)
            self.detected[number] = lang if lang in self.languages else None
        return self.detected[number]

    def texts_in(self, lang: str) -> Iterator[str]:
        """The folded text of every block in `lang`, in page order (detected as read)."""
        return (f.text for i, f in enumerate(self.folded) if self.language(i) == lang)


class _PageContext:
    """Whether a claim's sentence or its page is about medical treatment (decided lazily)."""

    def __init__(
        self, context: MedicalContext | None, attributes: AttributeFinder, page: _PageBlocks
    ) -> None:
        self.context = context
        self.attributes = attributes
        self.page = page
        self.pages: dict[str, bool] = {}

    def allows(self, rule_id: str, lang: str, sentence: _Sentence) -> bool:
        """True unless the rule is gated and neither sentence nor page has the context."""
        if self.context is None or not self.context.needs_context(rule_id):
            return True
        return self.is_medical(lang, sentence)

    def is_medical(self, lang: str, sentence: _Sentence) -> bool:
        """Whether the sentence or its page is medical: the cheap test first, the page once per
        language, the lexicons last."""
        if self.context is None or self.names_medical_term(lang, sentence):
            return True
        if lang not in self.pages:
            self.pages[lang] = self.context.page_has_context(lang, self.page.texts_in(lang))
        return self.pages[lang] or self._names_condition_or_intervention(sentence)

    def names_medical_term(self, lang: str, sentence: _Sentence) -> bool:
        """Whether the sentence names a term of context.yaml (the cheap part of the test)."""
        return self.context is None or self.context.in_sentence(lang, sentence.lowered)

    def _names_condition_or_intervention(self, sentence: _Sentence) -> bool:
        """A named condition or intervention ("ALS", 「自閉症」, "PRP") is context enough."""
        normal = sentence.normal()
        return bool(
            self.attributes.conditions.find(normal) or self.attributes.interventions.find(normal)
        )


def _version(rules_dir: Path) -> str:
    """The rules version: the rule files and, when model.yaml uses one, the model file."""
    model = model_file(rules_dir)
    return rules_version(rules_dir, (model,) if model else ())


@lru_cache(maxsize=16)
def _cached(rules_dir: Path, version: str) -> Extractor:
    return Extractor(rules_dir)


def load_extractor(rules_dir: Path | None = None) -> Extractor:
    """The extractor for `rules_dir` (default config/rules), built once per folder and version."""
    folder = (Path(rules_dir) if rules_dir else DEFAULT_RULES_DIR).resolve()
    if not folder.is_dir():
        return Extractor(folder)  # raises the ConfigError that names the folder
    return _cached(folder, _version(folder))
