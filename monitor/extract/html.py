"""HTML → visible text blocks, each with the page region it stood in.

lxml builds the tree (bs4's tree is about ten times slower on real pages); bs4's `UnicodeDammit`
decodes bytes only when the crawler's `decode_html` is not available. Scripts, styles, forms,
navigation menus and cookie banners are skipped; header, footer and sidebar text is kept but marked
as site chrome, since a claim there is a claim of the whole site.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from crawler.encoding import decode_html
from monitor.extract.text import clean_block

_SKIPPED_TAGS = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "nav",
        "form",
        "select",
        "button",
        "iframe",
        "object",
        "head",
        "textarea",
        "datalist",
        "dialog",
        "canvas",
        "video",
        "audio",
        "map",
    ]
)
_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "td",
        "th",
        "tr",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "caption",
        "blockquote",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "figure",
        "figcaption",
        "pre",
        "address",
        "fieldset",
        "details",
        "summary",
        "hr",
        "br",
        "body",
        "center",
    ]
)
_CHROME_TAGS = {"header": "header", "footer": "footer", "aside": "aside"}
_CHROME_ROLES = {"banner": "header", "contentinfo": "footer", "complementary": "aside"}
_SKIPPED_ROLES = frozenset({"navigation", "menu", "menubar", "search", "dialog"})
# Whole class/id tokens that name site chrome ("site-header", "sidebar", "footer-widgets" …).
# Not layout flags that name a sidebar the page has or lacks ("has-sidebar", "no-sidebar").
_CHROME_NAME = re.compile(
    r"(?:^|[\s_-])(?<!has-)(?<!no-)(?<!with-)(?<!without-)"
    r"(header|masthead|footer|sidebar|banner|widgets?|topbar)(?:$|[\s_-])",
    re.I,
)
_SKIPPED_NAME = re.compile(
    r"cookie|consent|gdpr|(?:^|[\s_-])(nav|navbar|navigation|menu|menubar|breadcrumbs?|"
    r"skip-link|share|social|pagination)(?:$|[\s_-])",
    re.I,
)
_CONTENT_TAGS = frozenset({"article", "main"})
# Their classes describe the page's state ("cookies-not-set", "menu-open"), not a component.
_PAGE_TAGS = frozenset({"html", "body"})
# What the walk needs to know of a tag, in one look-up per element:
# (skipped with its subtree, ends a block, is article/main, chrome region it opens outside those).
_TAG_KINDS: dict[str, tuple[bool, bool, bool, str | None]] = {
    tag: (tag in _SKIPPED_TAGS, tag in _BLOCK_TAGS, tag in _CONTENT_TAGS, _CHROME_TAGS.get(tag))
    for tag in _SKIPPED_TAGS | _BLOCK_TAGS | _CONTENT_TAGS | _CHROME_TAGS.keys()
}
_TAG_KINDS[""] = (True, False, False, None)  # comments, processing instructions, entities
_OTHER_TAG = (False, False, False, None)
# The only attributes `_classify` reads; an element with none of them is classified by its tag.
_READ_ATTRIBUTES = frozenset({"role", "id", "class", "hidden", "aria-hidden"})
# id/class value → `_name` answer, shared by all pages: a site repeats its class names on every
# page. Bounded, since ids such as "post-1234" never repeat.
_NAME_CACHE: dict[str, tuple[bool, str | None]] = {}
_NAME_CACHE_LIMIT = 50_000
_SKIPPED = (True, None, False, False)
# `_TAG_KINDS` answers by the tag object lxml gives (names are already lower case from its HTML
# parser; comments, PIs and entities have a factory function as tag), remembered per object.
_KINDS_SEEN: dict[object, tuple[bool, bool, bool, str | None]] = {}
_KINDS_SEEN_LIMIT = 10_000


def _kind_of(tag: object) -> tuple[bool, bool, bool, str | None]:
    """(skipped with its subtree, ends a block, is article/main, chrome region) of a tag."""
    kind = _KINDS_SEEN.get(tag)
    if kind is None:
        name = tag.lower() if isinstance(tag, str) else ""
        kind = _TAG_KINDS.get(name, _OTHER_TAG)
        if len(_KINDS_SEEN) < _KINDS_SEEN_LIMIT:
            _KINDS_SEEN[tag] = kind
    return kind


@dataclass(frozen=True)
class Block:
    """The visible text of one block-level element."""

    text: str
    location: str = "main"
    chrome: bool = False
    index: int = 0


@dataclass(frozen=True)
class Page:
    """A parsed page: its blocks and the language its markup declares."""

    blocks: list[Block]
    declared_lang: str | None = None


def decode_body(body: bytes, content_type: str | None = None) -> str:
    """Bytes → text with the crawler's decoder (declared charset checked, CJK candidates tried)."""
    return decode_html(body, content_type)[0]


def parse_page_bytes(body: bytes, content_type: str | None = None) -> Page:
    """`parse_page` of the page the crawler's decoder reads from `body`.

    When that decoder read the bytes as UTF-8 without a replacement, a byte-order mark or a NUL,
    the text is exactly `body` decoded, so lxml gets `body` itself and no copy is re-encoded.
    """
    text, encoding = decode_html(body, content_type)
    if (
        encoding == "utf-8"
        and "\ufffd" not in text  # the lossy fallback decode; a strict one never has U+FFFD
        and b"\x00" not in body
        and not body.startswith(codecs.BOM_UTF8)
    ):
        return _parse_utf8(body)
    return parse_page(text)


