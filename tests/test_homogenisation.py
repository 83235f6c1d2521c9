"""Shared top words of confusable classes (sklearn_cap.homogenisation) and the benchmark that tabulates them."""

import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from sklearn_cap import WordAttributions, segment
from sklearn_cap.homogenisation import top_word_overlap
from sklearn_cap.keywords import confusable_partners, logodds_keywords

# arrival and delivery share "my" and "card" (each other's partners by word counts); fee shares nothing
TEXTS = ["my card has not arrived", "card not arrived yet", "my card never arrived",
         "my card delivery time", "card delivery takes long", "my card delivery date",
         "why a fee", "fee charged twice", "a fee again"]
LABELS = np.array(["arrival"] * 3 + ["delivery"] * 3 + ["fee"] * 3)


def priors_from(score, texts=TEXTS):
    """A prior that gives every word its score in ``score`` (0 if absent), NaN where the score is NaN."""
    return WordAttributions(texts, [[score.get(w.lower(), 0.0) for w in segment(t)[0]] for t in texts])


def words(result, label):
    return [w for w, _ in result.keywords[label]]


def test_partners_are_the_method_free_ones():
    out = top_word_overlap(TEXTS, LABELS, priors_from({"card": 1.0}), top_k=2)
    assert out.partners == confusable_partners(TEXTS, LABELS)
    assert out.partners["arrival"] == "delivery" and out.partners["delivery"] == "arrival"


def test_identical_top_words_of_confusable_classes_overlap_one():
    out = top_word_overlap(TEXTS, LABELS, priors_from({"card": 1.0, "my": 0.8}), top_k=2)
    assert words(out, "arrival") == words(out, "delivery") == ["card", "my"]
    assert out.overlap["arrival"] == out.overlap["delivery"] == 1.0
    assert out.overlap["fee"] == 0.0  # its partner's top words are not its own
    assert out.mean_overlap == pytest.approx(2 / 3)


def test_disjoint_top_words_overlap_zero():
    score = {"arrived": 1.0, "not": 0.5, "delivery": 1.0, "time": 0.5, "takes": 0.5, "date": 0.5, "fee": 1.0}
    out = top_word_overlap(TEXTS, LABELS, priors_from(score), top_k=2)
    assert words(out, "arrival") == ["arrived", "not"] and words(out, "delivery") == ["delivery", "date"]
    assert out.overlap["arrival"] == out.overlap["delivery"] == 0.0


def test_values_are_min_max_normalised_per_text_before_they_are_summed():
    # raw sums would put "card" first (one text scores it 100); per text, "arrived" tops two of the three texts
    values = [[0.0, 100.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0, 0.0]] + [[0.0] * 5] * 6
    out = top_word_overlap(TEXTS, LABELS, WordAttributions(TEXTS, values), top_k=2)  # padded past a text's words
    assert out.keywords["arrival"] == [("arrived", pytest.approx(2 / 3)), ("card", pytest.approx(1 / 3))]


