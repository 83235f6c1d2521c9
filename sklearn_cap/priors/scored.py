"""What priors scored by a model that sees the label space share: the task prompt, the scorer, the cache.

:class:`ScorerPrior` is the base of :class:`~sklearn_cap.priors.CAPPriorTransformer`
(per-text masked variants) and :class:`~sklearn_cap.priors.GlobalPriorTransformer`
(one query per vocabulary word): both build the task from the label space,
build the scorer, and score (text, label) pairs through the persistent cache
in a :class:`ScoringSession`, committing every ``chunk_size`` pairs.

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
from sklearn import config_context
from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, Options
from sklearn.utils.validation import check_is_fitted

from ..cache import MemoryCache, ScoreCache, claim_owner, get_cache_dir, score_key
from ..progress import PROGRESS_BAR, progress
from ..scorers import Task, build_scorer
from ..validation import check_known_labels, check_label_space, validate_params
from .base import BasePrior

__all__ = ["ScorerPrior", "ScoringSession"]

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


class ScoringSession:
    """One scoring run of a :class:`ScorerPrior`: (text, answer) pairs through the cache, then the scorer.

    Open it with ``with prior._session() as session``: it checks the
    scorer's parameters once (its per-chunk ``score`` calls check nothing
    again), reads the scorer's identity anew, and closes the cache at the
    end. :meth:`keys` names pairs, :meth:`score` makes sure they have a
    score, :meth:`values` reads them; ``n_cached`` and ``n_scored`` count
    the pairs found in the cache and sent to the scorer.

    Parameters
    ----------
    prior : ScorerPrior
        A fitted prior: its ``scorer_``, ``task_``, ``chunk_size``,
        ``progress_bar`` and cache settings are used.
    """

    def __init__(self, prior):
        self.prior = prior
        validate_params(prior.scorer_)
        self.scorer_id = (prior.scorer_.identity, prior.task_.fingerprint)
        self.store = prior._store()
        self.pairs, self.scores = {}, {}
        self.n_cached = self.n_scored = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.store.close()

    def keys(self, texts, answers):
        """Cache keys of the pairs ``(texts[i], answers[i])``, remembered for :meth:`score`."""
        keys = [score_key(*self.scorer_id, t, a) for t, a in zip(texts, answers)]
        self.pairs.update(zip(keys, zip(texts, answers)))
        return keys

    def values(self, keys):
        """The scores of ``keys`` (each scored by :meth:`score` before)."""
        return [self.scores[k] for k in keys]

    def score(self, keys):
        """Score ``keys`` not scored yet: from the cache, then the scorer for what is missing.

        Missing keys are claimed in the cache a chunk at a time before they
        are scored, so processes sharing the cache (grid-search workers)
        never score the same prompt twice: keys another process claimed are
        waited for and read back.
        """
        prior, store, seen, pairs = self.prior, self.store, self.scores, self.pairs
        wanted = list(dict.fromkeys(k for k in keys if k not in seen))
        found = store.get_many(wanted)
        seen.update(found)
        todo = [k for k in wanted if k not in found]
        self.n_cached += len(found)
        owner = claim_owner()
        step = int(prior.chunk_size)
        name = type(prior).__name__
        waiting = _Waiting(store, name)
        with progress(total=len(todo), enabled=prior.progress_bar if todo else False,
                      desc=f"{name} scoring", unit="prompt") as bar, _sigterm_unwinds(), \
                config_context(skip_parameter_validation=True):  # checked once, when the session opened
            try:
                while todo:
                    chunk = store.claim(todo, owner, step)
                    if chunk:
                        waiting.done()
                        new = dict(zip(chunk, prior.scorer_.score(
                            [pairs[k][0] for k in chunk], [pairs[k][1] for k in chunk], prior.task_)))
                        store.put_many(new)  # committed at once: an interruption loses at most one chunk
                        self.n_scored += len(new)
                    else:  # everything left is being scored elsewhere
                        waiting.tick(todo)
                        time.sleep(_POLL_SECONDS)
                        new = store.get_many(todo)
                        self.n_cached += len(new)
                    seen.update(new)
                    todo = [k for k in todo if k not in new]
                    bar.update(len(new))
                waiting.done()
            finally:
                store.release(owner)


class ScorerPrior(BasePrior):
    """Base of priors scored by a model over the whole label space.

    Subclasses have the parameters ``scorer``, ``labels``, ``instruction``,
    ``label_descriptions``, ``cache_dir``, ``chunk_size``, ``claim_ttl`` and
    ``progress_bar``, whose constraints are declared here once. They
    implement ``_fit(texts, y)`` (after :meth:`_fit_task`) and
    ``_priors(texts, y)``, which returns the priors and the fitted counts
    that ``fit_transform`` keeps (``{"n_scored_": ...}``); each public method
    here checks the parameters and the data once and calls those.
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

    _fitted_attribute = "task_"  # set last by ``_fit``: what ``compute_priors`` checks

    # The scorer is a user's object, not checked with these parameters: nested checks stay on,
    # and each scoring session checks it once.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Learn the label space, build the task prompt, and what the prior needs (see the class).

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Labels, all in ``labels`` when that is given; the label space is
            ``labels``, else the classes seen in ``y``.

        Returns
        -------
        self
            The fitted prior.
        """
        self._fit(*self.check_fit_data(X, y))
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None):
        """Fit, then return each training text's prior for its gold label (one scoring run).

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text (required despite the default).

        Returns
        -------
        WordAttributions
            One row per text, one value per word (NaN: no prior).
        """
        texts, y = self.check_fit_data(X, y)
        self._fit(texts, y)
        priors, counts = self._priors(texts, y)
        for name, value in counts.items():
            setattr(self, name, value)
        return priors

    def compute_priors(self, X, y):
        """Priors of labelled texts after ``fit``, using (and filling) the score cache; sets no attribute.

        Parameters
        ----------
        X : list of str
            Texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold labels, each in ``classes_``.

        Returns
        -------
        WordAttributions
            One row per text; ``np.asarray`` gives the priors by word position.
        """
        check_is_fitted(self, self._fitted_attribute)
        validate_params(self)
        texts, y = self.check_fit_data(X, y)
        check_known_labels(y, self.classes_, what="the label space")
        return self._priors(texts, y)[0]

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

    def _session(self):
        """A :class:`ScoringSession` of this prior (use it in a ``with`` block)."""
        return ScoringSession(self)
