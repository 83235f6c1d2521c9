import pickle

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_cap import CAPPriorTransformer, WordAttributions
from sklearn_cap.priors.cap import _text_seed, sample_masks
from sklearn_cap.text import masked_text
from sklearn_cap.scorers import CausalLMScorer

X = ["my card has not arrived yet", "i lost my card yesterday please block it",
     "why was i charged a fee for the transfer", "top up with apple pay", "my transfer is pending"]
Y = ["card_arrival", "lost_or_stolen_card", "transfer_fee_charged", "top_up_by_apple_pay", "pending_transfer"]


def _cap(folder, tmp_path, **kw):
    kw.setdefault("n_samples", 12)
    return CAPPriorTransformer(scorer=CausalLMScorer(folder, batch_size=8), cache_dir=tmp_path / "c",
                               progress_bar=False, **kw)


def test_priors_shape_and_nan_padding(tiny_llm, tmp_path):
    P = _cap(tiny_llm, tmp_path).fit_transform(X, Y)
    assert isinstance(P, WordAttributions)
    M = np.asarray(P)
    n_words = [len(t.split()) for t in X]
    assert M.shape == (5, max(n_words))
    for row, d in zip(M, n_words):
        assert np.isfinite(row[:d]).all() and np.isnan(row[d:]).all()


def test_priors_are_the_ridge_solution_of_the_scores(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path, lam=0.3, labels=Y)
    P = np.asarray(cap.fit_transform(X[:1], Y[:1]))
    # recompute by hand: same masks, same scorer, sklearn's Ridge
    from sklearn.linear_model import Ridge
    from sklearn_cap.text import segment

    _, spans = segment(X[0])
    M = sample_masks(len(spans), 12, _text_seed(cap.seed_, X[0]))
    queries = [masked_text(X[0], spans, m) for m in M]
    z = CausalLMScorer(tiny_llm).score(queries, ["card arrival"] * len(queries), cap.task_)
    assert np.allclose(P[0, : len(spans)], Ridge(alpha=0.3).fit(M, z).coef_, atol=1e-4)


def test_changing_lam_rescoring_nothing(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path)
    P1 = np.asarray(cap.fit_transform(X, Y))
    first = cap.n_scored_
    assert first > 0 and cap.n_cached_ == 0
    # duplicates are scored once: never more prompts than masks
    assert first <= 12 * 5
    cap.set_params(lam=5.0)
    P2 = np.asarray(cap.fit_transform(X, Y))
    assert cap.n_scored_ == 0 and cap.n_cached_ == first
    assert not np.allclose(np.nan_to_num(P1), np.nan_to_num(P2))
    # a clone (what GridSearchCV does) shares the persistent cache
    c = clone(cap)
    c.fit_transform(X, Y)
    assert c.n_scored_ == 0


def test_scorer_object_counts_no_calls_on_cache_hits(tiny_llm, tmp_path):
    scorer = CausalLMScorer(tiny_llm)
    cap = CAPPriorTransformer(scorer=scorer, n_samples=8, cache_dir=tmp_path, progress_bar=False)
    cap.fit_transform(X, Y)
    n = cap.scorer_.n_scored_
    assert n > 0 and not hasattr(scorer, "n_scored_")  # fit scores with a copy: the parameter is untouched
    cap.set_params(lam=2.0).fit_transform(X, Y)
    assert getattr(cap.scorer_, "n_scored_", 0) == 0


def test_in_memory_cache(tiny_llm):
    cap = CAPPriorTransformer(scorer=CausalLMScorer(tiny_llm), n_samples=8, cache_dir=False, progress_bar=False)
    cap.fit_transform(X, Y)
    assert cap.n_scored_ > 0
    cap.set_params(lam=3.0).fit_transform(X, Y)
    assert cap.n_scored_ == 0


class _Interrupting(CausalLMScorer):
    """The real scorer, interrupted (as by Ctrl-C) on its third batch."""

    def _score(self, texts, answers, task, progress_bar):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return super()._score(texts, answers, task, progress_bar)


def test_interrupted_extraction_resumes_from_cache(tiny_llm, tmp_path):
    kw = dict(n_samples=12, cache_dir=tmp_path, chunk_size=7, progress_bar=False)
    cap = CAPPriorTransformer(scorer=_Interrupting(tiny_llm), **kw)
    with pytest.raises(KeyboardInterrupt):
        cap.fit_transform(X, Y)
    resumed = CAPPriorTransformer(scorer=CausalLMScorer(tiny_llm), **kw)
    P = np.asarray(resumed.fit_transform(X, Y))
    assert resumed.n_cached_ == 14  # the two chunks committed before the interruption
    fresh = CAPPriorTransformer(scorer=CausalLMScorer(tiny_llm), **{**kw, "cache_dir": tmp_path / "fresh"})
    P_fresh = np.asarray(fresh.fit_transform(X, Y))
    assert resumed.n_scored_ + resumed.n_cached_ == fresh.n_scored_
    assert np.allclose(P, P_fresh, equal_nan=True, atol=1e-5)


def test_same_text_same_masks_in_any_subset(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path)
    full = np.asarray(cap.fit_transform(X, Y))
    cap.fit(X, Y)
    fitted = {k: v for k, v in vars(cap).items() if k.endswith("_")}
    sub = np.asarray(cap.compute_priors(X[2:4], Y[2:4]))
    assert getattr(cap.scorer_, "n_scored_", 0) == 0  # all from the cache
    # compute_priors writes no fitted attribute: the counts of fit_transform stay as they were
    assert {k: v for k, v in vars(cap).items() if k.endswith("_")} == fitted
    assert np.allclose(full[2:4, : sub.shape[1]], sub, equal_nan=True)


