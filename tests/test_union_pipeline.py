import pickle

import numpy as np
import pytest
from joblib import Memory
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, IGPriorTransformer,
                         LIMEPriorTransformer, PriorUnion, WordAttributions)
from sklearn_cap.cache import ScoreCache
from sklearn_cap.scorers import CausalLMScorer
from sklearn_cap.validation import check_texts

from test_classifier import planted_data


class WordLengthPrior(TransformerMixin, BaseEstimator):
    """A real, simple prior: each word's length (optionally with a NaN or a wrong width)."""

    def __init__(self, scale=1.0, nan_first=False, extra_columns=0):
        self.scale = scale
        self.nan_first = nan_first
        self.extra_columns = extra_columns

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def compute_priors(self, X, y=None):
        wa = WordAttributions(check_texts(X))
        values = np.array([[len(w) * self.scale for w in words] + [np.nan] * (wa.width - len(words))
                           for words in wa.words])
        if self.nan_first:
            values[:, 0] = np.nan
        if self.extra_columns:
            return np.hstack([values, np.zeros((len(values), self.extra_columns))])
        return wa.with_values(values)

    def fit_transform(self, X, y=None):
        return self.fit(X, y).compute_priors(X, y)

    def transform(self, X):
        return WordAttributions(check_texts(X))


class FirstWordPrior(WordLengthPrior):
    def compute_priors(self, X, y=None):
        wa = WordAttributions(check_texts(X))
        return wa.with_values(np.where(np.arange(wa.width) == 0, 1.0, 0.0)[None].repeat(len(wa), 0))


X3 = ["a bbb cc", "dddd e"]


def test_union_min_max_then_mean_and_max():
    u = PriorUnion([("len", WordLengthPrior()), ("first", FirstWordPrior())])
    P = np.asarray(u.fit_transform(X3, [0, 1]))
    # len: [1,3,2] -> [0,1,.5]; first: [1,0,0]; mean
    assert np.allclose(P[0], [0.5, 0.5, 0.25])
    assert np.allclose(P[1, :2], [1.0, 0.0]) and np.isnan(P[1, 2])
    Pm = np.asarray(u.set_params(aggregate="max").fit_transform(X3, [0, 1]))
    assert np.allclose(Pm[0], [1.0, 1.0, 0.5])
    Pw = np.asarray(u.set_params(aggregate="mean", weights={"first": 3.0}).fit_transform(X3, [0, 1]))
    assert np.allclose(Pw[0], [(0 + 3) / 4, 1 / 4, 0.5 / 4])
    Pl1 = np.asarray(u.set_params(weights=None, normalization="l1").fit_transform(X3, [0, 1]))
    assert np.allclose(Pl1[0], [(1 / 6 + 1) / 2, (3 / 6) / 2, (2 / 6) / 2])


def test_union_nan_means_no_prior_from_that_member():
    u = PriorUnion([("len", WordLengthPrior(nan_first=True)), ("first", FirstWordPrior())])
    P = np.asarray(u.fit_transform(X3, [0, 1]))
    assert P[0, 0] == pytest.approx(1.0)  # only "first" has a value there
    u = PriorUnion([("len", WordLengthPrior(nan_first=True))])
    assert np.isnan(np.asarray(u.fit_transform(X3, [0, 1]))[:, 0]).all()


def test_union_params_and_errors():
    u = PriorUnion([("cap", CAPPriorTransformer(lam=0.1)), ("len", WordLengthPrior())])
    assert u.get_params()["cap__lam"] == 0.1
    u.set_params(cap__lam=2.0)
    assert u.transformer_list[0][1].lam == 2.0
    with pytest.raises(ValueError, match="at least one"):
        PriorUnion([]).fit(X3, [0, 1])
    with pytest.raises(ValueError, match="'aggregate' parameter"):
        PriorUnion([("len", WordLengthPrior())], aggregate="median").fit(X3, [0, 1])
    # fit computes no prior: a member's bad priors show where they are computed
    with pytest.raises(ValueError, match="different widths"):
        PriorUnion([("len", WordLengthPrior()), ("bad", WordLengthPrior(extra_columns=2))]).fit_transform(X3, [0, 1])
    with pytest.raises(ValueError, match="infinite"):
        PriorUnion([("len", WordLengthPrior(scale=np.inf))]).fit_transform(X3, [0, 1])
    with pytest.raises(ValueError, match="unknown members"):
        PriorUnion([("len", WordLengthPrior())], weights={"nope": 1}).fit(X3, [0, 1])
    with pytest.raises(ValueError, match="every member|Every member"):
        PriorUnion([("len", "drop")]).fit(X3, [0, 1])
    with pytest.raises(ValueError, match="needs the labels"):
        PriorUnion([("len", WordLengthPrior())]).fit_transform(X3)


def _ref(folder):
    return ExplanationGuidedClassifier(folder, beta=0, epochs=2, batch_size=16, learning_rate=2e-3,
                                       random_state=0, progress_bar=False, attribution="grad_input")


