"""
CAP Hybrid in one Pipeline, searched with GridSearchCV
======================================================

Searched over beta and lambda.

A 60-text BANKING77 subset (6 intents x 10 texts), the embedded models with
tiny settings: CAP scored by the embedded SmolLM2 LLM, IG and LIME priors of a
reference MiniLM classifier (trained once per fit and shared by both), and an
explanation-guided MiniLM classifier. The grid is 2 x 2 (``clf__beta`` x
``priors__cap__lam``) with 2 folds. Printed: the time, the number of LLM calls
the grid made against the number a single fit per fold makes (they are equal:
changing ``lam`` never re-scores), the best parameters, a prediction and an
explanation from ``best_estimator_``.

Run::

    SKLEARN_CAP_DATA=../shared/datasets python examples/hybrid_grid_search.py
"""

import tempfile
import time

import numpy as np
from joblib import Memory
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, IGPriorTransformer, LIMEPriorTransformer,
                         PriorUnion, embedded)
from sklearn_cap.cache import ScoreCache
from sklearn_cap.datasets import load_banking77, sample_few_shot

INTENTS = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "card_swallowed",
           "card_not_working", "activate_my_card"]


def make_pipeline(cache_dir, memory):
    reference = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=4, learning_rate=2e-4, batch_size=16,
                                            random_state=0, progress_bar=False)
    priors = PriorUnion([
        ("cap", CAPPriorTransformer(embedded.LLM, n_samples=8, cache_dir=cache_dir, progress_bar=False)),
        ("ig", IGPriorTransformer(reference, n_steps=8, progress_bar=False)),
        ("lime", LIMEPriorTransformer(reference, num_samples=100, progress_bar=False)),
    ], memory=memory)
    clf = ExplanationGuidedClassifier(embedded.ENCODER, attribution="grad_input", epochs=4, learning_rate=2e-4,
                                      batch_size=16, random_state=0, progress_bar=False)
    return Pipeline([("priors", priors), ("clf", clf)], memory=memory)


def main():
    X, y = load_banking77("train", return_X_y=True)
    keep = np.isin(y, INTENTS)
    X, y, _ = sample_few_shot(X[keep], y[keep], 10, random_state=0)
    X = list(X)
    work = tempfile.mkdtemp(prefix="sklearn_cap_example_")
    memory = Memory(f"{work}/memory", verbose=0)
    cv = StratifiedKFold(2, shuffle=True, random_state=0)

    start = time.perf_counter()
    search = GridSearchCV(make_pipeline(f"{work}/grid_scores", memory),
                          {"clf__beta": [0.5, 2.0], "priors__cap__lam": [0.1, 1.0]}, cv=cv)
    search.fit(X, y)
    took = time.perf_counter() - start
    grid_calls = len(ScoreCache(f"{work}/grid_scores"))

    single = make_pipeline(f"{work}/single_scores", None)
    for train, _ in cv.split(X, y):
        clone(single).fit([X[i] for i in train], y[train])
    single_calls = len(ScoreCache(f"{work}/single_scores"))

    print(f"GridSearchCV, 2 x 2 grid, 2 folds, {len(X)} texts: {took:.0f} s")
    print(f"LLM calls: grid search (2 folds x 4 candidates, then the refit on all texts) {grid_calls}; "
          f"one fit per fold {single_calls}")
    print(f"best parameters: {search.best_params_}, cross-validated accuracy {search.best_score_:.3f}")
    texts = ["I still haven't received my new card", "The ATM ate my card"]
    print("predictions:", list(search.best_estimator_.predict(texts)))
    ex = search.best_estimator_[-1].explain(texts)
    for i, text in enumerate(texts):
        print(f"  {ex.targets[i]}: " + "  ".join(f"{w}:{s:+.2f}" for w, s in ex.to_list(i)))


if __name__ == "__main__":
    main()
