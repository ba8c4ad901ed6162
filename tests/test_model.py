"""The trained claim model: ships with the package, loads offline, predicts deterministically,
and retrains from a labelled corpus with the documented command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from claims_db.codebook import CATEGORIES
from monitor.config import ConfigError
from monitor.extract.model import CUTS, DEFAULT_MODEL_PATH, ClaimModel, feature_buckets
from monitor.extract.train import main as train_command

CLEAR_SENTENCES = [
    ("Stem cells repair damaged cartilage in 80% of our patients.", "en", "efficacy_promise"),
    (
        "Our laboratory is FDA registered and our protocol is IRB approved.",
        "en",
        "registry_endorsement",
    ),
    ("当院の治療は厚生労働省に届出・受理されています。", "ja", "registry_endorsement"),
    ("治疗费用为人民币8万元。", "zh", "price"),
    ("干细胞治疗可以有效改善帕金森病症状。", "zh", "efficacy_promise"),
]
NOT_CLAIMS = [
    ("The clinic is open Monday to Friday.", "en"),
    ("駐車場は10台分あります。", "ja"),
]


@pytest.fixture(scope="module")
def model() -> ClaimModel:
    return ClaimModel.load()


def test_shipped_model_is_small_and_loads_with_its_thresholds(model):
    assert DEFAULT_MODEL_PATH.stat().st_size < 3 * 1024 * 1024
    assert model.categories == CATEGORIES
    assert set(model.thresholds) == set(CATEGORIES)
    assert all(0 < cut <= 1 for cut in model.thresholds.values())
    precise, balanced, recall = (model.cut(name) for name in ("precise", "balanced", "recall"))
    assert all(recall[c] <= balanced[c] <= precise[c] for c in CATEGORIES)


def test_each_language_has_cuts_of_its_own(model):
    assert set(model.language_cuts) == {"en", "ja", "zh"}
    for lang in model.language_cuts:
        precise, balanced, recall = (model.cut(name, lang) for name in CUTS)
        assert all(recall[c] <= balanced[c] <= precise[c] for c in CATEGORIES)
    # Probabilities run lower in Chinese: its cuts are lower than English ones.
    assert (
        model.cut("balanced", "zh")["efficacy_promise"]
        < model.cut("balanced", "en")["efficacy_promise"]
    )
    # A language without cuts of its own gets the cuts for all.
    assert model.cut("balanced", "ko") == model.cut("balanced")


def test_saving_keeps_the_language_cuts_and_older_files_still_load(model, tmp_path):
    model.save(tmp_path / "copy.npz")
    assert _same_cuts(ClaimModel.load(tmp_path / "copy.npz"), model)
    # A file of format 2 (before cuts per language) loads, with the cuts for all.
    with np.load(DEFAULT_MODEL_PATH) as data:
        arrays = {k: data[k] for k in data.files if not k.startswith(("cut_", "language_"))}
    arrays["format_version"] = np.array(2)
    np.savez_compressed(tmp_path / "old.npz", **arrays)
    old = ClaimModel.load(tmp_path / "old.npz")
    assert old.language_cuts == {} and old.cut("balanced", "zh") == old.cut("balanced")


def _same_cuts(loaded: ClaimModel, original: ClaimModel) -> bool:
    return all(
        loaded.cut(name, lang) == pytest.approx(original.cut(name, lang))
        for lang in ("en", "ja", "zh")
        for name in CUTS
    )


@pytest.mark.parametrize(("sentence", "lang", "category"), CLEAR_SENTENCES)
def test_clear_claims_get_their_category(model, sentence, lang, category):
    probabilities = model.predict(sentence, lang)
    assert max(probabilities, key=probabilities.get) == category
    assert probabilities[category] >= model.cut("recall")[category]


@pytest.mark.parametrize(("sentence", "lang"), NOT_CLAIMS)
def test_logistics_are_no_claim(model, sentence, lang):
    assert model.categories_for(sentence, lang) == set()
    assert max(model.predict(sentence, lang).values()) < 0.2


def test_predictions_repeat_exactly_and_a_page_batch_matches_one_by_one(model):
    sentences = [s for s, lang, _ in CLEAR_SENTENCES if lang == "zh"] + ["", "了"]
    batch = model.probabilities(sentences, "zh")
    single = np.array([list(model.predict(s, "zh").values()) for s in sentences])
    assert np.allclose(batch, single, atol=1e-6)
    assert model.predict(sentences[0], "zh") == model.predict(sentences[0], "zh")


def test_features_ignore_width_case_and_spacing():
    assert np.array_equal(
        np.sort(feature_buckets("ＦＤＡ  Registered ９０％", "en")),
        np.sort(feature_buckets("fda registered 90%", "en")),
    )


def test_hashing_does_not_depend_on_the_python_hash_seed():
    code = (
        "from monitor.extract.model import feature_buckets;"
        "print(feature_buckets('幹細胞 repairs knees', 'en').tolist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == feature_buckets("幹細胞 repairs knees", "en").tolist()


def test_broken_input_gives_probabilities_not_an_exception(model):
    for text in ("", "\ud800 lone surrogate", "\x00" * 50, "x" * 10_000):
        probabilities = model.predict(text, "en")
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert model.probabilities([], "ja").shape == (0, len(CATEGORIES))


def _tiny_corpus(folder: Path) -> Path:
    price = [
        "Treatment costs $9,000.",
        "One infusion is $12,500.",
        "The fee is $7,900 per session.",
    ]
    other = [
        "We are closed on Sundays.",
        "Parking is free for visitors.",
        "Call us to book a visit.",
    ]
    lines = [
        {"id": f"en-{n}", "text": text, "lang": "en", "labels": labels}
        for n, (text, labels) in enumerate(
            [(t, ["price"]) for t in price * 2] + [(t, []) for t in other * 2]
        )
    ]
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "en.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return corpus


def test_retraining_on_a_tiny_corpus_writes_a_model_that_loads(tmp_path):
    out = tmp_path / "model.npz"
    result = CliRunner().invoke(
        train_command, ["--corpus", str(_tiny_corpus(tmp_path)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "trained on 12 items" in result.output
    retrained = ClaimModel.load(out)
    price = retrained.predict("A session costs $8,000.", "en")["price"]
    assert price > retrained.predict("We are closed on Mondays.", "en")["price"]


def test_an_empty_corpus_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(train_command, ["--corpus", str(tmp_path), "--out", "x.npz"])
    assert result.exit_code == 1
    assert "no labelled corpus" in result.output


def test_a_file_that_is_no_model_is_a_config_error(tmp_path):
    broken = tmp_path / "model.npz"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="retrain with"):
        ClaimModel.load(broken)


def test_the_experiment_compares_rules_and_each_cut_on_a_test_set(tmp_path):
    test_set = tmp_path / "test_set"
    test_set.mkdir()
    items = [
        {"id": "t-1", "text": "A session costs $8,000.", "lang": "en", "labels": ["price"]},
        {"id": "t-2", "text": "We are closed on Mondays.", "lang": "en", "labels": []},
    ]
    (test_set / "en.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    args = ["--corpus", str(_tiny_corpus(tmp_path)), "--experiment", str(test_set)]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output
    assert "trained on 12 items, measured on 2 items" in result.output
    variants = [line.split(" all ")[0].strip() for line in result.output.splitlines()[2:]]
    assert variants == [
        "rules",
        "rules + model (precise)",
        "rules + model (balanced)",
        "rules + model (recall)",
    ]
