"""A grid search over the CAP Hybrid pipeline, unchanged, on a Dask cluster sharing one score cache."""

import json
import os
import sqlite3
import sys
import time

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, IGPriorTransformer,
                         LIMEPriorTransformer, PriorUnion)
from sklearn_cap.cache import ScoreCache
from sklearn_cap.scorers import CausalLMScorer

from test_classifier import planted_data

distributed = pytest.importorskip("distributed", reason="pip install 'dask[distributed]' to run the Dask tests")


class LedgerScorer(CausalLMScorer):
    """The real causal-LM scorer that also appends every prompt it scores, with its process id, to a file.

    ``latency`` seconds per call stand for a remote server's round trip, so
    that the workers' scoring overlaps in time as it does with a real LLM.
    """

    def __init__(self, model, *, ledger=None, latency=0.0, batch_size=32):
        super().__init__(model, batch_size=batch_size)
        self.ledger = ledger
        self.latency = latency

    def _score(self, texts, label_names, task, progress_bar):
        time.sleep(self.latency)
        out = super()._score(texts, label_names, task, progress_bar)
        lines = "".join(json.dumps([os.getpid(), t, a]) + "\n" for t, a in zip(texts, label_names))
        fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, lines.encode("utf-8"))  # one appending write: lines from two processes never mix
        finally:
            os.close(fd)
        return out


def _pipeline(tiny_llm, tiny_encoder, cache_dir, ledger):
    ref = ExplanationGuidedClassifier(tiny_encoder, beta=0, epochs=2, batch_size=16, learning_rate=2e-3,
                                      random_state=0, progress_bar=False, attribution="grad_input")
    cap = CAPPriorTransformer(LedgerScorer(tiny_llm, ledger=str(ledger), latency=0.05), n_samples=8,
                              cache_dir=str(cache_dir), chunk_size=8, progress_bar=False)
    union = PriorUnion([("cap", cap),
                        ("ig", IGPriorTransformer(ref, n_steps=4, progress_bar=False)),
                        ("lime", LIMEPriorTransformer(ref, num_samples=50, progress_bar=False))])
    clf = ExplanationGuidedClassifier(tiny_encoder, beta=1.0, epochs=2, batch_size=16, learning_rate=2e-3,
                                      random_state=0, progress_bar=False, attribution="grad_input")
    return Pipeline([("priors", union), ("clf", clf)])


def _ledger(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _scores(folder):
    with sqlite3.connect(os.path.join(folder, "scores.sqlite")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # every claim was settled
        return dict(conn.execute("SELECT key, value FROM scores"))


def test_grid_search_on_dask_scores_each_prompt_once(tiny_llm, tiny_encoder, tmp_path):
    import cloudpickle
    import joblib
    from distributed import Client, LocalCluster

    # The workers cannot import this test module: ship LedgerScorer by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, y, _ = planted_data(24, seed=5)
    y = np.asarray(y)
    # Three folds: any two training sets share a third of the texts, and the
    # candidates of one fold share all of them, so concurrent fits want the same prompts.
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = {"clf__beta": [0.5, 2.0], "priors__cap__lam": [0.1, 1.0]}

    pipe = _pipeline(tiny_llm, tiny_encoder, tmp_path / "shared", tmp_path / "ledger.jsonl")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster), joblib.parallel_backend("dask"):
        dask_search = GridSearchCV(pipe, grid, cv=cv, refit=False, error_score="raise").fit(list(X), y)

    scored = _ledger(tmp_path / "ledger.jsonl")
    pairs = [(t, a) for _, t, a in scored]
    assert len({pid for pid, _, _ in scored}) == 2  # both workers scored ...
    assert len(pairs) == len(set(pairs))  # ... and no prompt was scored twice
    shared = _scores(tmp_path / "shared")
    assert len(shared) == len(pairs)  # every scored prompt stored, once

    # The same search in this process, from an empty cache: the same scores and the same results.
    serial_pipe = _pipeline(tiny_llm, tiny_encoder, tmp_path / "serial", tmp_path / "serial.jsonl")
    serial = GridSearchCV(serial_pipe, grid, cv=cv, refit=False, error_score="raise").fit(list(X), y)
    alone = _scores(tmp_path / "serial")
    assert alone.keys() == shared.keys()
    np.testing.assert_allclose([shared[k] for k in alone], list(alone.values()), atol=1e-4)
    assert np.isfinite(dask_search.cv_results_["mean_test_score"]).all()
    np.testing.assert_allclose(dask_search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"],
                               atol=0.1)


def _open_together(folders, barrier):
    """Open each new cache at the same moment as the other processes, and store a score in it."""
    errors = []
    for folder in folders:
        barrier.wait()
        cache = ScoreCache(folder)
        try:
            cache.put_many({str(os.getpid()): 1.0})
        except OSError as exc:
            errors.append(str(exc))
        finally:
            cache.close()
    return errors


def test_processes_opening_a_new_cache_together_all_succeed(tmp_path):
    # Before the journal-mode change was retried, about one fresh folder in six failed here with
    # "database is locked", which is how the Dask grid search above failed now and then.
    import multiprocessing

    n_procs = 4
    folders = [tmp_path / f"c{i}" for i in range(30)]
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n_procs)
        with ctx.Pool(n_procs) as pool:
            errors = pool.starmap(_open_together, [(folders, barrier)] * n_procs)
    assert sum(errors, []) == []
    for folder in folders:
        assert len(ScoreCache(folder)) == n_procs


def test_claims_split_keys_between_owners(tmp_path):
    a, b = ScoreCache(tmp_path), ScoreCache(tmp_path)  # two connections, as two processes would hold
    keys = [f"k{i}" for i in range(10)]
    first = a.claim(keys, "A", 4)
    second = b.claim(keys, "B", 10)
    assert first == keys[:4] and second == keys[4:]
    assert b.claim(keys, "B", 10) == keys[4:]  # re-claiming one's own keys is allowed
    a.put_many({k: -1.0 for k in first})
    assert b.claim(keys, "C", 10) == []  # scored or held by B
    b.release("B")
    assert b.claim(keys, "C", 10) == keys[4:]


def test_claims_of_a_dead_owner_expire(tmp_path):
    dead = ScoreCache(tmp_path, claim_ttl=-1.0)  # its claims are already stale
    assert dead.claim(["x", "y"], "dead", 5) == ["x", "y"]
    assert ScoreCache(tmp_path).claim(["x", "y"], "alive", 5) == ["x", "y"]

