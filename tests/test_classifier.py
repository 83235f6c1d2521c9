import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_cap import ExplanationGuidedClassifier, WordAttributions

FILLER = "my has not where is it the what do i for a to me".split()


def planted_data(n=200, seed=0):
    """Two classes, each with a planted word (the prior's) and a spurious word, both perfectly predictive."""
    rng = np.random.default_rng(seed)
    X, y, P = [], [], []
    for i in range(n):
        c = i % 2
        words = list(rng.choice(FILLER, 5))
        a, b = sorted(rng.choice(7, 2, replace=False))
        words.insert(a, "_"); words.insert(b, "_")
        slots = [j for j, w in enumerate(words) if w == "_"]
        rng.shuffle(slots)
        words[slots[0]] = ["card", "transfer"][c]
        words[slots[1]] = ["yesterday", "please"][c]
        prior = np.zeros(len(words)); prior[slots[0]] = 1.0
        X.append(" ".join(words)); y.append(["card_arrival", "transfer_fee"][c]); P.append(prior)
    return X, np.array(y, dtype=object), np.array(P)


def _clf(folder, **kw):
    params = dict(epochs=4, batch_size=16, learning_rate=2e-3, random_state=0, progress_bar=False,
                  attribution="grad_input")
    params.update(kw)
    return ExplanationGuidedClassifier(folder, **params)


@pytest.fixture(scope="module")
def data():
    return planted_data()


def test_fit_predict_string_labels(tiny_encoder, data):
    X, y, _ = data
    clf = _clf(tiny_encoder, beta=0).fit(X, y)
    assert list(clf.classes_) == ["card_arrival", "transfer_fee"]
    proba = clf.predict_proba(X[:10])
    assert proba.shape == (10, 2) and np.allclose(proba.sum(1), 1)
    assert set(clf.predict(X[:10])) <= set(y)
    assert clf.score(X, y) > 0.9
    assert clf.n_epochs_ == 4 and len(clf.history_) == 4


def test_integer_labels_keep_their_type(tiny_encoder, data):
    X, y, _ = data
    yi = np.where(y == "card_arrival", 7, 3)
    clf = _clf(tiny_encoder, beta=0, epochs=1).fit(X, yi)
    assert clf.classes_.tolist() == [3, 7] and clf.predict(X[:3]).dtype.kind == "i"


@pytest.mark.parametrize("attribution", ["grad_input", "ig", "ig_stochastic"])
def test_attribution_loss_moves_explanations_to_the_planted_word(tiny_encoder, data, attribution):
    X, y, P = data
    wa = WordAttributions(X, P)
    test_X = X[:100]
    planted = {"card", "transfer"}

    def top_is_planted(clf):
        ex = clf.explain(test_X, target=y[:100])
        return np.mean([ex.top_words(i, 1)[0] in planted for i in range(len(test_X))])

    vanilla = _clf(tiny_encoder, beta=0, attribution=attribution, n_steps=3, epochs=8).fit(wa, y)
    guided = _clf(tiny_encoder, beta=5, attribution=attribution, n_steps=3, epochs=8).fit(wa, y)
    assert guided.history_[-1]["attr"] > 0 and vanilla.history_[-1]["attr"] == 0
    assert top_is_planted(guided) >= top_is_planted(vanilla) + 0.3
    assert guided.score(X, y) > 0.9


def test_priors_as_fit_param_or_array(tiny_encoder, data):
    X, y, P = data
    a = _clf(tiny_encoder, beta=2, epochs=1).fit(X, y, priors=P)
    b = _clf(tiny_encoder, beta=2, epochs=1).fit(WordAttributions(X, P), y)
    assert np.allclose(a.predict_proba(X[:5]), b.predict_proba(X[:5]), atol=1e-6)


def test_same_seed_same_predictions(tiny_encoder, data):
    X, y, P = data
    a = _clf(tiny_encoder, beta=1, epochs=2).fit(X, y, priors=P).predict_proba(X)
    b = _clf(tiny_encoder, beta=1, epochs=2).fit(X, y, priors=P).predict_proba(X)
    c = _clf(tiny_encoder, beta=1, epochs=2, random_state=1).fit(X, y, priors=P).predict_proba(X)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_clone_and_pickle(tiny_encoder, data):
    X, y, _ = data
    clf = _clf(tiny_encoder, beta=0, epochs=1)
    assert clone(clf).get_params() == clf.get_params()
    clf.fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    assert np.allclose(back.predict_proba(X[:20]), clf.predict_proba(X[:20]), atol=1e-6)
    assert back.explain(X[:2]).to_list(0)
    assert not hasattr(clone(clf), "model_")


def test_early_stopping_keeps_history(tiny_encoder, data):
    X, y, _ = data
    clf = _clf(tiny_encoder, beta=0, epochs=6, early_stopping=True, validation_fraction=0.2, n_iter_no_change=1)
    clf.fit(X, y)
    assert 1 <= clf.n_epochs_ <= 6 and "val_accuracy" in clf.history_[0]


