"""Parameters are checked once per public call, and ``fit`` of a prior computes no prior it would discard."""

from collections import Counter

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, IGPriorTransformer,
                         LIMEPriorTransformer, PriorUnion)
from sklearn_cap.cache import ScoreCache
from sklearn_cap.scorers import CausalLMScorer

from test_classifier import planted_data


@pytest.fixture
def checks(monkeypatch):
    """Counts of ``_validate_params`` calls by class name (overrides such as ReferencePrior's end here too)."""
    counts = Counter()
    original = BaseEstimator._validate_params

    def counting(self):
        counts[type(self).__name__] += 1
        return original(self)

    monkeypatch.setattr(BaseEstimator, "_validate_params", counting)
    return counts


class _CountingIG(IGPriorTransformer):
    """The real IG prior, counting the texts it explains."""

    def explain_with(self, model, texts, y):
        type(self).explained += len(texts)
        return super().explain_with(model, texts, y)


def _ref(folder):
    return ExplanationGuidedClassifier(folder, beta=0, epochs=1, batch_size=16, learning_rate=2e-3,
                                       random_state=0, progress_bar=False, attribution="grad_input")


X, Y, _ = planted_data(20, seed=11)


def test_scorer_score_checks_once(tiny_llm, checks):
    scorer = CausalLMScorer(tiny_llm, batch_size=2)
    task = CAPPriorTransformer(labels=["a", "b"]).fit(["x y z"], ["a"]).task_
    checks.clear()
    scorer.score(["one text", "two texts"], ["a", "b"], task)
    assert checks == {"CausalLMScorer": 1}


def test_cap_scoring_session_checks_the_scorer_once(tiny_llm, tmp_path, checks):
    cap = CAPPriorTransformer(CausalLMScorer(tiny_llm), n_samples=8, chunk_size=5, cache_dir=tmp_path,
                              progress_bar=False)
    cap.fit_transform(X[:4], Y[:4])
    assert cap.n_scored_ > 3 * 5  # several chunks, so several score() calls...
    assert checks == {"CAPPriorTransformer": 1, "CausalLMScorer": 1}  # ...and one check of each


def test_ig_fit_transform_checks_once_and_fit_explains_nothing(tiny_encoder, checks):
    _CountingIG.explained = 0
    ig = _CountingIG(_ref(tiny_encoder), n_steps=2, progress_bar=False)
    P = ig.fit_transform(X, Y)
    assert checks["_CountingIG"] == 1
    assert _CountingIG.explained == len(X)  # the training priors, computed once
    _CountingIG.explained = 0
    ig.fit(X, Y)
    assert _CountingIG.explained == 0 and ig.estimator_ is not None
    # compute_priors of the fitted prior: what fit_transform returned, and one check
    checks.clear()
    assert np.allclose(np.asarray(ig.compute_priors(X, Y)), np.asarray(P), equal_nan=True, atol=1e-5)
    assert checks["_CountingIG"] == 1


def test_union_checks_once_and_fit_computes_no_prior(tiny_llm, tiny_encoder, tmp_path, checks):
    _CountingIG.explained = 0

    def union():
        cap = CAPPriorTransformer(CausalLMScorer(tiny_llm), n_samples=8, cache_dir=tmp_path / "s",
                                  progress_bar=False)
        return PriorUnion([("cap", cap), ("ig", _CountingIG(_ref(tiny_encoder), n_steps=2, progress_bar=False)),
                           ("lime", LIMEPriorTransformer(_ref(tiny_encoder), num_samples=20, progress_bar=False))])

    u = union().fit(X, Y)
    assert checks["PriorUnion"] == 1
    assert len(ScoreCache(tmp_path / "s")) == 0 and _CountingIG.explained == 0  # no prior computed
    ig, lime = u.named_transformers_["ig"], u.named_transformers_["lime"]
    assert ig.estimator_ is lime.estimator_  # one shared reference model, trained once

    checks.clear()
    P = union().fit_transform(X, Y)
    assert checks["PriorUnion"] == 1 and checks["CAPPriorTransformer"] == 1 and checks["CausalLMScorer"] == 1
    assert _CountingIG.explained == len(X) and len(ScoreCache(tmp_path / "s")) > 0
    assert np.isfinite(np.asarray(P)).any()
