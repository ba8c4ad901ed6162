"""The model stage of the extractor (config/rules/model.yaml): the trained model adds categories
the rules missed, only in the publisher's voice and a medical sentence, and is part of the rules
version. A tiny model trained here on an invented word makes the stage's effect unmistakable."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.config import ConfigError
from monitor.extract.extractor import Extractor
from monitor.extract.rules import DEFAULT_RULES_DIR
from monitor.extract.train import main as train_command

# "zorblax" is no word any rule knows: only the model can tie it to efficacy.
POSITIVES = [
    "Our patients feel zorblax after one treatment.",
    "Most patients report zorblax within a week of the infusion.",
    "Patients describe a deep zorblax after stem cell therapy.",
    "After the injection our patients feel zorblax in the knee.",
]
NEGATIVES = [
    "Our patients park at the back of the building.",
    "Patients should bring their passport to the first visit.",
    "The treatment room is on the second floor.",
    "Patients can book a visit by phone or e-mail.",
]
UNSEEN = "Many patients notice zorblax after the stem cell treatment."


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    lines = [
        {"id": f"t-{n}", "text": text, "lang": "en", "labels": labels}
        for n, (text, labels) in enumerate(
            [(t, ["efficacy_promise"]) for t in POSITIVES * 3] + [(t, []) for t in NEGATIVES * 3]
        )
    ]
    (folder / "en.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = folder / "tiny.npz"
    result = CliRunner().invoke(train_command, ["--corpus", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def rules_with(tmp_path: Path, tiny_model: Path):
    """A copy of config/rules whose model.yaml uses the tiny model, with extra settings."""

    def make(**settings: object) -> Path:
        rules = Path(shutil.copytree(DEFAULT_RULES_DIR, tmp_path / "rules", dirs_exist_ok=True))
        shutil.copy(tiny_model, rules / "tiny.npz")
        settings = {"categories": ["efficacy_promise"], **settings}
        lines = ["enabled: true", "file: tiny.npz"]
        lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
        (rules / "model.yaml").write_text("\n".join(lines) + "\n")
        return rules

    return make


def test_the_model_adds_a_claim_the_rules_miss(rules_with) -> None:
    rules = rules_with()
    assert Extractor(rules, use_model=False).extract_text(UNSEEN, lang_hint="en") == []
    [claim] = Extractor(rules).extract_text(UNSEEN, lang_hint="en")
    assert claim.category == "efficacy_promise"
    assert claim.rule_id == "en.model.efficacy_promise"
    # The model judges the sentence as a whole: the whole sentence is the trigger.
    assert (claim.trigger_start, claim.trigger_end) == (0, len(UNSEEN))
    assert 0 < claim.confidence <= 1


def test_switched_off_the_model_adds_nothing(rules_with) -> None:
    rules = rules_with(enabled=False)
    assert Extractor(rules).extract_text(UNSEEN, lang_hint="en") == []


def test_a_sentence_in_another_voice_gets_no_model_claim(rules_with) -> None:
    quoted = "Critics say patients notice zorblax after the stem cell treatment."
    assert Extractor(rules_with()).extract_text(quoted, lang_hint="en") == []


def test_the_model_reads_only_sentences_naming_a_medical_term(rules_with) -> None:
    bare = "Most people feel zorblax after one visit, and it lasts."
    assert Extractor(rules_with()).extract_text(bare, lang_hint="en") == []


def test_with_page_context_a_medical_page_is_enough(rules_with) -> None:
    page = (
        "<html><body><p>Our clinic offers stem cell treatment, PRP injections and infusion "
        "therapy to patients with arthritis.</p>"
        "<p>Most people feel zorblax after one visit, and it lasts.</p></body></html>"
    )
    sentence = "Most people feel zorblax after one visit, and it lasts."
    texts = [c.text for c in Extractor(rules_with()).extract_html(page)]
    assert sentence not in texts
    texts = [c.text for c in Extractor(rules_with(context="page")).extract_html(page)]
    assert sentence in texts


def test_with_any_context_every_checked_sentence_is_read(rules_with) -> None:
    bare = "Most people feel zorblax after one visit, and it lasts."
    [claim] = Extractor(rules_with(context="any")).extract_text(bare, lang_hint="en")
    assert claim.rule_id == "en.model.efficacy_promise"


def test_short_headings_are_left_to_the_rules(rules_with) -> None:
    assert Extractor(rules_with(min_words=12)).extract_text(UNSEEN, lang_hint="en") == []
    assert Extractor(rules_with(min_words=8)).extract_text(UNSEEN, lang_hint="en") != []


def test_min_probability_raises_the_bar(rules_with) -> None:
    assert Extractor(rules_with(min_probability=0.999)).extract_text(UNSEEN, lang_hint="en") == []


def test_the_model_vetoes_a_rule_claim_it_gives_almost_no_chance(rules_with) -> None:
    sentence = "Stem cells cured my knee arthritis after years of pain."
    [claim] = Extractor(rules_with()).extract_text(sentence, lang_hint="en")
    assert claim.rule_id == "en.efficacy.cure"
    assert Extractor(rules_with(veto=0.999)).extract_text(sentence, lang_hint="en") == []
    # A sentence the model does not read keeps the rules' claims, and so does a category the
    # stage is not set up for.
    for kept in (
        rules_with(veto=0.999, min_words=20),
        rules_with(veto=0.999, categories=["price"]),
    ):
        [same] = Extractor(kept).extract_text(sentence, lang_hint="en")
        assert (same.rule_id, same.trigger) == (claim.rule_id, claim.trigger)


def test_the_model_file_is_part_of_the_rules_version(rules_with, tmp_path: Path) -> None:
    rules = rules_with()
    before = Extractor(rules).version
    shutil.copy(
        DEFAULT_RULES_DIR.parent.parent / "monitor/extract/model_data/claim_model.npz",
        rules / "tiny.npz",
    )
    assert Extractor(rules).version != before
    assert Extractor(rules, use_model=False).version == Extractor(rules).version


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"categorys": ["price"]}, "categorys: unknown key"),
        ({"categories": ["pricing"]}, "categories: unknown category 'pricing'"),
        ({"context": "site"}, "context: 'site' is not one of sentence, page, any"),
        ({"veto": 1}, "veto: a number from 0 up to"),
        ({"sentences": "every"}, "sentences: 'every' is not one of checked, all"),
        ({"min_probability": 2}, "min_probability: a number from 0"),
        ({"cut": "loose"}, "cut: 'loose' is not one of precise, balanced, recall"),
        ({"min_words": -1}, "min_words: a whole number"),
        ({"file": "missing.npz"}, "missing.npz: not a claim model"),
    ],
)
def test_a_broken_model_file_names_the_file_and_key(rules_with, settings, message) -> None:
    rules = rules_with(**settings)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        Extractor(rules)
    assert str(rules) in str(info.value)


def test_evaluate_with_and_without_the_model(rules_with, tmp_path: Path) -> None:
    from monitor.extract.cli import evaluate_command

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    item = {"id": "u-1", "text": UNSEEN, "lang": "en", "labels": ["efficacy_promise"]}
    (corpus / "en.jsonl").write_text(json.dumps(item) + "\n")
    args = ["--corpus", str(corpus), "--rules", str(rules_with()), "--split", "all"]
    args += ["--format", "json"]
    with_model = json.loads(CliRunner().invoke(evaluate_command, args).output)
    rules_only = json.loads(CliRunner().invoke(evaluate_command, [*args, "--rules-only"]).output)
    overall = [s for s in with_model["scores"] if s["lang"] == s["category"] == "all"]
    assert overall[0]["recall"] == 1.0
    overall = [s for s in rules_only["scores"] if s["lang"] == s["category"] == "all"]
    assert overall[0]["recall"] == 0.0


def test_a_second_category_on_a_rule_claim_needs_the_precise_cut(tiny_model: Path) -> None:
    from monitor.extract.learned import ModelStage
    from monitor.extract.model import ClaimModel

    trained = ClaimModel.load(tiny_model)
    never, always = dict.fromkeys(trained.categories, 1.0), dict.fromkeys(trained.categories, 0.0)
    model = ClaimModel(
        trained.categories, trained.weights, trained.bias, never, trained.bits, always
    )
    extractor = Extractor(use_model=False)
    extractor.model = ModelStage(model, frozenset(trained.categories), cut="recall")
    # The rules find nothing here: at the recall cut (0) the model adds every category.
    bare = extractor.extract_text(UNSEEN, lang_hint="en")
    assert {c.rule_id.split(".")[1] for c in bare} == {"model"} and len(bare) == 7
    # The rules find an efficacy promise here: the model may add a category only at the precise
    # cut (1.0, never).
    claimed = extractor.extract_text("Stem cells cured my knee arthritis.", lang_hint="en")
    assert [c.rule_id for c in claimed] == ["en.efficacy.cure"]


def test_each_language_is_read_at_its_own_cut(tiny_model: Path) -> None:
    from monitor.extract.learned import ModelStage
    from monitor.extract.model import ClaimModel

    trained = ClaimModel.load(tiny_model)
    never, always = dict.fromkeys(trained.categories, 1.0), dict.fromkeys(trained.categories, 0.0)
    # The cuts for all never let a category through; English has cuts of its own that always do.
    model = ClaimModel(
        trained.categories,
        trained.weights,
        trained.bias,
        never,
        trained.bits,
        never,
        {"en": (always, always)},
    )
    extractor = Extractor(use_model=False)
    extractor.model = ModelStage(model, frozenset({"efficacy_promise"}), cut="balanced")
    [claim] = extractor.extract_text(UNSEEN, lang_hint="en")
    assert claim.rule_id == "en.model.efficacy_promise"
    extractor.model = ModelStage(replace(model, language_cuts={}), frozenset({"efficacy_promise"}))
    assert extractor.extract_text(UNSEEN, lang_hint="en") == []


# No anchor word of the rules: only a model that reads every sentence sees this one.
UNANCHORED = "Mothers describe zorblax in their children weeks after the infusion."


def test_with_all_sentences_the_model_reads_sentences_without_anchor_words(rules_with) -> None:
    assert Extractor(rules_with()).extract_text(UNANCHORED, lang_hint="en") == []
    [claim] = Extractor(rules_with(sentences="all")).extract_text(UNANCHORED, lang_hint="en")
    assert claim.rule_id == "en.model.efficacy_promise"
    # The context test still applies: without a medical term the sentence is not read.
    bare = "Mothers describe zorblax in their children weeks after the concert."
    assert Extractor(rules_with(sentences="all")).extract_text(bare, lang_hint="en") == []


def test_evaluate_pages_reads_the_items_of_one_page_together(rules_with, tmp_path: Path) -> None:
    from monitor.extract.cli import evaluate_command

    # Alone, the second item names no medical term; on its page, the first makes the page
    # medical, and with `context: page` the model reads it.
    url = "https://clinic.example/stories"
    first = "Our clinic offers stem cell treatment, PRP injections and infusions for arthritis."
    second = "Most people feel zorblax after one visit, and it lasts."
    items = [
        {"id": "p-1", "text": first, "lang": "en", "labels": [], "source_url": url},
        {
            "id": "p-2",
            "text": second,
            "lang": "en",
            "labels": ["efficacy_promise"],
            "source_url": url,
        },
    ]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "en.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    args = ["--corpus", str(corpus), "--rules", str(rules_with(context="page"))]
    args += ["--split", "all", "--format", "json"]

    def overall(*extra: str) -> dict:
        result = CliRunner().invoke(evaluate_command, [*args, *extra])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        return next(s for s in data["scores"] if s["lang"] == s["category"] == "all") | {
            "items": data["items"]
        }

    alone, together = overall(), overall("--pages")
    assert (alone["recall"], alone["items"]) == (0.0, 2)
    assert (together["recall"], together["items"]) == (1.0, 2)
    # p-2 is in the held-out part, p-1 in the dev part: only p-2 is counted, p-1 still read.
    args[args.index("all")] = "held-out"
    held_out = overall("--pages")
    assert (held_out["recall"], held_out["items"]) == (1.0, 1)