def test_grid_search_and_cross_val_on_raw_texts(tiny_encoder, data):
    X, y, _ = data
    X, y = X[:80], y[:80]
    scores = cross_val_score(_clf(tiny_encoder, beta=0, epochs=1), X, y, cv=2)
    assert scores.shape == (2,)
    # a grid over beta needs priors: X as a WordAttributions carries them through the CV splits
    wa = WordAttributions(X, data[2][:80])
    gs = GridSearchCV(_clf(tiny_encoder, epochs=1), {"beta": [0.0, 1.0]}, cv=2, error_score="raise").fit(wa, y)
    assert gs.best_params_["beta"] in (0.0, 1.0) and len(gs.predict(X[:3])) == 3


def test_explain_output(tiny_encoder, data):
    X, y, _ = data
    clf = _clf(tiny_encoder, beta=0, epochs=1).fit(X, y)
    ex = clf.explain(["my card is late, where is it", ""])
    assert ex.targets.tolist()[0] in clf.classes_
    pairs = ex.to_list(0)
    assert [w for w, _ in pairs] == ["my", "card", "is", "late", "where", "is", "it"]
    assert np.isfinite([s for _, s in pairs]).all() and ex.to_list(1) == []
    assert "<span" in ex.to_html() and f"<b>{ex.targets[0]}</b>" in ex.to_html()
    ig = clf.explain(X[:2], method="ig", target=y[:2])
    assert ig.targets.tolist() == y[:2].tolist()
    with pytest.raises(ValueError, match="not seen in fit"):
        clf.explain(X[:1], target=["nope"])


@pytest.mark.parametrize(
    "X_bad, y_bad, exc, msg",
    [
        (["fine text", ""], ["a", "b"], ValueError, "has no word"),
        (["fine text", None], ["a", "b"], TypeError, "must be a str"),
        (["fine text", "other text"], ["a", "a"], ValueError, "Only one class"),
        (["fine text", "other text"], ["a"], ValueError, "different lengths"),
    ],
)
def test_bad_input(tiny_encoder, X_bad, y_bad, exc, msg):
    with pytest.raises(exc, match=msg):
        _clf(tiny_encoder).fit(X_bad, y_bad)


def test_prior_rows_must_match(tiny_encoder, data):
    X, y, P = data
    with pytest.raises(ValueError, match="rows do not match X"):
        _clf(tiny_encoder).fit(X[:10], y[:10], priors=WordAttributions(X[:9], P[:9]))
    with pytest.raises(ValueError, match="rows do not match X"):
        _clf(tiny_encoder).fit(X[:10], y[:10], priors=WordAttributions(X[1:11], P[1:11]))
    with pytest.raises(ValueError, match="one row per text"):
        _clf(tiny_encoder).fit(X[:10], y[:10], priors=P[:9])
    bad = P[:10].copy(); bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        _clf(tiny_encoder).fit(X[:10], y[:10], priors=bad)


def test_nan_priors_mean_no_prior(tiny_encoder, data):
    X, y, P = data
    # NaN everywhere is no prior at all: beta > 0 would train nothing, so fit says so
    with pytest.raises(ValueError, match="carries no prior values"):
        _clf(tiny_encoder, beta=5, epochs=1).fit(X[:20], y[:20], priors=np.full((20, 7), np.nan))
    # NaN in some rows: those rows add nothing to the attribution loss
    partial = np.full((20, 7), np.nan)
    partial[:2] = P[:2]
    one = _clf(tiny_encoder, beta=5, epochs=1, batch_size=20).fit(X[:20], y[:20], priors=partial)
    assert one.history_[0]["attr"] > 0


def test_predict_before_fit(tiny_encoder):
    with pytest.raises(NotFittedError):
        _clf(tiny_encoder).predict(["hello"])


@pytest.mark.parametrize("params, msg", [({"beta": -1}, "beta"), ({"attribution": "lime"}, "attribution"),
                                         ({"normalization": "zz"}, "normalization"), ({"epochs": 0}, "epochs")])
def test_bad_params(tiny_encoder, data, params, msg):
    X, y, _ = data
    with pytest.raises(ValueError, match=msg):
        _clf(tiny_encoder, **params).fit(X[:10], y[:10])


def test_mean_pooling_head_trains_explains_and_pickles(tiny_encoder, data, tmp_path):
    X, y, P = data
    clf = _clf(tiny_encoder, pooling="mean", beta=2, epochs=3).fit(X, y, priors=P)
    assert clf.pooling_ == "mean" and clf.score(X, y) > 0.9
    back = pickle.loads(pickle.dumps(clf))
    assert np.allclose(back.predict_proba(X[:10]), clf.predict_proba(X[:10]), atol=1e-6)
    assert np.isfinite([s for _, s in back.explain(X[:1], method="ig").to_list(0)]).all()


def test_pooling_auto_detects_sentence_transformers(tiny_encoder, tmp_path):
    import json
    import shutil

    from sklearn_cap.modeling import resolve_pooling as _resolve_pooling

    assert _resolve_pooling("auto", tiny_encoder) == "cls"
    st = tmp_path / "st"
    shutil.copytree(tiny_encoder, st)
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    assert _resolve_pooling("auto", str(st)) == "mean"
    assert _resolve_pooling("auto", "roberta-base") == "cls"
    with pytest.raises(ValueError, match="pooling must be"):
        _resolve_pooling("max", tiny_encoder)
