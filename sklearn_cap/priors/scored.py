"""What priors scored by a model that sees the label space share: the task prompt, the scorer, the cache.

:class:`ScorerPrior` is the base of :class:`~sklearn_cap.priors.CAPPriorTransformer`
(per-text masked variants) and :class:`~sklearn_cap.priors.GlobalPriorTransformer`
(one query per vocabulary word): both build the task from the label space,
build the scorer, and score (text, label) pairs through the persistent cache,
committing every ``chunk_size`` pairs.

Several processes may share one cache (grid-search workers): each *claims* the
prompts it scores, and the others wait for those scores. A run that waits
says so in the ``sklearn_cap`` log (INFO when it starts, naming the owner and
how long its claims may still hold; a WARNING when it has waited a minute).
Claims are released when scoring ends, fails, is interrupted (Ctrl-C) or the
process receives SIGTERM; a process of the same host that was killed outright
(SIGKILL) is seen to be gone by its PID, and claims of another host's dead
process expire after ``claim_ttl`` seconds.
"""

import contextlib
import logging
import os
import signal
import threading
import time
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, Options

from ..cache import MemoryCache, ScoreCache, claim_owner, get_cache_dir
from ..progress import PROGRESS_BAR, progress
from ..scorers import Task, build_scorer
from ..validation import check_known_labels, check_label_space
from .base import BasePrior

__all__ = ["ScorerPrior"]

_POLL_SECONDS = 0.5
_WARN_AFTER_S = 60.0
logger = logging.getLogger("sklearn_cap")


def _on_sigterm(signum, frame):
    # Unwind like Ctrl-C does, so `finally` blocks release this process's claims, then exit as SIGTERM would.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds():
    """Within the block, SIGTERM raises SystemExit(143) instead of killing the process on the spot.

    Only where nobody else handles SIGTERM (the default action) and in the
    main thread, the one place Python delivers signals; elsewhere claims of
    a dead process are found by its PID or expire.
    """
    install = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    if install:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        if install and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Waiting:
    """Log lines of a wait for prompts that other owners claimed: when it starts, when it drags, when it ends."""

    def __init__(self, store, who):
        self.store, self.who, self.since, self.warned = store, who, None, False

    def tick(self, todo):
        now = time.monotonic()
        if self.since is None:
            self.since = now
            logger.info("%s waits for %d prompts that another process is scoring: %s.", self.who, len(todo),
                        self._holders(todo))
        elif not self.warned and now - self.since > _WARN_AFTER_S:
            self.warned = True
            logger.warning(
                "%s has waited %.0f s for %d prompts that another process claimed: %s. If that process is "
                "gone, its claims expire at most claim_ttl seconds after it claimed them; a smaller "
                "claim_ttl (or a private cache_dir) waits less.", self.who, now - self.since, len(todo),
                self._holders(todo))

    def done(self):
        if self.since is not None:
            logger.info("%s waited %.1f s for scores of other processes.", self.who, time.monotonic() - self.since)
            self.since, self.warned = None, False

    def _holders(self, todo):
        held = self.store.claim_holders(todo)
        if not held:
            return "their claims were just released"
        return "; ".join(f"{n} claimed by {owner.rpartition(':')[0]} for up to {left:.0f} s more"
                         for owner, (n, left) in sorted(held.items()))


class ScorerPrior(BasePrior):
    """Base of priors scored by a model over the whole label space.

    Subclasses have the parameters ``scorer``, ``labels``, ``instruction``,
    ``label_descriptions``, ``cache_dir``, ``chunk_size``, ``claim_ttl`` and
    ``progress_bar``, whose constraints are declared here once.
    """

    _parameter_constraints = {
        "scorer": [HasMethods(["score"]), str, os.PathLike],
        "instruction": [str],
        "labels": ["array-like", None],
        "label_descriptions": [dict, None],
        "cache_dir": [None, str, os.PathLike, Options(bool, {False})],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "claim_ttl": [Interval(Real, 0, None, closed="neither")],
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
        return ScoreCache(get_cache_dir(self.cache_dir), claim_ttl=float(self.claim_ttl))

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
        owner = claim_owner()
        step = int(self.chunk_size)
        waiting = _Waiting(store, type(self).__name__)
        with progress(total=len(todo), enabled=self.progress_bar if todo else False,
                      desc=f"{type(self).__name__} scoring", unit="prompt") as bar, _sigterm_unwinds():
            try:
                while todo:
                    chunk = store.claim(todo, owner, step)
                    if chunk:
                        waiting.done()
                        new = dict(zip(chunk, self.scorer_.score(
                            [pairs[k][0] for k in chunk], [pairs[k][1] for k in chunk], self.task_)))
                        store.put_many(new)  # committed at once: an interruption loses at most one chunk
                        self.n_scored_ += len(new)
                    else:  # everything left is being scored elsewhere
                        waiting.tick(todo)
                        time.sleep(_POLL_SECONDS)
                        new = store.get_many(todo)
                        self.n_cached_ += len(new)
                    seen.update(new)
                    todo = [k for k in todo if k not in new]
                    bar.update(len(new))
                waiting.done()
            finally:
                store.release(owner)
