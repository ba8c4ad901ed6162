"""Turn the raw bytes of an HTML page into text, with the rules clinic sites need.

Order: the HTTP header charset wins (even when the page's meta says otherwise), then a byte-order
mark, then a ``<meta charset>`` / ``http-equiv`` declaration. A declaration that fails a strict
decode, or yields U+FFFD, is ignored and the candidates below are tried strictly, in order. The
raw bytes stay in the database, so a page can always be decoded again with better rules.
"""

from __future__ import annotations

import codecs
import re

# Tried in this order when nothing usable is declared. cp932 (not shift_jis) keeps NEC/IBM
# extensions such as ①, ㈱ and 髙; euc_jis_2004 (not euc_jp) keeps NEC row 13 in EUC-JP.
CANDIDATES = ("utf-8", "cp932", "euc_jis_2004", "gb18030", "big5")

# Declared names whose Python codec is narrower than what servers actually send.
ALIASES = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "euc-jp": "euc_jis_2004",
    "euc_jp": "euc_jis_2004",
    "eucjp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
}

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# C1 controls and the private-use area: one regex search instead of a Python loop per character.
_IMPOSSIBLE_CHARACTERS = re.compile("[\x80-\x9f\ue000-\uf8ff]")
META_FIRST_WINDOW = 4 * 1024
META_LAST_WINDOW = 64 * 1024


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Bytes → (text, encoding name used); never raises for bad bytes.

    Example: ``decode_html("髙".encode("cp932"), "text/html; charset=Shift_JIS")``
    returns ``("髙", "cp932")``.
    """
    for declared in _declared_encodings(body, content_type):
        text = _strict_decode(body, declared)
        if text is not None:
            return text.removeprefix("\ufeff"), _report_name(declared)
    doubtful: tuple[str, str] | None = None
    for candidate in CANDIDATES:
        text = _strict_decode(body, candidate)
        if text is None or _has_impossible_characters(text):
            continue
        if not _mostly_halfwidth_kana(text):
            return text, candidate
        doubtful = doubtful or (text, candidate)
    if doubtful is not None:
        return doubtful
    return body.decode("utf-8", errors="replace"), "utf-8"


def header_charset(content_type: str | None) -> str | None:
    """The charset named in a Content-Type header value, as written there (or None)."""
    if not content_type:
        return None
    match = HEADER_CHARSET.search(content_type)
    return match.group(1) if match else None


def meta_charset(body: bytes) -> str | None:
    """The charset a ``<meta>`` tag declares in the first 4 KB (or, failing that, 64 KB)."""
    for window in (META_FIRST_WINDOW, META_LAST_WINDOW):
        match = META_CHARSET.search(body[:window])
        if match:
            return match.group(1).decode("ascii")
    return None


def normalise_encoding(name: str) -> str | None:
    """A Python codec name for a declared charset, widened per ALIASES; None if unknown."""
    lowered = name.strip().lower()
    lowered = ALIASES.get(lowered, lowered)
    try:
        return codecs.lookup(lowered).name
    except LookupError:
        return None


def _declared_encodings(body: bytes, content_type: str | None) -> list[str]:
    """Header charset, then BOM, then meta: each usable declaration once, in precedence order."""
    found: list[str] = []
    from_header = header_charset(content_type)
    if from_header:
        found.append(normalise_encoding(from_header) or "")
    for bom, encoding in BOMS:
        if body.startswith(bom):
            found.append(encoding)
            break
    from_meta = meta_charset(body)
    if from_meta:
        found.append(normalise_encoding(from_meta) or "")
    return [name for index, name in enumerate(found) if name and name not in found[:index]]


def _strict_decode(body: bytes, encoding: str) -> str | None:
    """The text if `encoding` decodes every byte and yields no U+FFFD; else None."""
    try:
        text = body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return None if "\ufffd" in text else text


def _has_impossible_characters(text: str) -> bool:
    """True for C1 controls or private-use characters: what a wrong codec makes of stray bytes.

    cp932 in particular maps 0x80 and 0xFD-0xFF, and its user-defined area, to these.
    """
    return _IMPOSSIBLE_CHARACTERS.search(text) is not None


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_HALFWIDTH_KANA = re.compile(r"[\uff61-\uff9f]")


def _mostly_halfwidth_kana(text: str) -> bool:
    """True when half-width katakana dominate the non-ASCII text.

    EUC-JP and GBK bytes often decode "successfully" as cp932, mostly into half-width katakana,
    which real pages use sparingly. Such a decode is kept only if no other candidate works.
    """
    non_ascii = len(_NON_ASCII.findall(text))
    if not non_ascii:
        return False
    return len(_HALFWIDTH_KANA.findall(text)) / non_ascii > 0.3


def _report_name(encoding: str) -> str:
    """The name reported to callers: the BOM-stripping codec is plain utf-8 to them."""
    return "utf-8" if encoding == "utf-8-sig" else encoding