def test_nan_values_are_ignored():
    nan = float("nan")
    texts = ["x y z", "y w", "card only", "card again"]
    labels = ["a", "a", "b", "b"]
    priors = WordAttributions(texts, [[nan, 0.2, 0.4], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    out = top_word_overlap(texts, labels, priors, top_k=3)
    kw = dict(out.keywords["a"])
    assert "x" not in kw  # a word with no value is no top word, even with room in the list
    assert kw["y"] == pytest.approx(0.5) and kw["z"] == pytest.approx(0.5)  # NaN kept out of the min-max
    assert all(np.isfinite(s) for lst in out.keywords.values() for _, s in lst)
    # NaN for "card" in every arrival text: it drops out of arrival's list, so only "my" is shared
    nan_card = priors_from({"card": 1.0, "my": 0.8}).values.copy()
    nan_card[:3][np.asarray(priors_from({"card": 1.0}).values[:3]) == 1.0] = nan
    out = top_word_overlap(TEXTS, LABELS, WordAttributions(TEXTS, nan_card), top_k=2)
    assert "card" not in words(out, "arrival") and out.overlap["arrival"] == 0.5


def test_words_are_case_folded_and_nfc_normalised():
    texts = ["Card late", "CARD lost", "card fee", "Card fees", unicodedata.normalize("NFD", "Café open"),
             "café shut"]
    labels = ["a", "a", "b", "b", "c", "c"]
    priors = WordAttributions(texts, [[1.0, 0.0]] * 6)
    out = top_word_overlap(texts, labels, priors, top_k=1, partners={"a": "b", "b": "a", "c": "a"})
    assert out.keywords["a"] == out.keywords["b"] == [("card", 1.0)] and out.overlap["a"] == 1.0
    assert out.keywords["c"] == [("café", 1.0)]


def test_short_lists_are_still_divided_by_top_k():
    # only words in all three texts of a class are eligible: card and arrived, card and delivery
    out = top_word_overlap(TEXTS, LABELS, priors_from({"card": 1.0}), top_k=10, min_count=3)
    assert sorted(words(out, "arrival")) == ["arrived", "card"] and sorted(words(out, "delivery")) == ["card",
                                                                                                      "delivery"]
    assert out.overlap["arrival"] == pytest.approx(0.1)


def test_without_priors_the_log_odds_keywords_are_the_reference():
    out = top_word_overlap(TEXTS, LABELS, top_k=3, min_count=1)
    kw = logodds_keywords(TEXTS, LABELS, top_k=3, min_count=1)
    assert out.keywords == kw
    partners = confusable_partners(TEXTS, LABELS)
    for c in kw:
        shared = {w for w, _ in kw[c]} & {w for w, _ in kw[partners[c]]}
        assert out.overlap[c] == len(shared) / 3


def test_an_array_of_priors_is_a_word_attributions():
    wa = priors_from({"card": 1.0, "my": 0.5, "fee": 0.7})
    a, b = top_word_overlap(TEXTS, LABELS, wa, top_k=2), top_word_overlap(TEXTS, LABELS, np.asarray(wa), top_k=2)
    assert a.keywords == b.keywords and a.overlap == b.overlap


def test_given_partners_are_used_and_checked():
    priors = priors_from({"card": 1.0, "fee": 1.0})
    out = top_word_overlap(TEXTS, LABELS, priors, top_k=1, partners={"arrival": "fee", "delivery": "arrival",
                                                                     "fee": "delivery"})
    assert out.overlap == {"arrival": 0.0, "delivery": 1.0, "fee": 0.0}
    with pytest.raises(ValueError, match="every class"):
        top_word_overlap(TEXTS, LABELS, priors, partners={"arrival": "delivery", "delivery": "arrival"})
    with pytest.raises(ValueError, match="every class"):
        top_word_overlap(TEXTS, LABELS, priors, partners={"arrival": "arrival", "delivery": "arrival", "fee": "a"})


def test_bad_input_raises_clear_errors():
    priors = priors_from({"card": 1.0})
    with pytest.raises(ValueError, match="one entry per text"):
        top_word_overlap(TEXTS, LABELS[:5], priors)
    with pytest.raises(ValueError, match="one row per text"):
        top_word_overlap(TEXTS, LABELS, np.asarray(priors)[:5])
    with pytest.raises(ValueError, match="holds? 5 texts|hold 5 texts"):
        top_word_overlap(TEXTS, LABELS, priors[:5])
    with pytest.raises(ValueError, match="other texts: text 1"):
        top_word_overlap(TEXTS, LABELS, priors_from({"card": 1.0}, [TEXTS[0], "x"] + TEXTS[2:]))
    with pytest.raises(ValueError, match="no values"):
        top_word_overlap(TEXTS, LABELS, WordAttributions(TEXTS))
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        top_word_overlap(TEXTS, LABELS, priors, top_k=0)
    with pytest.raises(ValueError, match="another class"):
        top_word_overlap(TEXTS[:3], LABELS[:3], priors[:3])


# -- the benchmark: resumable, one line per (data set, setting, seed, source, k) ------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_benchmark_appends_per_cell_and_skips_finished_ones(tmp_path, monkeypatch):
    import torch

    import homogenisation
    import registry
    import reproduce

    X = [f"{w} card {i}" for w in ("arrived", "delivery", "fee") for i in range(6)]
    y = np.array([c for c in ("arrival", "delivery", "fee") for _ in range(6)], dtype=object)
    monkeypatch.setattr(reproduce, "load", lambda dataset, data_home: (X, y, X, y))
    calls = []

    def named_prior(self, name, in_sample=False, vanilla=None):  # a prior that needs no model
        calls.append((self.seed, name))
        wa = WordAttributions(self.X)
        return np.random.default_rng(self.seed).random(wa.shape), 1.5

    monkeypatch.setattr(reproduce.Seed, "named_prior", named_prior)
    monkeypatch.setenv("SKLEARN_CAP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "homogenisation.jsonl"
    threads = torch.get_num_threads()
    argv = ["--datasets", "banking77", "--seeds", "0", "1", "--sources", "cap_llm", "logodds", "cap_emb",
            "--k", "1", "2", "--threads", str(threads), "--out", str(out)]
    homogenisation.main(argv)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 2 * 3 * 2
    # the costly source after every cheap one; one prior per (seed, source), shared by the k's
    assert [x["source"] for x in lines[-4:]] == ["cap_llm"] * 4
    assert calls == [(0, "cap_emb"), (1, "cap_emb"), (0, "cap_llm"), (1, "cap_llm")]
    emb = next(x for x in lines if x["source"] == "cap_emb" and x["k"] == 2 and x["seed"] == 1)
    assert emb["config"]["cap"] == registry.config("5-shot")["cap"] and emb["display"] == "CAP (embedding)"
    assert emb["n_train"] == 15 and emb["seconds"]["prior"] == 1.5 and emb["machine"]["threads"] == threads
    assert set(emb["classes"]) == {"arrival", "delivery", "fee"} and len(emb["classes"]["fee"]["words"]) == 2
    assert emb["mean_overlap"] == pytest.approx(np.mean([c["overlap"] for c in emb["classes"].values()]))
    ref = next(x for x in lines if x["source"] == "logodds")
    assert "alpha0" in ref["config"]["logodds"] and ref["prior_cached"] is False
    # a rerun skips every finished line; a lost line is the only one computed again
    calls.clear()
    homogenisation.main(argv)
    assert calls == [] and len(out.read_text().splitlines()) == 12
    kept = [x for x in out.read_text().splitlines()
            if not (json.loads(x)["source"] == "cap_emb" and json.loads(x)["seed"] == 1 and json.loads(x)["k"] == 2)]
    out.write_text("\n".join(kept) + "\n")
    homogenisation.main(argv)
    again = [json.loads(x) for x in out.read_text().splitlines()]
    assert calls == [(1, "cap_emb")] and len(again) == 12
    assert (again[-1]["source"], again[-1]["seed"], again[-1]["k"]) == ("cap_emb", 1, 2)


def test_a_reference_prior_records_its_own_references_and_settings():
    """Read from the registry's REFERENCE_PRIORS: LIME at 250 samples is a probe prior, recorded at 250."""
    from types import SimpleNamespace

    import homogenisation
    import registry

    s = SimpleNamespace(cfg=registry.config("5-shot"), setting="5-shot")
    fewer = homogenisation.settings_of(s, "lime_probe_250")
    assert fewer["reference"] == "probe" and fewer["lime_prior"]["num_samples"] == 250
    assert fewer["reference_classifier"]["stages"] == "[LinearProbe()]"
    plain = homogenisation.settings_of(s, "lime")
    assert plain["reference"] == "finetuned" and plain["lime_prior"]["num_samples"] == 500
