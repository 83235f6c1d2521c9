import numpy as np
import pytest
from sklearn.linear_model import Ridge

from sklearn_cap.priors.cap import ridge_cholesky, sample_masks, short_text_design
from sklearn_cap.text import masked_text, segment


@pytest.mark.parametrize("lam", [0.01, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("d", [3, 7, 20])
def test_ridge_cholesky_equals_sklearn_ridge(lam, d):
    rng = np.random.default_rng(d)
    M = sample_masks(d, 100, rng)
    z = M @ rng.normal(size=d) + rng.normal(scale=0.1, size=100) - 5.0
    ours = ridge_cholesky(M, z, lam)
    ref = Ridge(alpha=lam, fit_intercept=True, solver="cholesky").fit(M.astype(float), z).coef_
    assert np.allclose(ours, ref, atol=1e-10)


def test_ridge_handles_constant_column_and_duplicates():
    # A word kept in every mask has a centred column of zeros: lam keeps A definite.
    M = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 1], [1, 1, 1]])
    z = np.array([-1.0, -2.0, -1.0, -0.5])
    coef = ridge_cholesky(M, z, 0.1)
    assert coef[0] == pytest.approx(0.0)
    assert np.allclose(coef, Ridge(alpha=0.1).fit(M, z).coef_)


@pytest.mark.parametrize("d", [3, 4, 5, 10, 31])
def test_masks_follow_the_sampling_rule(d):
    M = sample_masks(d, 2000, np.random.default_rng(0))
    assert M.shape == (2000, d) and set(np.unique(M)) <= {0, 1}
    masked = d - M.sum(axis=1)
    lo, hi = 2, d // 2 + 1
    assert masked.min() >= lo and masked.max() <= hi
    # every allowed size is drawn, roughly uniformly
    counts = np.bincount(masked, minlength=hi + 1)[lo:]
    assert (counts > 0).all()
    assert counts.max() / counts.min() < 1.5 if hi > lo else True
    # every word is masked about equally often (uniform choice of words)
    per_word = (1 - M).mean(axis=0)
    assert per_word.max() - per_word.min() < 0.1


def test_masks_reproducible_and_too_short():
    a = sample_masks(8, 50, np.random.default_rng(3))
    b = sample_masks(8, 50, np.random.default_rng(3))
    assert (a == b).all()
    with pytest.raises(ValueError, match="at least 3 words"):
        sample_masks(2, 5, np.random.default_rng(0))


def test_short_text_design():
    assert short_text_design(1).tolist() == [[1], [0]]
    assert short_text_design(2).tolist() == [[1, 1], [0, 1], [1, 0]]


def test_masked_text_removes_only_masked_words():
    text = "Where's my card, please?"
    _, spans = segment(text)
    assert masked_text(text, spans, [1, 0, 1, 1]) == "Where's card, please?"
    assert masked_text(text, spans, [0, 0, 0, 0]) == ", ?"
    assert masked_text(text, spans, [1, 1, 1, 1]) == text
