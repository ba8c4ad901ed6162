"""decode_html on real Japanese bytes: Shift_JIS, CP932 with NEC/IBM characters, EUC-JP, UTF-8."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.encoding import decode_html, header_charset, meta_charset

# ① ㈱ are NEC special characters, 髙 an IBM extension: plain shift_jis cannot encode them.
CLAIM = "当院の幹細胞治療は厚生労働省に届出・受理されています。①副作用はほとんどありません。㈱髙橋"
EUC_CLAIM = CLAIM.replace("㈱髙橋", "㈱高橋")  # 髙 does not exist in EUC-JP


def page(text: str, head: str = "") -> str:
    return f"<html><head>{head}<title>再生医療</title></head><body><p>{text}</p></body></html>"


@pytest.mark.parametrize(
    ("body", "content_type", "expected_encoding"),
    [
        # Declared in meta, with the names servers really use.
        (page(CLAIM, '<meta charset="Shift_JIS">').encode("cp932"), None, "cp932"),
        (
            page(
                CLAIM, '<meta http-equiv="Content-Type" content="text/html; charset=x-sjis">'
            ).encode("cp932"),
            "text/html",
            "cp932",
        ),
        (page(EUC_CLAIM, '<meta charset="EUC-JP">').encode("euc_jis_2004"), None, "euc_jis_2004"),
        (page(CLAIM, '<meta charset="utf-8">').encode("utf-8"), None, "utf-8"),
        # Declared in the header only.
        (page(CLAIM).encode("cp932"), "text/html; charset=Shift_JIS", "cp932"),
        (page(CLAIM).encode("cp932"), "text/html; charset=windows-31j", "cp932"),
        (page(EUC_CLAIM).encode("euc_jis_2004"), "text/html; charset=euc-jp", "euc_jis_2004"),
        (page(CLAIM).encode("utf-8"), 'text/html; charset="UTF-8"', "utf-8"),
        # Not declared at all.
        (page(CLAIM).encode("cp932"), "text/html", "cp932"),
        (page(EUC_CLAIM).encode("euc_jis_2004"), None, "euc_jis_2004"),
        (page(CLAIM).encode("utf-8"), None, "utf-8"),
        # Declared wrongly: the declaration fails a strict decode and is ignored.
        (page(CLAIM).encode("cp932"), "text/html; charset=utf-8", "cp932"),
        (page(CLAIM, '<meta charset="utf-8">').encode("cp932"), None, "cp932"),
        (
            page(EUC_CLAIM, '<meta charset="shift_jis">').encode("euc_jis_2004"),
            None,
            "euc_jis_2004",
        ),
        # An unknown label is no declaration.
        (page(CLAIM).encode("cp932"), "text/html; charset=x-klingon", "cp932"),
    ],
)
def test_japanese_pages_decode_to_the_original_text(body, content_type, expected_encoding):
    text, encoding = decode_html(body, content_type)
    assert encoding == expected_encoding
    assert (EUC_CLAIM if "euc" in encoding else CLAIM) in text


def test_nec_and_ibm_characters_survive_a_shift_jis_declaration():
    text, _ = decode_html("①②㈱髙".encode("cp932"), "text/html; charset=shift_jis")
    assert text == "①②㈱髙"  # not 郄, not U+FFFD


def test_nec_row_13_survives_an_euc_jp_declaration():
    text, _ = decode_html("①㈱".encode("euc_jis_2004"), "text/html; charset=EUC-JP")
    assert text == "①㈱"


def test_header_charset_beats_meta_when_both_decode():
    body = page(EUC_CLAIM, '<meta charset="shift_jis">').encode("euc_jis_2004")
    text, encoding = decode_html(body, "text/html; charset=EUC-JP")
    assert (encoding, EUC_CLAIM in text) == ("euc_jis_2004", True)


def test_header_charset_wins_even_when_it_is_the_wrong_one():
    # Latin-1 (read as windows-1252) decodes these bytes without error, so the header wins.
    body = '<html><head><meta charset="utf-8"></head><body>café</body></html>'.encode()
    text, encoding = decode_html(body, "text/html; charset=iso-8859-1")
    assert encoding == "cp1252" and "cafÃ©" in text


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")],
)
def test_byte_order_mark_is_used_and_removed(bom, codec):
    text, encoding = decode_html(bom + page(CLAIM).encode(codec))
    assert encoding.startswith("utf-")
    assert text.startswith("<html>") and CLAIM in text


def test_meta_after_the_first_4_kb_is_still_found():
    padding = "<!-- " + "x" * 5000 + " -->"
    body = page(CLAIM, padding + '<meta charset="shift_jis">').encode("cp932")
    assert meta_charset(body) == "shift_jis"
    assert decode_html(body)[1] == "cp932"


def test_undecodable_bytes_fall_back_to_replacement_characters():
    text, encoding = decode_html(b"<p>\xff\xfe\x80 broken \xc3</p>")
    assert encoding == "utf-8"
    assert text.startswith("<p>") and "broken" in text and "\ufffd" in text


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html; charset=Shift_JIS", "Shift_JIS"),
        ('text/html;charset="utf-8"', "utf-8"),
        ("text/html", None),
        (None, None),
    ],
)
def test_header_charset(content_type, expected):
    assert header_charset(content_type) == expected


@given(st.binary(max_size=300), st.one_of(st.none(), st.text(max_size=40)))
def test_decode_html_never_raises(body, content_type):
    text, encoding = decode_html(body, content_type)
    assert isinstance(text, str) and encoding
