import numpy as np
import pytest

from sklearn_cap import ExplanationGuidedClassifier, WordAttributions
from sklearn_cap.adversarial import make_adversarial
from sklearn_cap.metrics import (class_keywords, comprehensiveness, comprehensiveness_scorer, confusable_pairs,
                                 faithfulness, keyword_overlap, sufficiency, sufficiency_scorer)
from sklearn_cap.report import html_report

from test_classifier import planted_data


@pytest.fixture(scope="module")
def keyword_model(tiny_encoder):
    """A model that decides by one word: trained on texts where only "card"/"transfer" tell the class."""
    X, y, _ = planted_data(200, seed=11)
    X = [" ".join(w for w in t.split() if w not in ("yesterday", "please")) for t in X]
    clf = ExplanationGuidedClassifier(tiny_encoder, beta=0, epochs=8, batch_size=16, learning_rate=2e-3,
                                      random_state=0, progress_bar=False, attribution="grad_input").fit(X, y)
    assert clf.score(X, y) > 0.95
    return clf, X[:60], y[:60]


def _perfect_and_random(X, seed=0):
    wa = WordAttributions(X)
    rng = np.random.default_rng(seed)
    perfect = np.array([[1.0 if w in ("card", "transfer") else 0.0 for w in ws] + [np.nan] * (wa.width - len(ws))
                        for ws in wa.words])
    return wa.with_values(perfect), wa.with_values(rng.random(wa.shape))


def test_perfect_attribution_beats_random(keyword_model):
    clf, X, y = keyword_model
    perfect, rand = _perfect_and_random(X)
    assert comprehensiveness(clf, perfect) > comprehensiveness(clf, rand) + 0.1
    assert sufficiency(clf, perfect) < sufficiency(clf, rand) - 0.05
    report = faithfulness(clf, perfect)
    assert set(report["per_k"]) == {0.01, 0.05, 0.1, 0.2, 0.5}
    assert report["comprehensiveness"] == pytest.approx(comprehensiveness(clf, perfect))
    per_text = comprehensiveness(clf, perfect, per_text=True)
    assert per_text.shape == (len(X),)


def test_metrics_use_targets_and_validate(keyword_model):
    clf, X, y = keyword_model
    perfect, _ = _perfect_and_random(X)
    a = comprehensiveness(clf, perfect, target=y)
    b = comprehensiveness(clf, perfect)  # predicted class: the same here, the model is right
    assert a == pytest.approx(b, abs=0.05)
    with pytest.raises(TypeError, match="WordAttributions"):
        comprehensiveness(clf, np.zeros((len(X), 3)))
    with pytest.raises(ValueError, match="fractions"):
        comprehensiveness(clf, perfect, k=(0, 0.5))


def test_scorers_in_cross_validate(keyword_model):
    clf, X, y = keyword_model
    assert np.isfinite(comprehensiveness_scorer(clf, X[:10], y[:10]))
    assert sufficiency_scorer(clf, X[:10], y[:10]) <= 1.0


def test_keywords_overlap_pairs():
    texts = ["card arrived late", "card not arrived", "transfer fee charged", "fee for transfer", "card fee"]
    labels = ["arrival", "arrival", "fee", "fee", "cardfee"]
    wa = WordAttributions(texts, [[0.0, 1.0, 0.5], [0.1, 0.2, 1.0], [0.2, 1.0, 0.1], [1.0, 0.0, 0.3], [0.5, 1.0, np.nan]])
    kw = class_keywords(wa, labels, top_k=2, min_count=1)
    assert kw["arrival"][0][0] == "arrived"
    assert [w for w, _ in kw["fee"]] == ["fee", "transfer"]
    ov, classes = keyword_overlap(kw)
    assert classes == ["arrival", "cardfee", "fee"] and np.allclose(np.diag(ov), 1) and np.allclose(ov, ov.T)
    pairs = confusable_pairs(ov, classes, n=1)
    assert pairs[0][:2] == ("cardfee", "fee") and pairs[0][2] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="labels for"):
        class_keywords(wa, labels[:2])


KW = {"card_arrival": [("arrived", 1.0), ("card", 0.5)], "card_delivery_estimate": [("deliver", 1.0), ("card", 0.4)],
      "lost_card": [("lost", 1.0), ("stolen", 0.8)]}
TEXTS = ["My card has not arrived!", "How long to deliver it?", "I lost my wallet", "card arrived, deliver?"]
LABELS = ["card_arrival", "card_delivery_estimate", "lost_card", "card_arrival"]


@pytest.mark.parametrize("kind", ["addition", "replacement"])
@pytest.mark.parametrize("seed", range(5))
def test_adversarial_examples_differ_only_by_the_documented_edit(kind, seed):
    adv = make_adversarial(TEXTS, LABELS, KW, kind=kind, random_state=seed)
    assert len(adv) + adv.n_skipped == len(TEXTS)
    for text, label, edit in zip(adv.texts, adv.labels, adv.edits):
        source = TEXTS[edit.source]
        assert label == LABELS[edit.source]
        assert edit.undo(text) == source and edit.apply(source) == text
        own = {w for w, _ in KW[label]}
        assert edit.keyword not in own and edit.keyword in {w for w, _ in KW[edit.confused_with]}
        if kind == "addition":
            assert edit.removed == "" and edit.inserted.strip() == edit.keyword
            assert text.split() != source.split() and len(text.split()) == len(source.split()) + 1
        else:
            assert edit.removed.lower() not in own and edit.inserted == edit.keyword
    # the last text already holds "deliver": no addition of it, it is skipped
    assert 3 not in [e.source for e in adv.edits]


def test_adversarial_reproducible_and_validated():
    a = make_adversarial(TEXTS, LABELS, KW, kind="replacement", random_state=1)
    b = make_adversarial(TEXTS, LABELS, KW, kind="replacement", random_state=1)
    assert a.texts == b.texts
    with pytest.raises(ValueError, match="kind must be"):
        make_adversarial(TEXTS, LABELS, KW, kind="swap")
    with pytest.raises(ValueError, match="No keywords"):
        make_adversarial(TEXTS, ["x"] * 4, KW)


def test_html_report(tmp_path):
    wa = WordAttributions(["card not here"], [[1.0, -1.0, 0.0]], targets=["card_arrival"])
    ov, classes = keyword_overlap(KW)
    path = html_report(tmp_path / "r.html", title="t", summary_header=["model", "acc"], summary_rows=[["a", "0.5"]],
                       notes=["n"], heatmaps=[("overlap", ov, classes)], explanations=[("m", wa, ["card_arrival"])],
                       priors=("p", wa, ["card_arrival"]))
    html = open(path).read()
    assert "data:image/png;base64," in html and "rgba(34,139,34" in html and "✓" in html
