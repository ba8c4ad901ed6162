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
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from monitor.extract.attributes import AttributeFinder, load_attribute_finder
from monitor.extract.context import MedicalContext, load_medical_context
from monitor.extract.html import Block, decode_body, parse_page
from monitor.extract.rules import (
    DEFAULT_RULES_DIR,
    LanguageRules,
    Rule,
    load_rules,
    rules_version,
)
from monitor.extract.text import detect_language, normalise_sentence, split_sentences
from monitor.records import ExtractedClaim

# Clause ends bound the negation window: "no surgery, and it repairs cartilage" is not negated.
_CLAUSE_END = re.compile(r"[,;:、，；：]|\bbut\b|\bhowever\b")
_HEDGED_CONFIDENCE = 0.9
# A block whose sentences are mostly reported speech is someone else's text (at least 2 such).
_VOICED_BLOCK_SHARE = 0.5
_VOICED_BLOCK_MIN = 2
_CHROME_CONFIDENCE = 0.95


class Extractor:
    """Finds claims with the rules of one folder; `version` names those rules."""

    def __init__(self, rules_dir: Path | None = None) -> None:
        self.rules_dir = Path(rules_dir) if rules_dir else DEFAULT_RULES_DIR
        self.languages: dict[str, LanguageRules] = load_rules(self.rules_dir)
        self.attributes: AttributeFinder = load_attribute_finder(self.rules_dir / "attributes.yaml")
        self.context: MedicalContext | None = load_medical_context(self.rules_dir)
        self.version: str = rules_version(self.rules_dir)

    def extract_html(
        self,
        html: str | bytes,
        *,
        content_type: str | None = None,
        lang_hint: str | None = None,
    ) -> list[ExtractedClaim]:
        """Claims in a page's visible text; bytes are decoded as the crawler decodes them."""
        text = decode_body(html, content_type) if isinstance(html, bytes) else html
        page = parse_page(text)
        hint = lang_hint or page.declared_lang
        return _unique(self._claims(page.blocks, hint))

    def extract_text(self, text: str, *, lang_hint: str | None = None) -> list[ExtractedClaim]:
        """Claims in plain text; blank lines separate blocks."""
        from monitor.extract.text import clean_block

        pieces = (clean_block(p) for p in re.split(r"\n\s*\n", text))
        blocks = [Block(p, index=i) for i, p in enumerate(pieces) if p]
        return _unique(self._claims(blocks, lang_hint))

    def _claims(self, blocks: list[Block], hint: str | None) -> Iterator[ExtractedClaim]:
        done: set[str] = set()  # a repeated sentence gives the same claims: do it once
        located = [
            (b, lang, _lower(b.text)) for b, lang in self._blocks_with_language(blocks, hint)
        ]
        page_anchors = self._page_anchors(located)
        page_context = _PageContext(self.context, self.attributes, located)
        for block, lang, lowered in located:
            anchors = [a for a in page_anchors[lang] if a in lowered]
            if anchors:
                yield from self._block_claims(block, lang, lowered, anchors, done, page_context)

    def _block_claims(
        self,
        block: Block,
        lang: str,
        lowered: str,
        anchors: list[str],
        done: set[str],
        page_context: _PageContext,
    ) -> list[ExtractedClaim]:
        """The claims of one block; none when the block as a whole is in another voice."""
        claims: list[ExtractedClaim] = []
        checked: list[str] = []
        spans = list(split_sentences(block.text, lang))
        for start, end in spans:
            low = lowered[start:end]
            if low in done or not any(a in low for a in anchors):
                continue
            done.add(low)
            checked.append(low)
            for claim in self._sentence_claims(block, lang, block.text[start:end], low):
                if page_context.allows(claim.rule_id, lang, claim.text):
                    claims.append(claim)
        # Judged only for blocks with claims: most blocks have none, and this reads every sentence.
        if claims and self._in_other_voice(lang, [lowered[a:b] for a, b in spans]):
            done.difference_update(checked)  # the same sentence elsewhere may be the clinic's own
            return []
        return claims

    def _in_other_voice(self, lang: str, sentences: list[str]) -> bool:
        """Whether most of a block's sentences (at least 2) report or criticise."""
        voiced = sum(1 for low in sentences if _reported(self.languages[lang], low))
        return voiced >= _VOICED_BLOCK_MIN and voiced >= len(sentences) * _VOICED_BLOCK_SHARE

    def _page_anchors(self, located: list[tuple[Block, str, str]]) -> dict[str, list[str]]:
        """Per language, the anchors present anywhere on the page (one scan of the whole text)."""
        texts: dict[str, list[str]] = {lang: [] for lang in self.languages}
        for _, lang, lowered in located:
            texts[lang].append(lowered)
        return {
            lang: [a for a in self.languages[lang].anchors if a in joined] if parts else []
            for lang, parts in texts.items()
            for joined in ("\n".join(parts),)
        }

    def _blocks_with_language(
        self, blocks: list[Block], hint: str | None
    ) -> list[tuple[Block, str]]:
        """Blocks in a language we have rules for."""
        found = []
        for block in blocks:
            lang = detect_language(block.text, hint)
            if lang in self.languages:
                found.append((block, lang))
        return found

    def _sentence_claims(
        self, block: Block, lang: str, sentence: str, lowered: str
    ) -> Iterator[ExtractedClaim]:
        rules = self.languages[lang]
        seen: set[str] = set()
        for rule in rules.rules:
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
            yield self._claim(block, lang, sentence, lowered, rule, match)

    def _claim(
        self,
        block: Block,
        lang: str,
        sentence: str,
        lowered: str,
        rule: Rule,
        match: re.Match[str],
    ) -> ExtractedClaim:
        hedged = self.languages[lang].hedges.search(lowered) is not None
        confidence = rule.confidence * (_HEDGED_CONFIDENCE if hedged else 1.0)
        attributes = dict(rule.attributes)
        if rule.category == "registry_endorsement":
            attributes.update(self.attributes.registry(sentence))
        return ExtractedClaim(
            category=rule.category,
            text=sentence,
            key=normalise_sentence(sentence),
            lang=lang,
            trigger=sentence[match.start() : match.end()],
            trigger_start=match.start(),
            trigger_end=match.end(),
            rule_id=rule.id,
            rules_version=self.version,
            hedged=hedged,
            confidence=round(confidence * (_CHROME_CONFIDENCE if block.chrome else 1.0), 3),
            conditions=self.attributes.conditions.find(sentence),
            interventions=self.attributes.interventions.find(sentence),
            figures=self.attributes.figures(sentence),
            attributes=attributes,
            location=block.location,
            chrome=block.chrome,
            block_index=block.index,
        )


