"""GlobalPriorTransformer: the LAAT-style prior, one query per vocabulary word."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_cap import ExplanationGuidedClassifier, GlobalPriorTransformer, PriorUnion
from sklearn_cap.cache import ScoreCache
from sklearn_cap.scorers import EmbeddingScorer, Task

X = ["my card has not arrived", "my card is lost", "why a fee for my transfer", "My CARD has not arrived"]
Y = ["card_arrival", "lost_or_stolen_card", "transfer_fee_charged", "card_arrival"]


def _prior(encoder, tmp_path, **kw):
    return GlobalPriorTransformer(EmbeddingScorer(encoder, temperature=0.1), cache_dir=tmp_path, progress_bar=False,
                                  **kw)


def test_scores_match_a_hand_computed_table(tiny_encoder, tmp_path):
    prior = _prior(tiny_encoder, tmp_path)
    P = np.asarray(prior.fit_transform(X, Y))
    task = Task.from_labels(sorted(set(Y)))
    scorer = EmbeddingScorer(tiny_encoder, temperature=0.1)
    base = scorer.predict_log_proba([""], task)[0]
    for word in ["card", "fee", "arrived"]:
        expected = scorer.predict_log_proba([word], task)[0] - base
        assert np.allclose(prior.table_[prior.vocabulary_[word]], expected, atol=1e-5)
    # text 0, word 1 ("card") carries card_arrival's column
    col = list(prior.classes_).index("card_arrival")
    assert P[0, 1] == pytest.approx(prior.table_[prior.vocabulary_["card"], col])
    # case-folded vocabulary: "CARD" reads as "card"
    assert P[3, 1] == pytest.approx(P[0, 1])


def test_words_outside_the_vocabulary_are_nan(tiny_encoder, tmp_path):
    prior = _prior(tiny_encoder, tmp_path, min_count=2).fit(X, Y)
    assert "transfer" not in prior.vocabulary_ and "card" in prior.vocabulary_
    P = np.asarray(prior.compute_priors(["transfer card"], ["card_arrival"]))
    assert np.isnan(P[0, 0]) and np.isfinite(P[0, 1])
    capped = _prior(tiny_encoder, tmp_path, max_vocabulary=2).fit(X, Y)
    assert set(capped.vocabulary_) == {"card", "my"}  # the two most frequent
    assert not prior.transform(X).has_values


def test_one_query_per_distinct_word_never_per_text(tiny_encoder, tmp_path):
    prior = _prior(tiny_encoder, tmp_path / "a").fit(X, Y)
    n_words = len(prior.vocabulary_)
    assert prior.n_queries_ == n_words + 1  # the words and the empty text
    assert prior.n_scored_ == (n_words + 1) * 3 == len(ScoreCache(tmp_path / "a"))
    many = _prior(tiny_encoder, tmp_path / "b").fit(X * 25, Y * 25)  # 25x the texts, same words
    assert many.n_queries_ == prior.n_queries_ and many.n_scored_ == prior.n_scored_
    again = _prior(tiny_encoder, tmp_path / "a").fit(X, Y)
    assert again.n_scored_ == 0 and again.n_cached_ == prior.n_scored_


def test_pickle_union_and_grid_search(tiny_encoder, tmp_path):
    from test_classifier import planted_data

    Xp, yp, _ = planted_data(40, seed=2)
    prior = _prior(tiny_encoder, tmp_path)
    P = np.asarray(prior.fit_transform(Xp, yp))
    back = pickle.loads(pickle.dumps(prior))
    assert np.allclose(np.asarray(back.compute_priors(Xp, yp)), P, equal_nan=True)
    clf = ExplanationGuidedClassifier(tiny_encoder, beta=1.0, epochs=1, batch_size=16, learning_rate=2e-3,
                                      random_state=0, progress_bar=False, attribution="grad_input")
    pipe = Pipeline([("priors", PriorUnion([("global", clone(prior))])), ("clf", clf)])
    gs = GridSearchCV(pipe, {"priors__global__min_count": [1, 2]}, cv=2, error_score="raise").fit(Xp, np.asarray(yp))
    assert gs.best_params_["priors__global__min_count"] in (1, 2)