def test_ig_and_lime_share_one_reference_model(tiny_encoder):
    X, y, _ = planted_data(40)
    u = PriorUnion([("ig", IGPriorTransformer(_ref(tiny_encoder), n_steps=4, progress_bar=False)),
                    ("lime", LIMEPriorTransformer(_ref(tiny_encoder), num_samples=100, progress_bar=False))])
    u.fit(X, y)
    ig, lime = u.named_transformers_["ig"], u.named_transformers_["lime"]
    assert ig.estimator_ is lime.estimator_
    # different reference settings: two models
    other = _ref(tiny_encoder).set_params(epochs=1)
    u2 = PriorUnion([("ig", IGPriorTransformer(_ref(tiny_encoder), n_steps=4, progress_bar=False)),
                     ("lime", LIMEPriorTransformer(other, num_samples=100, progress_bar=False))]).fit(X, y)
    assert u2.named_transformers_["ig"].estimator_ is not u2.named_transformers_["lime"].estimator_


def _hybrid_pipeline(tiny_llm, tiny_encoder, cache_dir, memory):
    cap = CAPPriorTransformer(CausalLMScorer(tiny_llm), n_samples=8, cache_dir=cache_dir, progress_bar=False)
    union = PriorUnion([("cap", cap),
                        ("ig", IGPriorTransformer(_ref(tiny_encoder), n_steps=4, progress_bar=False)),
                        ("lime", LIMEPriorTransformer(_ref(tiny_encoder), num_samples=50, progress_bar=False))],
                       memory=memory)
    clf = ExplanationGuidedClassifier(tiny_encoder, beta=1.0, epochs=2, batch_size=16, learning_rate=2e-3,
                                      random_state=0, progress_bar=False, attribution="grad_input")
    return Pipeline([("priors", union), ("clf", clf)], memory=memory)


def test_pipeline_grid_search_llm_calls(tiny_llm, tiny_encoder, tmp_path):
    X, y, _ = planted_data(40, seed=5)
    y = np.asarray(y)
    memory = Memory(tmp_path / "memory", verbose=0)
    pipe = _hybrid_pipeline(tiny_llm, tiny_encoder, tmp_path / "grid_scores", memory)
    grid = {"clf__beta": [0.5, 2.0], "priors__cap__lam": [0.1, 1.0]}
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    gs = GridSearchCV(pipe, grid, cv=cv, refit=False).fit(X, y)
    assert gs.cv_results_["mean_test_score"].shape == (4,)
    grid_calls = len(ScoreCache(tmp_path / "grid_scores"))

    # the same pipeline fitted once per fold, with its own empty cache
    single = _hybrid_pipeline(tiny_llm, tiny_encoder, tmp_path / "single_scores", None)
    for train, _ in cv.split(X, y):
        clone(single).fit([X[i] for i in train], y[train])
    assert grid_calls == len(ScoreCache(tmp_path / "single_scores")) > 0


def test_pipeline_predicts_without_llm_and_pickles(tiny_llm, tiny_encoder, tmp_path):
    X, y, _ = planted_data(30, seed=6)
    pipe = _hybrid_pipeline(tiny_llm, tiny_encoder, tmp_path / "s", None).fit(X, y)
    n = len(ScoreCache(tmp_path / "s"))
    pred = pipe.predict(["card where is it", "transfer please now"])
    assert len(ScoreCache(tmp_path / "s")) == n  # predict scored nothing
    cap = pipe.named_steps["priors"].named_transformers_["cap"]
    assert cap.scorer_.n_scored_ == n
    back = pickle.loads(pickle.dumps(pipe))
    assert (back.predict(["card where is it", "transfer please now"]) == pred).all()
    assert back.named_steps["clf"].explain(["card where is it"]).to_list(0)
    assert clone(pipe).get_params()["priors__cap__lam"] == 0.1


def test_prefit_reference_survives_grid_search(tiny_encoder, tmp_path):
    from sklearn.frozen import FrozenEstimator

    X, y, _ = planted_data(40, seed=8)
    y = np.asarray(y)
    reference = _ref(tiny_encoder).fit(X, y)
    union = PriorUnion([("ig", IGPriorTransformer(FrozenEstimator(reference), prefit=True, n_steps=4,
                                                  progress_bar=False)),
                        ("lime", LIMEPriorTransformer(FrozenEstimator(reference), prefit=True, num_samples=50,
                                                      progress_bar=False))])
    pipe = Pipeline([("priors", union), ("clf", _ref(tiny_encoder).set_params(beta=1.0))])
    gs = GridSearchCV(pipe, {"clf__beta": [0.5, 2.0]}, cv=2).fit(X, y)
    fitted = gs.best_estimator_.named_steps["priors"].named_transformers_["ig"]
    assert fitted.estimator_.estimator is reference  # the very model given, never refitted
