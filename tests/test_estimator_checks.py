"""scikit-learn's estimator checks on every public estimator.

The estimators take texts, not 2-D numeric arrays, and say so in their tags
(``input_tags.string=True, two_d_array=False``); scikit-learn then skips its
numeric-data checks with that reason. We run every check that does not need
numeric data, and text versions of the ones that do (fit returns self, no
parameter is changed by fit, idempotent fit, order and subset invariance,
unfitted errors, y required).
"""

import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec
from sklearn.utils import get_tags

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, GlobalPriorTransformer,
                         IGPriorTransformer, LIMEPriorTransformer, PriorUnion)
from sklearn_cap.scorers import CausalLMScorer

from test_classifier import planted_data

API_CHECKS = [
    ec.check_estimator_cloneable, ec.check_estimator_tags_renamed, ec.check_valid_tag_types,
    ec.check_estimator_repr, ec.check_no_attributes_set_in_init, ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order, ec.check_parameters_default_constructible, ec.check_get_params_invariance,
    ec.check_set_params,
]


def _clf(folder):
    return ExplanationGuidedClassifier(folder, beta=0, epochs=2, batch_size=16, learning_rate=2e-3, random_state=0,
                                       progress_bar=False, attribution="grad_input")


@pytest.fixture(scope="module")
def estimators(tiny_llm, tiny_encoder, tmp_path_factory):
    cache = tmp_path_factory.mktemp("checks_cache")
    cap = CAPPriorTransformer(CausalLMScorer(tiny_llm), n_samples=8, cache_dir=cache, progress_bar=False)
    return {
        "cap": cap,
        "ig": IGPriorTransformer(_clf(tiny_encoder), n_steps=4, progress_bar=False),
        "lime": LIMEPriorTransformer(_clf(tiny_encoder), num_samples=50, progress_bar=False),
        "union": PriorUnion([("cap", clone(cap)), ("lime", LIMEPriorTransformer(_clf(tiny_encoder), num_samples=50,
                                                                                 progress_bar=False))]),
        "clf": _clf(tiny_encoder),
        "global": GlobalPriorTransformer(CausalLMScorer(tiny_llm), cache_dir=cache, progress_bar=False),
    }


NAMES = ["cap", "ig", "lime", "union", "clf", "global"]


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_declares_text_input_and_runs_what_applies(estimators, name):
    est = estimators[name]
    tags = get_tags(est)
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = ec.check_estimator(est, on_fail="raise")
    assert all(r["status"] == "passed" for r in results)
    assert any("requires input  of type" in str(w.message) or "requires input of type" in str(w.message)
               for w in caught)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_api_checks(estimators, name, check):
    est = clone(estimators[name])
    check(type(est).__name__, est)


@pytest.fixture(scope="module")
def data():
    X, y, _ = planted_data(40, seed=9)
    return X, np.asarray(y)


def _output(est, X, y):
    out = est.fit_transform(X, y) if hasattr(est, "fit_transform") else est.fit(X, y).predict_proba(X)
    return np.asarray(out, dtype=float)


@pytest.mark.parametrize("name", NAMES)
def test_text_versions_of_the_numeric_checks(estimators, data, name):
    X, y = data
    est = clone(estimators[name])
    params_before = joblib.hash(est.get_params())
    with pytest.raises(NotFittedError):
        est.transform(X) if hasattr(est, "transform") else est.predict(X)
    assert est.fit(X, y) is est  # fit returns self
    assert joblib.hash(est.get_params()) == params_before  # fit changed no parameter
    public = [k for k in vars(est) if not k.startswith("_") and k not in est.get_params()]
    assert all(k.endswith("_") for k in public), public  # fitted attributes end in "_"
    with pytest.raises((ValueError, TypeError)):
        clone(est).fit(X, None)  # y is required, with a clear error
    first = _output(clone(est), X, y)
    assert np.allclose(first, _output(clone(est), X, y), equal_nan=True, atol=1e-5)  # idempotent


def test_classifier_order_and_subset_invariance(estimators, data):
    X, y = data
    clf = clone(estimators["clf"]).fit(X, y)
    proba = clf.predict_proba(X)
    perm = np.random.default_rng(0).permutation(len(X))
    assert np.allclose(clf.predict_proba([X[i] for i in perm]), proba[perm], atol=1e-5)
    assert np.allclose(np.vstack([clf.predict_proba(X[i:i + 7]) for i in range(0, len(X), 7)]), proba, atol=1e-5)