def test_random_state_changes_masks(tiny_llm, tmp_path):
    a = np.asarray(_cap(tiny_llm, tmp_path, random_state=0).fit_transform(X, Y))
    b = np.asarray(_cap(tiny_llm, tmp_path, random_state=1).fit_transform(X, Y))
    c = np.asarray(_cap(tiny_llm, tmp_path, random_state=0).fit_transform(X, Y))
    assert np.allclose(a, c, equal_nan=True) and not np.allclose(a, b, equal_nan=True)


def test_short_texts_use_leave_one_out(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path)
    texts, labels = ["refund", "card arrived"], ["card_arrival", "card_arrival"]
    P = np.asarray(cap.fit(X + texts, Y + labels).compute_priors(texts, labels))
    s = CausalLMScorer(tiny_llm)
    z = s.score(["refund", "", "card arrived", "arrived", "card"], ["card arrival"] * 5, cap.task_)
    assert P[0, 0] == pytest.approx(z[0] - z[1], abs=1e-4)
    assert P[1, :2] == pytest.approx([z[2] - z[3], z[2] - z[4]], abs=1e-4)
    assert cap.scorer_.n_scored_ == 5


def test_transform_calls_no_scorer(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path).fit(X, Y)
    out = cap.transform(["anything at all", "more"])
    assert isinstance(out, WordAttributions) and not out.has_values
    assert not hasattr(cap.scorer_, "n_scored_")


@pytest.mark.parametrize(
    "X_bad, y_bad, exc, msg",
    [
        (["fine text", ""], ["a", "b"], ValueError, r"X\[1\] = '' has no word"),
        (["fine text", "   "], ["a", "b"], ValueError, "has no word"),
        (["fine text", None], ["a", "b"], TypeError, "must be a str"),
        (["fine text", "more"], ["a"], ValueError, "different lengths: 2 texts and 1 labels"),
        ("a single string", ["a"], TypeError, "single string"),
    ],
)
def test_bad_input(tiny_llm, tmp_path, X_bad, y_bad, exc, msg):
    with pytest.raises(exc, match=msg):
        _cap(tiny_llm, tmp_path).fit_transform(X_bad, y_bad)


def test_label_outside_label_space(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path, labels=["card_arrival", "lost_or_stolen_card"])
    with pytest.raises(ValueError, match=r"not seen in the label space .*\(2 known labels"):
        cap.fit_transform(X[:3], Y[:3])
    cap = _cap(tiny_llm, tmp_path).fit(X, Y)
    with pytest.raises(ValueError, match="not seen in the label space"):
        cap.compute_priors(["new text here"], ["never_seen"])


@pytest.mark.parametrize("params, msg", [({"lam": 0}, "'lam' parameter"), ({"lam": float("nan")}, "'lam' parameter"),
                                         ({"n_samples": 0}, "n_samples")])
def test_bad_params_raise_at_fit(tiny_llm, tmp_path, params, msg):
    cap = _cap(tiny_llm, tmp_path, **params)  # __init__ validates nothing
    with pytest.raises(ValueError, match=msg):
        cap.fit(X, Y)


def test_fit_transform_needs_y(tiny_llm, tmp_path):
    with pytest.raises(ValueError, match="needs the labels"):
        _cap(tiny_llm, tmp_path).fit_transform(X)


def test_sklearn_protocol(tiny_llm, tmp_path):
    cap = _cap(tiny_llm, tmp_path, lam=0.5)
    assert cap.get_params()["lam"] == 0.5 and cap.get_params()["scorer__batch_size"] == 8
    cap.set_params(scorer__batch_size=2)
    assert cap.scorer.batch_size == 2
    P = np.asarray(cap.fit_transform(X, Y))
    again = pickle.loads(pickle.dumps(cap))
    sent = again.scorer_.n_scored_
    assert np.allclose(np.asarray(again.compute_priors(X, Y)), P, equal_nan=True)
    assert again.scorer_.n_scored_ == sent  # all from the cache
    with pytest.raises(Exception, match="not fitted"):
        clone(cap).transform(X)


def test_adaptive_sampling_uses_a_prefix_of_the_masks(tiny_llm, tmp_path):
    full = _cap(tiny_llm, tmp_path, n_samples=48)
    P_full = np.asarray(full.fit_transform(X, Y))
    assert (full.n_masks_ == 48).all()
    adaptive = _cap(tiny_llm, tmp_path, n_samples=48, adaptive=True, adaptive_tol=0.5)
    P = np.asarray(adaptive.fit_transform(X, Y))
    # every mask it used was one of the full run's: all from the cache
    assert adaptive.n_scored_ == 0 and (adaptive.n_masks_ >= 16).all() and (adaptive.n_masks_ <= 48).all()
    # a text that used all 48 masks has the full run's prior
    done = adaptive.n_masks_ == 48
    assert np.allclose(P[done], P_full[done], equal_nan=True)
    strict = _cap(tiny_llm, tmp_path, n_samples=48, adaptive=True, adaptive_tol=0.999)
    strict.fit_transform(X, Y)
    assert (strict.n_masks_ >= adaptive.n_masks_).all() and strict.n_masks_.sum() > adaptive.n_masks_.sum()
