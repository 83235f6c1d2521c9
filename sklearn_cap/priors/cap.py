"""CAP: the class-aware attribution prior (Zhang et al. 2025), all of its math.

For a labelled text with words ``w_1..w_d``:

1. draw ``n_samples`` masks; for each, ``s ~ Uniform{2, ..., floor(d/2) + 1}``
   words are masked uniformly at random. Row ``m_i`` of ``M`` (n x d) is 1
   where a word is kept, 0 where it is masked (:func:`sample_masks`);
2. ``z_i = log P(gold label | instruction, label space, masked text)``
   from a scorer (identical masked texts are scored once);
3. ridge regression with intercept, ``z ~ M alpha``: with ``M`` and ``z``
   centred, ``(M^T M + lam I) alpha = M^T z``, solved by Cholesky
   (:func:`ridge_cholesky`). ``alpha_j`` is word j's prior: how much keeping
   it raises the gold label's log-probability.

Texts of one or two words cannot follow the rule (``floor(d/2) + 1 < 2``
words would be left to mask, or all of them). Their prior is the
leave-one-out drop, ``alpha_j = z(full text) - z(text without w_j)``, a
documented fallback that needs ``d + 1`` scores (:func:`short_text_design`).
"""

import zlib
from numbers import Integral, Real

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.stats import spearmanr
from sklearn.utils._param_validation import Interval

from ..scorers import DEFAULT_INSTRUCTION
from ..text import WordAttributions, masked_text
from ..validation import RANDOM_STATE, seed_from
from .scored import ScorerPrior

__all__ = [
    "CAPPriorTransformer",
    "sample_masks",
    "ridge_cholesky",
    "short_text_design",
]

MIN_WORDS = 3
# Fewer masks than this cannot identify a text's words: the centred design of
# n masks has rank <= n - 1, so n = 1 gives all-zero priors and n = 2 a
# rank-one prior, and below ~8 the ridge penalty, not the data, decides
# most coefficients of a typical 8-12-word intent query.
MIN_SAMPLES = 8
_ROUND = 8  # masks added per text and round with adaptive=True


