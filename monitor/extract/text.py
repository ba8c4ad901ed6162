"""Text helpers: the claim key, per-block language detection and sentence splitting.

Everything here is linear in the input: the regular expressions are character classes or bounded
alternations, so adversarial text cannot make them backtrack.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

_SPACES = re.compile(r"\s+")
# Punctuation and symbols are folded away from the key; letters, digits, CJK and % stay.
_PUNCT = re.compile(r"[^\w%$€£¥]+")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Simplified characters that Japanese never writes: their presence settles Han-only text as Chinese.
_SIMPLIFIED_ONLY = re.compile(
    "[们这为说时对发经过还进么样现动关开问门见实东车书设级产员觉务专业乐买亲众优传伤侧儿养军决况"
    "净创办劳势华单卖卫却历压变听响图团园围场坏块报处备复头夺宁宝审导层币师带帮张强录归彻恶战执"
    "扩扫护择换损摆携数无旧显术杀杂权极构标树样桥检欢气汉汤沟没泽洁济热爱独环电疗皱盐监盘础确种"
    "积笔简类红纪约纯纸线组细织终绍结给绝统继续维综绿缓编网罗职联肤胁脑脸药艺节获营虽补观规视览"
    "计认讨让训议记讲许论证评识诉诊词试询该详语误请读课调谈谢质购费资赛轮软轻较辑输边迁运这远违"
    "连迟适选递邮释钟钱铁银锁闭间闻阅队阶际陆陈随险隐难须顾领频题额风飞饭馆验鲜鸡齐龄龙]"
)
_LATIN = re.compile(r"[A-Za-z]")
# Characters of a block read to tell its language: a paragraph's start says it.
_LANGUAGE_SAMPLE = 600
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# Function words frequent in any English text; a long Latin block without them is another language.
_ENGLISH_WORDS = frozenset(
    [
        "the",
        "and",
        "of",
        "to",
        "in",
        "is",
        "are",
        "we",
        "our",
        "you",
        "your",
        "with",
        "for",
        "that",
        "this",
        "it",
        "be",
        "can",
        "on",
        "by",
        "at",
        "from",
        "as",
        "have",
        "has",
        "was",
        "were",
        "will",
        "not",
        "or",
        "an",
    ]
)
# Function words of the other languages clinics' neighbours write in (German, French, Spanish,
# Portuguese, Italian, Dutch) that are not English words ("als", "die", "et al." are left out:
# English has them), in ASCII letters as `_LATIN_WORD` reads them: two of them outweigh a short
# text's English function words.
_OTHER_LATIN_WORDS = frozenset(
    [
        "der",
        "das",
        "und",
        "ist",
        "nicht",
        "mit",
        "bei",
        "sie",
        "wie",
        "auch",
        "ein",
        "eine",
        "einen",
        "zum",
        "zur",
        "sind",
        "wird",
        "oder",
        "les",
        "des",
        "est",
        "une",
        "pour",
        "dans",
        "avec",
        "sur",
        "pas",
        "qui",
        "sont",
        "aux",
        "du",
        "el",
        "los",
        "las",
        "del",
        "para",
        "con",
        "una",
        "por",
        "que",
        "es",
        "muy",
        "pero",
        "os",
        "da",
        "em",
        "uma",
        "il",
        "gli",
        "della",
        "che",
        "sono",
        "di",
        "een",
        "het",
        "zijn",
        "niet",
        "met",
        "voor",
    ]
)
_ENGLISH_ABBREVIATIONS = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "st",
        "no",
        "vs",
        "etc",
        "approx",
        "inc",
        "b/",
        "ltd",
        "co",
        "fig",
        "dept",
        "jr",
        "sr",
        "e.g",
        "i.e",
        "u.s",
        "u.k",
        "mt",
        "ph.d",
        "m.d",
        "a.m",
        "p.m",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
# A quote's attribution ("… again." — Rob, Alberta / 「…。」（60代女性）) stays with the quote: the
# attribution is what makes the sentence a testimonial. Possessive quantifiers keep the lookahead
# from splitting between a full stop and its closing quote.
_EN_END = re.compile(r"[.!?]++[\"'”’)\]]*+(?=\s)(?!\s*[—–―])")
_CJK_END = re.compile(
    r"[。！？!?]++[」』）)”’\"]*+(?![（(—―\-])|(?<=[」』”\"])[（(][^（）()\n]{1,30}[）)]|\n"
)
_MAX_SENTENCE = 600


def normalise_sentence(text: str) -> str:
    """The claim key: NFKC, case-folded, punctuation and whitespace folded, digits kept.

    Two renderings of one sentence (full-width digits, curly quotes, extra spaces, a trailing
    full stop) give the same key.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _PUNCT.sub(" ", folded)).strip()