def _lower(text: str) -> str:
    """Lower-case without changing offsets (a few characters, like 'İ', grow when lowered)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


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


class _PageContext:
    """Whether a claim's sentence or its page is about medical treatment (decided lazily)."""

    def __init__(
        self,
        context: MedicalContext | None,
        attributes: AttributeFinder,
        located: list[tuple[Block, str, str]],
    ) -> None:
        self.context = context
        self.attributes = attributes
        self.located = located
        self.pages: dict[str, bool] = {}

    def allows(self, rule_id: str, lang: str, sentence: str) -> bool:
        """True unless the rule is gated and neither sentence nor page has the context."""
        if self.context is None or not self.context.needs_context(rule_id):
            return True
        if self.context.in_sentence(lang, _lower(sentence)):
            return True
        # A named condition or intervention ("ALS", 「自閉症」, "PRP") is context enough.
        named = self.attributes.conditions.find(sentence) or self.attributes.interventions.find(
            sentence
        )
        if named:
            return True
        if lang not in self.pages:
            texts = [low for _, block_lang, low in self.located if block_lang == lang]
            self.pages[lang] = self.context.page_has_context(lang, texts)
        return self.pages[lang]


def _unique(claims: Iterable[ExtractedClaim]) -> list[ExtractedClaim]:
    """One claim per category and sentence key on a page (repeats keep their first place)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for claim in claims:
        identity = (claim.category, claim.key)
        if identity not in seen:
            seen.add(identity)
            unique.append(claim)
    return unique


@lru_cache(maxsize=16)
def _cached(rules_dir: Path, version: str) -> Extractor:
    return Extractor(rules_dir)


def load_extractor(rules_dir: Path | None = None) -> Extractor:
    """The extractor for `rules_dir` (default config/rules), built once per folder and version."""
    folder = (Path(rules_dir) if rules_dir else DEFAULT_RULES_DIR).resolve()
    if not folder.is_dir():
        return Extractor(folder)  # raises the ConfigError that names the folder
    return _cached(folder, rules_version(folder))