def parse_page(html: str) -> Page:
    """Parse HTML text into blocks; broken markup is repaired, never fatal."""
    # lxml refuses str input that declares an encoding, and NUL bytes end its input early.
    return _parse_utf8(html.replace("\x00", "").encode("utf-8", errors="replace"))


def _parse_utf8(data: bytes) -> Page:
    parser = etree.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, collect_ids=False
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError):
        root = None
    if root is None:
        return Page([])
    return Page(_BlockCollector().collect(root), _declared_lang(root))


def _declared_lang(root: etree._Element) -> str | None:
    lang = (
        root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    ).lower()
    # Another language ("de", "fr") is kept too: short Latin text on such a page is not English.
    return lang[:2] if lang[:2].isalpha() and lang[:2].isascii() else None


class _BlockCollector:
    """Walks the tree once, gathering text into blocks at block-level boundaries.

    This loop runs for every element of every page, so it reads each element's attributes in
    one call and keeps the per-element work to dictionary and set look-ups.
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.regions: list[str] = ["main"]
        self.name_cache = _NAME_CACHE

    def collect(self, root: etree._Element) -> list[Block]:
        walker = etree.iterwalk(root, events=("start", "end"))
        # Per open element: (skipped, chrome region it opened, is a block, is article/main).
        opened: list[tuple[bool, str | None, bool, bool]] = []
        # Bound once: these run for every element of every page.
        push, pop, add, flush = opened.append, opened.pop, self.parts.append, self._flush
        parts, regions, skip_subtree = self.parts, self.regions, walker.skip_subtree
        kind_of, read_attributes = _kind_of, _READ_ATTRIBUTES
        depth = 0  # article/main elements open around the current one
        for event, element in walker:
            if event == "start":
                skipped_tag, is_block, is_content, chrome = kind_of(element.tag)
                names = None if skipped_tag else element.keys()
                if names and not read_attributes.isdisjoint(names):
                    region, skip = self._classify(element, chrome, depth)
                else:  # most elements (links, images …): only the tag decides
                    region = chrome if chrome and depth == 0 else None
                    skip = skipped_tag
                if skip:
                    push(_SKIPPED)
                    skip_subtree()
                    continue
                push((False, region, is_block, is_content))
                if is_block and parts:
                    flush()
                if region:
                    regions.append(region)
                depth += is_content
                text = element.text  # lxml builds a new string on every read: read once
                if text:
                    add(text)
            else:
                skipped, region, is_block, is_content = pop()
                if not skipped:
                    if is_block and parts:
                        flush()
                    if region:
                        regions.pop()
                    depth -= is_content
                tail = element.tail
                if tail:
                    add(tail)
        flush()
        return self.blocks

    def _classify(
        self, element: etree._Element, tag_region: str | None, content_depth: int
    ) -> tuple[str | None, bool]:
        """(chrome region an element with attributes opens or None, whether to skip it);
        `tag_region` is the region its tag opens (header …), `content_depth` counts the
        article/main elements around it."""
        named = element.attrib
        if named.get("hidden") is not None or named.get("aria-hidden") == "true":
            return None, True
        if element.tag in _PAGE_TAGS:
            return None, False
        role = (named.get("role") or "").lower()
        skipped_name, chrome_name = self._names(named)
        if role in _SKIPPED_ROLES or skipped_name:
            return None, not _encloses_content(element)
        if tag_region and content_depth == 0:
            region = tag_region
        elif role in _CHROME_ROLES:
            region = _CHROME_ROLES[role]
        elif chrome_name and content_depth == 0:
            region = chrome_name
        else:
            return None, False
        return (None if _encloses_content(element) else region), False

    def _names(self, named: Mapping[str, str]) -> tuple[bool, str | None]:
        """(id/class marks navigation or a cookie banner, chrome region the id/class names)."""
        ident, classes = named.get("id"), named.get("class")
        skipped, region = self._name(classes) if classes else (False, None)
        if ident:  # ids are often unique ("post-1234"), so they go through the cache less
            skipped_id, region_id = self._name(ident)
            return skipped_id or skipped, region_id or region
        return skipped, region

    def _name(self, value: str) -> tuple[bool, str | None]:
        """`_names` for one attribute value; cached, since a page repeats the same few class
        names thousands of times. (Neither pattern can match across the id/class boundary, so
        matching each value alone finds what matching "id class" would.)"""
        cached = self.name_cache.get(value)
        if cached is None:
            match = _CHROME_NAME.search(value)
            region = match.group(1).lower() if match else None
            if region in ("sidebar", "widget", "widgets"):
                region = "aside"
            skipped = _SKIPPED_NAME.search(value) is not None
            cached = (skipped, region)
            if len(self.name_cache) < _NAME_CACHE_LIMIT:
                self.name_cache[value] = cached
        return cached

    def _flush(self) -> None:
        if not self.parts:
            return
        raw = "".join(self.parts)
        self.parts.clear()
        if raw.isspace():  # most flushes: the indentation between two tags
            return
        text = clean_block(raw)
        if text:
            region = self.regions[-1]
            self.blocks.append(Block(text, region, region != "main", len(self.blocks)))


def _encloses_content(element: etree._Element) -> bool:
    """Whether `element` is or holds the page's main content (a wrapper named "site-header-wrap"
    or "cookie-consent-set" around `<main>` is no header, no cookie banner)."""
    return next(element.iter("main", "article"), None) is not None