def clean_block(text: str) -> str:
    """Collapse runs of spaces in a block (line breaks are kept as one ``\\n``); nothing else
    changes, so claim sentences stay verbatim (rules match `fold.fold` of the block)."""
    lines = text.splitlines()
    if len(lines) == 1:  # most blocks
        return " ".join(lines[0].split())
    collapsed = (" ".join(line.split()) for line in lines)
    return "\n".join(line for line in collapsed if line)


def detect_language(text: str, hint: str | None = None) -> str | None:
    """``ja`` for kana, ``zh`` for Han without kana, ``en`` for English; None for anything else.

    `hint` (the page's or site's language) breaks ties: short Han-only text on a Japanese page is
    Japanese (headings such as 「料金表」 carry no kana). A long block is judged by its start.
    """
    short = len(text) <= 40
    text = text[:_LANGUAGE_SAMPLE]
    if text.isascii():  # most blocks: no kana or Han to look for
        return _latin_language(text, hint) if _LATIN.search(text) else None
    if _KANA.search(text):
        if _mostly_latin(text, _KANA):
            return _latin_language(text, hint)
        return "ja"
    if _HAN.search(text):
        if _mostly_latin(text, _HAN):
            return _latin_language(text, hint)
        if hint == "ja" and short and not _SIMPLIFIED_ONLY.search(text):
            return "ja"
        return "zh"
    if _LATIN.search(text):
        return _latin_language(text, hint)
    return None


def _mostly_latin(text: str, script: re.Pattern[str]) -> bool:
    """An English sentence quoting one Japanese word is still English."""
    return len(_LATIN.findall(text)) > 4 * len(script.findall(text))


def _latin_language(text: str, hint: str | None) -> str | None:
    """English unless the words say otherwise (German, French …).

    A long text needs enough English function words; a short one is English unless it has more
    function words of another language (at least two) than English ones. On a page that declares
    another language, only long, plainly English text is English.
    """
    if hint == "en":
        return "en"
    words = _LATIN_WORD.findall(text.lower())
    english = sum(1 for w in words if w in _ENGLISH_WORDS)
    if hint is not None and hint not in ("ja", "zh"):
        # A page in German or French: only plainly English text (an English section) is read.
        return "en" if len(words) >= 12 and english * 4 >= len(words) else None
    if len(words) >= 12:
        return "en" if english * 12 >= len(words) else None
    other = sum(1 for w in words if w in _OTHER_LATIN_WORDS)
    return None if other >= 2 and other > english else "en"


def split_sentences(text: str, lang: str) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of the sentences of a block, whitespace trimmed."""
    ends = _CJK_END if lang in ("ja", "zh") else _EN_END
    start = 0
    for match in ends.finditer(text):
        if lang == "en" and _is_abbreviation(text, match.start()):
            continue
        yield from _trimmed_pieces(text, start, match.end())
        start = match.end()
    yield from _trimmed_pieces(text, start, len(text))


def _is_abbreviation(text: str, dot: int) -> bool:
    """A full stop after "Dr", "e.g" or a lone initial does not end an English sentence."""
    if text[dot] != ".":
        return False
    word_start = dot
    while word_start > 0 and not text[word_start - 1].isspace() and dot - word_start < 8:
        word_start -= 1
    word = text[word_start:dot].lstrip("(\"'").lower()
    return word in _ENGLISH_ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _trimmed_pieces(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """One sentence, trimmed; an overlong run without punctuation is cut at spaces."""
    for line_start, line_end in _lines(text, start, end):
        while line_end - line_start > _MAX_SENTENCE:
            cut = text.rfind(" ", line_start + _MAX_SENTENCE // 2, line_start + _MAX_SENTENCE)
            cut = cut if cut > 0 else line_start + _MAX_SENTENCE
            yield from _strip(text, line_start, cut)
            line_start = cut
        yield from _strip(text, line_start, line_end)


def _lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """A line break ends a sentence in every language (list items, headings)."""
    while True:
        newline = text.find("\n", start, end)
        if newline < 0:
            yield start, end
            return
        yield start, newline
        start = newline + 1


def _strip(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end
