"""The extractor end to end: HTML or text in, claims with their evidence and attributes out."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.extract import Extractor, load_extractor, normalise_sentence
from monitor.extract.cli import evaluate_command
from monitor.extract.evaluate import (
    DEV,
    HELD_OUT,
    evaluate,
    evaluate_splits,
    read_corpus,
    split_of,
)
from monitor.extract.fold import fold
from monitor.extract.html import decode_body
from monitor.extract.text import split_sentences

LABELLED = Path(__file__).parent / "labelled"
DEMO_SITES = Path(__file__).parents[1] / "monitor" / "demo_sites"

PAGE = """<!doctype html><html lang="en"><head><title>Aurora</title>
<script>var ad = "Our therapy cures ALS in 90% of patients";</script>
<style>.x:after{content:"FDA registered"}</style></head><body>
<header class="site-header"><p>FDA-registered laboratory in Cancún</p></header>
<nav><ul><li>Stem cells reverse Parkinson's disease</li></ul></nav>
<div class="cookie-banner">We use cookies so our treatments work better for you.</div>
<main><article>
<h1>Stem cell therapy for ALS</h1>
<p>Symptoms improved in 60% of our ALS patients. There is no cure for ALS.</p>
<p>Stem cells may help slow the progression of Parkinson's disease.</p>
<p>A single infusion of umbilical-cord stem cells costs $14,500.</p>
<form><label>Email</label><input name="e"><p>Our cells heal damaged knees.</p></form>
</article></main>
<aside id="sidebar"><p>Our protocol is approved by an independent IRB.</p></aside>
<footer><p>Copyright 2026 Aurora Clinic.</p></footer>
</body></html>"""


@pytest.fixture(scope="module")
def claims():
    return load_extractor().extract_html(PAGE)


def by_text(claims, fragment):
    return [c for c in claims if fragment in c.text]


def test_main_text_claims_with_attributes(claims) -> None:
    (rate,) = by_text(claims, "60%")
    assert rate.category == "efficacy_promise"
    assert rate.conditions == ("ALS",)
    assert {"kind": "percent", "value": 60.0, "text": "60%"} in rate.figures
    assert rate.text[rate.trigger_start : rate.trigger_end] == rate.trigger
    assert rate.rule_id.startswith("en.efficacy.")
    assert rate.location == "main" and not rate.chrome
    assert rate.lang == "en" and rate.rules_version == load_extractor().version
    assert rate.key == normalise_sentence(rate.text)


def test_negated_sentence_is_not_a_claim(claims) -> None:
    assert by_text(claims, "no cure") == []


def test_hedged_claim_is_kept_and_marked(claims) -> None:
    (hedged,) = by_text(claims, "may help")
    assert hedged.hedged and hedged.category == "efficacy_promise"
    assert hedged.conditions == ("Parkinson's disease",)


def test_price_has_amount_and_currency(claims) -> None:
    (price,) = [c for c in by_text(claims, "$14,500") if c.category == "price"]
    assert {
        "kind": "price",
        "amount": 14500.0,
        "currency": "USD",
        "text": "$14,500",
    } in price.figures
    assert "umbilical-cord stem cells" in price.interventions


def test_chrome_is_extracted_but_marked(claims) -> None:
    (header,) = by_text(claims, "FDA-registered")
    assert header.chrome and header.location == "header"
    assert header.attributes["authorities"] == ["FDA"]
    (sidebar,) = by_text(claims, "IRB")
    assert sidebar.chrome and sidebar.location == "aside"


def test_scripts_nav_forms_and_cookie_banners_are_skipped(claims) -> None:
    texts = " ".join(c.text for c in claims)
    for hidden in ("90%", "Parkinson's disease\n", "reverse Parkinson", "cookies", "heal damaged"):
        assert hidden not in texts


CLAIM = "<p>Symptoms improved in 60% of our ALS patients after stem cell therapy.</p>"


@pytest.mark.parametrize(
    "body",
    [
        # WordPress's cookie plugin and themes flag the page's state on <body>.
        f'<body class="single-post cookies-not-set better-responsive-menu">{CLAIM}</body>',
        f'<body class="has-navbar"><main>{CLAIM}</main></body>',
        # A layout wrapper named after the sidebar or a menu that holds the main content.
        f'<body><div class="content-sidebar-wrap"><main>{CLAIM}</main></div></body>',
        f'<body><div id="menu-push-wrap"><article>{CLAIM}</article></div></body>',
        f'<body><div class="layout has-sidebar">{CLAIM}</div></body>',
    ],
)
def test_page_state_and_wrapper_names_hide_no_content(body: str) -> None:
    (claim,) = load_extractor().extract_html(f"<html>{body}</html>")
    assert claim.location == "main" and not claim.chrome


def test_a_named_component_without_content_is_still_chrome_or_skipped() -> None:
    html = (
        f'<html><body><div class="site-header">{CLAIM}</div>'
        f'<div class="cookie-bar">{CLAIM.replace("60%", "70%")}</div></body></html>'
    )
    (claim,) = load_extractor().extract_html(html)
    assert claim.chrome and claim.location == "header" and "60%" in claim.text


def test_shift_jis_bytes_are_decoded() -> None:
    html = (
        '<html lang="ja"><head><meta charset="Shift_JIS"></head><body>'
        "<p>当院の治療は厚生労働省に届出・受理されています（計画番号：PB3150021）。</p>"
        "<p>治療後、多くの患者様で症状の改善が見られました。</p></body></html>"
    ).encode("shift_jis")
    # The rules alone: this is about decoding, and the rules' verdicts are exact.
    claims = Extractor(use_model=False).extract_html(html, content_type="text/html")
    categories = {c.category for c in claims}
    assert categories == {"registry_endorsement", "efficacy_promise"}
    registry = next(c for c in claims if c.category == "registry_endorsement")
    assert registry.lang == "ja"
    assert registry.attributes["plan_numbers"] == ["PB3150021"]
    assert "MHLW" in registry.attributes["authorities"]


def test_language_is_detected_per_block() -> None:
    html = """<html lang="ja"><body><p>幹細胞が傷ついた軟骨を再生させます。</p>
    <p>干细胞治疗能有效改善动脉硬化。</p><p>Stem cells repair damaged cartilage.</p></body></html>"""
    langs = {c.lang for c in load_extractor().extract_html(html)}
    assert langs == {"ja", "zh", "en"}


@pytest.mark.parametrize(
    "text",
    [
        "The ministry warns about clinics that claim stem cells cure ALS.",
        "Critics say the clinic's 80% improvement figures are misleading.",
        "Under the law, every clinic must submit a regenerative medicine plan to the MHLW.",
        "Results may vary; we cannot guarantee that symptoms will improve.",
        "厚生労働省は、効果が確認されていない治療に注意を呼びかけている。",
        "据报道，该诊所声称干细胞可以治愈自闭症。",
    ],
)
def test_other_voices_are_not_claims(text: str) -> None:
    assert load_extractor().extract_text(text) == []


def test_one_claim_per_sentence_and_category_on_a_page() -> None:
    html = "<p>Stem cells repair damaged cartilage.</p>" * 3
    assert len(load_extractor().extract_html(html)) == 1


def test_normalise_sentence_folds_renderings() -> None:
    a = normalise_sentence("Symptoms improved in ６０％ of patients!")
    b = normalise_sentence("  symptoms   improved in 60% of patients")
    assert a == b == "symptoms improved in 60% of patients"


def test_broken_html_and_bad_bytes_do_not_crash() -> None:
    extractor = load_extractor()
    assert extractor.extract_html(b"\xff\xfe\x00<p>\x81\x82 unclosed <b><i>") == []
    assert extractor.extract_html("") == []
    assert extractor.extract_html("<<<>>>&&&;") == []


def test_a_5_mb_page_finishes() -> None:
    paragraph = "<p>" + "Our regenerative clinic helps patients. " * 40 + "</p>\n"
    html = "<html><body>" + paragraph * (5_000_000 // len(paragraph)) + "</body></html>"
    claims = load_extractor().extract_html(html)
    assert len(html) >= 4_900_000
    assert len(claims) <= 2


ADVERSARIAL = st.one_of(
    st.text(max_size=3000),
    st.text(alphabet="aa%$0123456789 .,!?。、治改善厚生労働省届出<>/p\"'=", max_size=3000),
    st.builds(lambda n: "a" * n + "!" * n + " " * n, st.integers(0, 5000)),
    st.builds(lambda n: "cure " * n + "no " * n, st.integers(0, 2000)),
    st.builds(lambda n: "<div>" * n + "improved 60%" + "</div>" * n, st.integers(0, 400)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ADVERSARIAL)
def test_any_text_or_html_gives_well_formed_claims(text: str) -> None:
    extractor = load_extractor()
    for claims in (extractor.extract_html(text), extractor.extract_text(text)):
        for claim in claims:
            assert claim.text[claim.trigger_start : claim.trigger_end] == claim.trigger
            assert claim.lang in ("en", "ja", "zh")
            assert 0 < claim.confidence <= 1


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    rows = [
        {
            "text": "Symptoms improved in 60% of our ALS patients.",
            "lang": "en",
            "labels": ["efficacy_promise"],
        },
        {"text": "There is no cure for ALS.", "lang": "en", "labels": []},
        {
            "text": "Our laboratory is FDA registered.",
            "lang": "en",
            "labels": ["registry_endorsement"],
        },
        {"text": "We are open on Sundays.", "lang": "en", "labels": ["price"]},
    ]
    (tmp_path / "en.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return tmp_path


def test_evaluate_counts_per_category(tiny_corpus: Path) -> None:
    report = evaluate(tiny_corpus)
    assert report.items == 4
    assert report.score("en", "efficacy_promise").recall == 1.0
    assert report.score("all", "price").recall == 0.0
    assert report.score().tp == 2 and report.score().fn == 1 and report.score().fp == 0


def test_evaluate_command_prints_table_and_json(tiny_corpus: Path) -> None:
    table = CliRunner().invoke(evaluate_command, ["--corpus", str(tiny_corpus)])
    assert table.exit_code == 0, table.output
    assert "efficacy_promise" in table.output and "precision" in table.output
    result = CliRunner().invoke(
        evaluate_command, ["--corpus", str(tiny_corpus), "--format", "json"]
    )
    data = json.loads(result.output)
    overall = next(s for s in data["scores"] if s["lang"] == "all" and s["category"] == "all")
    assert overall["support"] == 3 and overall["tp"] == 2


def test_the_table_counts_false_claims_on_a_set_of_negatives(tmp_path: Path) -> None:
    # Two negatives; the first is an efficacy promise in the words of a clinic, the second none.
    rows = [
        {"text": "Our stem cell therapy cures arthritis in most patients.", "lang": "en"},
        {"text": "The clinic is closed on public holidays.", "lang": "en"},
    ]
    lines = [json.dumps({**row, "labels": []}) for row in rows]
    (tmp_path / "en.jsonl").write_text("\n".join(lines), encoding="utf-8")
    table = CliRunner().invoke(evaluate_command, ["--corpus", str(tmp_path), "--split", "all"])
    assert table.exit_code == 0, table.output
    header = next(line for line in table.output.splitlines() if line.startswith("lang"))
    assert header.split()[-1] == "false"
    overall = next(line for line in table.output.splitlines() if line.startswith("all   all"))
    assert overall.split()[-2:] == ["0", "1"]  # no label to find, one false claim


def test_evaluate_command_reports_a_missing_corpus(tmp_path: Path) -> None:
    result = CliRunner().invoke(evaluate_command, ["--corpus", str(tmp_path)])
    assert result.exit_code == 1
    assert "no labelled corpus" in result.output


def test_split_is_deterministic_and_holds_out_about_thirty_percent() -> None:
    items = read_corpus(LABELLED)
    held_out = [i for i in items if split_of(i) == HELD_OUT]
    assert 0.25 <= len(held_out) / len(items) <= 0.35
    assert [split_of(i) for i in items] == [split_of(dict(i)) for i in items]
    assert split_of({"id": "en-0001", "text": "a"}) == split_of({"id": "en-0001", "text": "b"})


def test_evaluate_splits_partition_the_corpus() -> None:
    reports = evaluate_splits(LABELLED)
    assert reports[DEV].items + reports[HELD_OUT].items == reports["all"].items
    whole, dev, held = (reports[s].score() for s in ("all", DEV, HELD_OUT))
    assert whole.tp == dev.tp + held.tp and whole.fn == dev.fn + held.fn


def test_evaluate_command_reports_each_split(tiny_corpus: Path) -> None:
    result = CliRunner().invoke(evaluate_command, ["--corpus", str(tiny_corpus)])
    assert result.exit_code == 0, result.output
    assert "dev P/R" in result.output and "held-out P/R" in result.output
    data = json.loads(
        CliRunner()
        .invoke(evaluate_command, ["--corpus", str(tiny_corpus), "--format", "json"])
        .output
    )
    assert set(data["splits"]) == {"dev", "held-out", "all"}
    dev = CliRunner().invoke(
        evaluate_command, ["--corpus", str(tiny_corpus), "--split", "dev", "--mistakes"]
    )
    assert dev.exit_code == 0 and "held-out P/R" not in dev.output


@pytest.mark.parametrize(
    "text",
    [
        "If it works on your machine, we will ship your machine.",
        "While some development doesn't need that much longevity, businesses do.",
        '"We are delighted to open our new resort," said the general manager.',
        "Quick, score some headphones for just $144.",
    ],
)
def test_generic_words_need_a_medical_context(text: str) -> None:
    assert load_extractor().extract_text(text, lang_hint="en") == []


def test_a_clinic_page_is_context_enough_for_a_sentence_without_medical_words() -> None:
    quote = '"Best decision I ever made," says Tom from Arizona.'
    clinic = (
        "<p>Our clinic offers stem cell therapy for patients with arthritis and other diseases.</p>"
        f"<p>{quote}</p>"
    )
    blog = f"<p>We moved our build to a faster server this spring.</p><p>{quote}</p>"
    extractor = Extractor(use_model=False)  # the gate of the rules is what is tested
    assert {c.category for c in extractor.extract_html(clinic)} == {"testimonial"}
    assert extractor.extract_html(blog) == []


def test_a_named_condition_is_medical_context() -> None:
    claims = load_extractor().extract_text(
        "ALSの進行を緩やかにすることが期待されています。", lang_hint="ja"
    )
    (claim,) = claims
    assert claim.category == "efficacy_promise" and claim.hedged
    assert claim.conditions == ("ALS",)


def test_a_news_block_gives_no_claims_even_from_neutral_sentences() -> None:
    news = (
        "<p>Regulators warned that the clinic advertised unproven cures. "
        "Reporters found that patients paid thousands. "
        "Stem cells repair damaged cartilage in the knee.</p>"
    )
    clinic = "<p>Stem cells repair damaged cartilage in the knee.</p>"
    extractor = load_extractor()
    assert extractor.extract_html(news) == []
    assert [c.category for c in extractor.extract_html(clinic)] == ["efficacy_promise"]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (
            '"I can walk again." — Rob, Alberta. Next.',
            "en",
            ['"I can walk again." — Rob, Alberta.', "Next."],
        ),
        (
            "「楽になりました。」（60代女性）次です。",
            "ja",
            ["「楽になりました。」（60代女性）", "次です。"],
        ),
        ("The fee is B/. 18,500 per treatment.", "en", ["The fee is B/. 18,500 per treatment."]),
    ],
)
def test_quote_attributions_stay_with_their_quote(
    text: str, lang: str, expected: list[str]
) -> None:
    assert [text[a:b] for a, b in split_sentences(text, lang)] == expected


def test_attributed_quotes_are_testimonials_and_outcomes_efficacy() -> None:
    text = "「脊髄損傷で諦めていた足の感覚が、少しずつ戻ってきました。」（30代男性）"
    claims = load_extractor().extract_text(text, lang_hint="ja")
    assert {c.category for c in claims} == {"testimonial", "efficacy_promise"}
    assert all(c.text == text for c in claims)


def test_registry_identifiers_are_attributes() -> None:
    text = (
        "Our trial is registered on ClinicalTrials.gov (NCT01234567) and approved by an IRB; "
        "plan number PC4170123."
    )
    (claim,) = load_extractor().extract_text(text, lang_hint="en")
    assert claim.category == "registry_endorsement"
    assert claim.attributes["nct_ids"] == ["NCT01234567"]
    assert claim.attributes["plan_numbers"] == ["PC4170123"]
    assert {"ClinicalTrials.gov", "IRB / ethics committee"} <= set(claim.attributes["authorities"])


WEBPAGES = Path("/work/shared/corpus/webpages")


@pytest.mark.skipif(not WEBPAGES.is_dir(), reason="needs the shared corpus of real web pages")
def test_real_non_clinic_pages_give_almost_no_claims() -> None:
    """News, shops, blogs and Wikipedia: at most 3 claims over the sample (12 before issue 3)."""
    extractor = load_extractor()
    claims = [
        claim
        for page in sorted(WEBPAGES.glob("*.html"))
        for claim in extractor.extract_html(page.read_bytes())
    ]
    assert len(claims) <= 3, [(c.category, c.text[:60]) for c in claims]


# --- Verbatim claim text: what the page says, not its normalised form ---------------------------

FOLDED = [
    ("１,６５０円（税込）", "1,650円(税込)", "(税込)", "（税込）"),
    ("㈱さくら", "(株)さくら", "株", "㈱"),
    ("①治療", "1治療", "1", "①"),
    ("ｱﾝﾁｴｲｼﾞﾝｸﾞ", "アンチエイジング", "ジング", "ｼﾞﾝｸﾞ"),
    ("FDA-certiﬁed", "fda-certified", "fied", "ﬁed"),
    ("Straße Clinic", "strasse clinic", "sse", "ße"),
    ("İstanbul", "i̇stanbul", "stan", "stan"),
    ("cafe\u0301 cure", "café cure", "é", "e\u0301"),
]


@pytest.mark.parametrize(("text", "folded", "part", "original"), FOLDED)
def test_fold_maps_every_folded_span_back_to_the_original(
    text: str, folded: str, part: str, original: str
) -> None:
    result = fold(text)
    assert result.text == folded == unicodedata.normalize("NFKC", text).casefold()
    start = folded.index(part)
    first, last = result.original_span(start, start + len(part))
    assert text[first:last] == original


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="aZ 9.,ßİﬁ①㈱（）！１ｶｷﾞﾟﾊ\u0301\u3099あ漢%", max_size=40))
def test_fold_equals_whole_text_normalisation_and_spans_stay_in_bounds(text: str) -> None:
    result = fold(text)
    assert result.text == unicodedata.normalize("NFKC", text).casefold()
    for start in range(len(result.text) + 1):
        first, last = result.original_span(start, len(result.text))
        assert 0 <= first <= last == (len(text) if start < len(result.text) else first)


@pytest.mark.parametrize(
    ("text", "lang", "category"),
    [
        ("幹細胞点滴療法は1回1,650,000円（税込）です。", "ja", "price"),
        ("幹細胞点滴療法は１回１，６５０，０００円（税込）です。", "ja", "price"),
        ("㈱さくら再生医療の治療は厚生労働省に届出・受理されています。", "ja", None),
        ("① 治療後、多くの患者様で症状の改善が見られました。", "ja", None),
        ("ｱﾝﾁｴｲｼﾞﾝｸﾞ治療で肌が若返ります。", "ja", None),
        ("Our laboratory is FDA-certiﬁed and FDA registered.", "en", None),
        ("Our ﬁrst patients at Straße: symptoms improved in 60% of our ALS patients.", "en", None),
        ("İstanbul: symptoms improved in 60% of our ALS patients.", "en", None),
        ("Symptoms improved in ６０％ of our ALS patients.", "en", None),
    ],
)
def test_claim_text_is_verbatim_and_finds_what_the_normalised_text_finds(
    text: str, lang: str, category: str | None
) -> None:
    extractor = load_extractor()
    claims = extractor.extract_text(text, lang_hint=lang)
    normalised = extractor.extract_text(unicodedata.normalize("NFKC", text), lang_hint=lang)
    assert claims and [c.category for c in claims] == [c.category for c in normalised]
    if category:
        assert category in {c.category for c in claims}
    for claim, plain in zip(claims, normalised, strict=True):
        assert claim.text == text
        assert claim.text[claim.trigger_start : claim.trigger_end] == claim.trigger
        assert unicodedata.normalize("NFKC", claim.trigger).casefold() == plain.trigger.casefold()
        assert claim.key == normalise_sentence(text) == plain.key
        assert claim.figures == plain.figures and claim.conditions == plain.conditions


def test_full_width_price_keeps_its_figure() -> None:
    (claim,) = load_extractor().extract_text(
        "幹細胞点滴療法は１回１，６５０，０００円（税込）です。"
    )
    assert claim.trigger == "１，６５０，０００円"
    assert claim.figures[0]["amount"] == 1_650_000.0 and claim.figures[0]["currency"] == "JPY"


def _collapsed(text: str) -> str:
    return " ".join(text.split())


def _page_text(html: bytes) -> str:
    """Every text node of a page, in order (what a sentence of one of its blocks is part of)."""
    root = lxml.html.fromstring(decode_body(html))
    return _collapsed("".join(root.itertext()))


def _verbatim_sources() -> list[tuple[str, str, list]]:
    extractor = load_extractor()
    sources = []
    for path in sorted(LABELLED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            claims = extractor.extract_text(item["text"], lang_hint=item.get("lang"))
            sources.append((item["id"], _collapsed(item["text"]), claims))
    for path in sorted(DEMO_SITES.rglob("*.html")):
        html = path.read_bytes()
        sources.append((str(path), _page_text(html), extractor.extract_html(html)))
    return sources


def test_every_claim_of_corpus_and_demo_sites_is_verbatim_with_its_trigger() -> None:
    checked = changed_by_nfkc = 0
    for source, text, claims in _verbatim_sources():
        for claim in claims:
            assert _collapsed(claim.text) == claim.text, (source, claim.text)
            assert claim.text in text, (source, claim.text)
            assert claim.text[claim.trigger_start : claim.trigger_end] == claim.trigger, source
            assert claim.key == normalise_sentence(claim.text)
            checked += 1
            changed_by_nfkc += unicodedata.normalize("NFKC", claim.text) != claim.text
    assert checked > 500
    assert changed_by_nfkc > 20  # the corpus does exercise full-width text


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("Stem cells repaired my knee.", None, "en"),
        ("Stem cells repaired my knee.", "de", None),  # a short line on a German page
        ("Die Behandlung ist nicht teuer und wird mit Stammzellen gemacht.", None, None),
        ("Le traitement est pour les patients avec une arthrose.", None, None),
        ("ALS patients die without treatment.", None, "en"),  # "als", "die" are English too
        (
            "Our clinic in Munich treats patients from all over the world, and we answer "
            "every question you have about the treatment in English.",
            "de",
            "en",  # a long, plainly English block on a German site is read
        ),
        ("当院は厚生労働省に届け出ています。", "de", "ja"),
    ],
)
def test_other_latin_languages_are_not_read_as_english(
    text: str, hint: str | None, expected: str | None
) -> None:
    from monitor.extract.text import detect_language

    assert detect_language(text, hint) == expected


def test_a_german_page_gives_no_claims() -> None:
    html = (
        '<html lang="de"><body><p>Stammzellen heilen Arthrose: 90% Erfolg!</p>'
        "<p>Greta Thunberg will Fridays for Future als Marke schützen lassen</p></body></html>"
    )
    assert load_extractor().extract_html(html) == []