def sample_masks(n_words, n_samples, rng):
    """Draw the CAP design matrix for a text of ``n_words >= 3`` words.

    Rows are drawn one after the other, so the first ``k`` rows of a draw of
    ``n`` are the draw of ``k`` from the same generator: a run that stops
    early (``adaptive=True``) or one with a smaller ``n_samples`` uses the
    same masks, and the same cached scores, as a full one.

    Parameters
    ----------
    n_words : int
    n_samples : int
    rng : numpy.random.Generator

    Returns
    -------
    M : ndarray of shape (n_samples, n_words), dtype int8
        1 where the word is kept, 0 where masked. Each row masks ``s`` words,
        ``s`` uniform on ``{2, ..., n_words // 2 + 1}``.

    Examples
    --------
    >>> M = sample_masks(6, 4, np.random.default_rng(0))
    >>> M.shape, set((6 - M.sum(1)).tolist()) <= {2, 3, 4}
    ((4, 6), True)
    >>> bool((sample_masks(6, 2, np.random.default_rng(0)) == M[:2]).all())
    True
    """
    if n_words < MIN_WORDS:
        raise ValueError(f"sample_masks needs at least {MIN_WORDS} words, got {n_words}.")
    M = np.ones((n_samples, n_words), dtype=np.int8)
    for row in M:
        row[rng.choice(n_words, size=int(rng.integers(2, n_words // 2 + 2)), replace=False)] = 0
    return M


def short_text_design(n_words):
    """Design of the fallback for 1 or 2 words: the full text, then each single deletion."""
    return np.vstack([np.ones((1, n_words), dtype=np.int8), 1 - np.eye(n_words, dtype=np.int8)])


def ridge_cholesky(M, z, lam):
    """Ridge coefficients of ``z ~ M`` with an intercept, by Cholesky.

    Equals ``sklearn.linear_model.Ridge(alpha=lam).fit(M, z).coef_``: the
    columns of ``M`` and ``z`` are centred (which fits the intercept), then
    ``A = Mc^T Mc + lam I`` (symmetric positive definite for ``lam > 0``) is
    factored as ``L L^T`` and ``A alpha = Mc^T zc`` solved by forward and
    backward substitution. No inverse is formed.

    Examples
    --------
    >>> M = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    >>> ridge_cholesky(M, np.array([1.0, 2.0, 3.0, 0.5]), 0.1).round(3)
    array([ 0.408,  1.317, -0.603])
    """
    M = np.asarray(M, dtype=float)
    z = np.asarray(z, dtype=float)
    Mc = M - M.mean(axis=0)
    zc = z - z.mean()
    A = Mc.T @ Mc + float(lam) * np.eye(M.shape[1])
    return cho_solve(cho_factor(A, lower=True), Mc.T @ zc)


def _text_seed(seed, text):
    # Masks depend on the text, not on its position in X: the same text gets
    # the same masks in every fold, subset and order, so its scores are reused.
    return np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])


class CAPPriorTransformer(ScorerPrior):
    """Class-aware attribution priors from an LLM (or sentence encoder) that sees the whole label space.

    ``fit(X, y)`` learns the label space. ``fit_transform(X, y)`` (what a
    :class:`~sklearn.pipeline.Pipeline` calls while fitting) returns each
    text's CAP prior for its gold label. ``transform(X)`` on unlabelled texts
    returns the texts with no prior and calls no scorer, so a pipeline's
    ``predict`` never touches the LLM; :meth:`compute_priors` scores any
    labelled texts after fitting. Scores go to a persistent cache, so changing
    ``lam`` re-solves the ridge without a single new LLM call and an
    interrupted extraction resumes where it stopped.

    Parameters
    ----------
    scorer : BaseScorer or str, default="embedding"
        ``"embedding"``: :class:`~sklearn_cap.scorers.EmbeddingScorer` on
        the embedded MiniLM (the strong offline default). Any other string
        builds a :class:`~sklearn_cap.scorers.CausalLMScorer` (hub id, folder
        or ``.gguf`` path such as :data:`sklearn_cap.embedded.LLM`). Or pass
        a scorer object, e.g. :class:`~sklearn_cap.scorers.OpenAIScorer`.
    n_samples : int, default=100
        Masks per text (the paper uses 100); at least 8, since fewer masks
        cannot tell a text's words apart (1 mask gives all-zero priors, 2 a
        rank-one prior).
    lam : float, default=0.1
        Ridge penalty (> 0).
    adaptive : bool, default=False
        Score masks in rounds (16 per text, then 8 more per round, up to
        ``n_samples``) and stop a text once its word ranking is stable: the
        Spearman correlation of its priors from this round and the one
        before is at least ``adaptive_tol``. Fewer queries for the LLM path;
        the masks are a prefix of the full draw, so scores are shared with
        non-adaptive runs.
    adaptive_tol : float, default=0.95
        Stability threshold of ``adaptive``, in (0, 1].
    instruction : str, default=DEFAULT_INSTRUCTION
        Template with a ``{labels}`` placeholder for the label space.
    labels : array-like, default=None
        The label space (at least two labels: with one, every log-probability
        is 0 and every prior would be 0). None: the classes seen in ``y``.
        Pass it when the training data covers only part of the label space.
    label_descriptions : dict, default=None
        Raw label -> words shown to the model (default: the label with
        underscores and camel case turned into words).
    cache_dir : str, path-like or False, default=None
        Folder of the score cache; None: ``$SKLEARN_CAP_CACHE`` or
        ``~/.cache/sklearn_cap``. False keeps scores in memory only (lost
        with the object).
    chunk_size : int, default=256
        Prompts scored between two cache commits: at most this much work is
        lost when a run is interrupted.
    claim_ttl : float, default=600
        Seconds that a claim on prompts being scored holds in a shared cache
        (:class:`~sklearn_cap.cache.ScoreCache`): longer than one chunk takes
        to score. Other processes wait that long, at most, for the prompts of
        a process that died on another host; the claims of a dead process of
        this host are taken over at once. A wait is logged (logger
        ``"sklearn_cap"``).
    random_state : int, RandomState instance or None, default=0
        Seeds the masks. The default is fixed on purpose: the masks are part
        of the cache key, so a fixed seed is what makes re-fits free.
    progress_bar : bool or "auto", default="auto"

    Attributes
    ----------
    classes_ : ndarray
        The label space.
    task_ : Task
        Instruction with the label space written in, and the answers.
    scorer_ : BaseScorer
    scorer_identity_ : str
        What the cache keys scores by (weights fingerprint, dtype, device
        type, layout), as of ``fit``; ``compute_priors`` reads it anew.
    seed_ : int
        Seed the masks are drawn from.
    n_scored_ : int
        Pairs sent to the scorer by ``fit_transform`` (``compute_priors``
        sets no attribute: ``scorer_.n_scored_`` counts every call).
    n_cached_ : int
        Pairs ``fit_transform`` found in the cache.
    n_masks_ : ndarray of int
        Masks (or leave-one-out variants) each training text used.

    Examples
    --------
    >>> from sklearn_cap import CAPPriorTransformer
    >>> X = ["my card has not arrived yet", "I lost my card yesterday"]
    >>> cap = CAPPriorTransformer(n_samples=16, progress_bar=False)
    >>> priors = cap.fit_transform(X, ["card_arrival", "lost_or_stolen_card"])
    >>> priors.top_words(0, 2)  # the words that speak for "card arrival" over "lost or stolen card"
    ['arrived', 'card']
    """

    _parameter_constraints = {
        **ScorerPrior._parameter_constraints,
        "n_samples": [Interval(Integral, MIN_SAMPLES, None, closed="left")],
        "lam": [Interval(Real, 0, None, closed="neither")],
        "adaptive": ["boolean"],
        "adaptive_tol": [Interval(Real, 0, 1, closed="right")],
        "random_state": RANDOM_STATE,
    }

    def __init__(
        self,
        scorer="embedding",
        *,
        n_samples=100,
        lam=0.1,
        adaptive=False,
        adaptive_tol=0.95,
        instruction=DEFAULT_INSTRUCTION,
        labels=None,
        label_descriptions=None,
        cache_dir=None,
        chunk_size=256,
        claim_ttl=600.0,
        random_state=0,
        progress_bar="auto",
    ):
        self.scorer = scorer
        self.n_samples = n_samples
        self.lam = lam
        self.adaptive = adaptive
        self.adaptive_tol = adaptive_tol
        self.instruction = instruction
        self.labels = labels
        self.label_descriptions = label_descriptions
        self.cache_dir = cache_dir
        self.chunk_size = chunk_size
        self.claim_ttl = claim_ttl
        self.random_state = random_state
        self.progress_bar = progress_bar

    def _fit(self, texts, y):
        self._fit_task(y)
        self.seed_ = seed_from(self.random_state)

    def _priors(self, texts, y):
        """CAP priors of checked texts and labels, and the counts of their scoring run."""
        wa = WordAttributions(texts)
        names = dict(zip(self.classes_.tolist(), self.task_.label_names))

        # 1. designs and the masked texts they stand for
        designs, queries = [], []
        for text, spans in zip(texts, wa.spans):
            d = len(spans)
            M = sample_masks(d, int(self.n_samples), _text_seed(self.seed_, text)) if d >= MIN_WORDS \
                else short_text_design(d)
            designs.append(M)
            queries.append([masked_text(text, spans, row) for row in M])

        # 2. scores (cache first, then the scorer on what is missing), and
        # 3. one ridge (or leave-one-out) solve per text
        with self._session() as session:
            keys = [session.keys(qs, [names[lab]] * len(qs)) for qs, lab in zip(queries, y.tolist())]
            if self.adaptive:
                used = self._adaptive_rounds(session, designs, keys)
            else:
                used = [len(ks) for ks in keys]
                session.score([k for ks in keys for k in ks])
        values = np.full(wa.shape, np.nan)
        for i, (M, ks, n) in enumerate(zip(designs, keys, used)):
            values[i, : M.shape[1]] = self._solve(M[:n], session.values(ks[:n]))
        counts = {"n_scored_": session.n_scored, "n_cached_": session.n_cached, "n_masks_": np.array(used)}
        return wa.with_values(values), counts

    def _solve(self, M, z):
        """Ridge coefficients, or the leave-one-out drops of a short text's design."""
        z = np.asarray(z, dtype=float)
        return ridge_cholesky(M, z, self.lam) if M.shape[1] >= MIN_WORDS else z[0] - z[1:]

    def _adaptive_rounds(self, session, designs, keys):
        """Score masks in rounds of 8 per text; a text stops once its word ranking is stable.

        Stable: the Spearman correlation between the priors from the masks so
        far and from the masks of the round before is at least
        ``adaptive_tol``. Returns the number of masks each text used.
        """
        n_max = [len(ks) for ks in keys]
        used = [n if M.shape[1] < MIN_WORDS else min(n, 2 * _ROUND) for M, n in zip(designs, n_max)]
        previous = [None] * len(keys)
        active = [i for i, M in enumerate(designs) if M.shape[1] >= MIN_WORDS]
        session.score([k for ks, n in zip(keys, used) for k in ks[:n]])
        while active:
            still = []
            for i in active:
                prior = self._solve(designs[i][: used[i]], session.values(keys[i][: used[i]]))
                prev_prior = previous[i]
                if prev_prior is None and used[i] > _ROUND:
                    n = used[i] - _ROUND
                    prev_prior = self._solve(designs[i][:n], session.values(keys[i][:n]))
                stable = prev_prior is not None and spearmanr(prev_prior, prior).statistic >= self.adaptive_tol
                previous[i] = prior
                if not stable and used[i] < n_max[i]:
                    used[i] = min(n_max[i], used[i] + _ROUND)
                    still.append(i)
            session.score([k for i in still for k in keys[i][: used[i]]])
            active = still
        return used

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags
