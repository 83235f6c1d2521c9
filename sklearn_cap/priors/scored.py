"""What priors scored by a model that sees the label space share: the task prompt, the scorer, the cache.

:class:`ScorerPrior` is the base of :class:`~sklearn_cap.priors.CAPPriorTransformer`
(per-text masked variants) and :class:`~sklearn_cap.priors.GlobalPriorTransformer`
(one query per vocabulary word): both build the task from the label space,
build the scorer, and score (text, label) pairs through the persistent cache,
committing every ``chunk_size`` pairs.
"""

import os
import socket
import time
import uuid
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, Options

from ..cache import MemoryCache, ScoreCache, get_cache_dir
from ..progress import PROGRESS_BAR, progress
from ..scorers import Task, build_scorer
from ..validation import check_known_labels, check_label_space
from .base import BasePrior

__all__ = ["ScorerPrior"]

_POLL_SECONDS = 0.5


class ScorerPrior(BasePrior):
    """Base of priors scored by a model over the whole label space.

    Subclasses have the parameters ``scorer``, ``labels``, ``instruction``,
    ``label_descriptions``, ``cache_dir``, ``chunk_size`` and ``progress_bar``,
    whose constraints are declared here once.
    """

    _parameter_constraints = {
        "scorer": [HasMethods(["score"]), str, os.PathLike],
        "instruction": [str],
        "labels": ["array-like", None],
        "label_descriptions": [dict, None],
        "cache_dir": [None, str, os.PathLike, Options(bool, {False})],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "progress_bar": PROGRESS_BAR,
    }

    def _fit_task(self, y):
        """Label space, task prompt and scorer (``classes_``, ``task_``, ``scorer_``, ``scorer_identity_``)."""
        classes = check_label_space(np.unique(y) if self.labels is None else self.labels)
        check_known_labels(y, classes, what="the label space (labels=...)")
        self.classes_ = classes
        self.task_ = Task.from_labels(classes, self.instruction, self.label_descriptions)
        self.scorer_ = build_scorer(self.scorer)
        self.scorer_identity_ = self.scorer_.identity  # fails here, early, for a model that cannot load

    def _store(self):
        if self.cache_dir is False:
            if not hasattr(self, "_memory_store"):
                self._memory_store = MemoryCache()
            return self._memory_store
        return ScoreCache(get_cache_dir(self.cache_dir))

    def _scores(self, store, keys, pairs, seen):
        """Add the scores of ``keys`` to ``seen``: from the cache, then the scorer for what is missing.

        ``pairs`` maps each key to its (text, answer); counts go to
        ``n_cached_`` and ``n_scored_``. Missing keys are claimed in the
        cache a chunk at a time before they are scored, so processes sharing
        the cache (grid-search workers) never score the same prompt twice:
        keys another process claimed are waited for and read back.
        """
        wanted = list(dict.fromkeys(k for k in keys if k not in seen))
        found = store.get_many(wanted)
        seen.update(found)
        todo = [k for k in wanted if k not in found]
        self.n_cached_ += len(found)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        step = int(self.chunk_size)
        with progress(total=len(todo), enabled=self.progress_bar if todo else False,
                      desc=f"{type(self).__name__} scoring", unit="prompt") as bar:
            try:
                while todo:
                    chunk = store.claim(todo, owner, step)
                    if chunk:
                        new = dict(zip(chunk, self.scorer_.score(
                            [pairs[k][0] for k in chunk], [pairs[k][1] for k in chunk], self.task_)))
                        store.put_many(new)  # committed at once: an interruption loses at most one chunk
                        self.n_scored_ += len(new)
                    else:  # everything left is being scored elsewhere
                        time.sleep(_POLL_SECONDS)
                        new = store.get_many(todo)
                        self.n_cached_ += len(new)
                    seen.update(new)
                    todo = [k for k in todo if k not in new]
                    bar.update(len(new))
            finally:
                store.release(owner)
