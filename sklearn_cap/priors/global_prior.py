"""GlobalPriorTransformer: one class-level score per (word, class), asked once (LAAT-style).

LAAT (Vukadin et al. 2025) aligns a small model with *global* attributions
from an LLM: one importance per feature and class, asked once, instead of
CAP's ~100 masked-variant queries per training text. For text, the global
analogue scores every word of the training vocabulary once against the whole
label space::

    z(word, class) = log P(class | word) - log P(class | empty text)

through the same instruction, label-space prompt, scorers and persistent
cache as CAP. A text's prior is, for each of its words, the gold class's
score of that word (NaN for words outside the vocabulary).
"""

import unicodedata
from collections import Counter
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from ..scorers import DEFAULT_INSTRUCTION
from ..text import WordAttributions
from .scored import ScorerPrior

__all__ = ["GlobalPriorTransformer", "vocabulary_word"]


def vocabulary_word(word):
    """The vocabulary form of a word: NFC-normalised and case-folded (``"Card"`` and ``"card"`` are one entry)."""
    return unicodedata.normalize("NFC", word).casefold()


class GlobalPriorTransformer(ScorerPrior):
    """A global, class-level prior: each vocabulary word scored once against the label space.

    ``fit(X, y)`` collects the training vocabulary (words of
    :func:`~sklearn_cap.text.segment`, case-folded, seen at least
    ``min_count`` times, the ``max_vocabulary`` most frequent) and scores
    each word, and the empty text, against every label: ``len(vocabulary_) +
    1`` distinct texts, whatever the number of training texts.
    ``fit_transform(X, y)`` returns each training text's prior for its gold
    label; ``transform(X)`` returns the texts with no prior, like every prior
    (:class:`~sklearn_cap.priors.BasePrior`).

    Parameters
    ----------
    scorer : BaseScorer or str, default="embedding"
        As in :class:`~sklearn_cap.priors.CAPPriorTransformer`.
    min_count : int, default=1
        Words seen fewer times in the training texts are left out (NaN prior).
    max_vocabulary : int, default=5000
        At most this many words, the most frequent first (ties alphabetically).
    instruction : str, default=DEFAULT_INSTRUCTION
    labels : array-like, default=None
    label_descriptions : dict, default=None
    cache_dir : str, path-like or False, default=None
    chunk_size : int, default=256
    claim_ttl : float, default=600
        As in :class:`~sklearn_cap.priors.CAPPriorTransformer`.
    progress_bar : bool or "auto", default="auto"

    Attributes
    ----------
    classes_ : ndarray
    vocabulary_ : dict of str -> int
        Word -> row of ``table_``.
    table_ : ndarray of shape (n_words, n_classes)
        ``z(word, class)``.
    n_queries_ : int
        Distinct texts scored (the words and the empty text).
    n_scored_, n_cached_ : int
        (text, label) pairs sent to the scorer and found in the cache by ``fit``.

    Examples
    --------
    >>> from sklearn_cap.priors import GlobalPriorTransformer
    >>> prior = GlobalPriorTransformer(progress_bar=False)
    >>> P = prior.fit_transform(["my card is late", "a fee for my transfer"], ["card_arrival", "transfer_fee"])
    >>> prior.n_queries_  # one per distinct word (8) and one for the empty text
    9
    """

    _parameter_constraints = {
        **ScorerPrior._parameter_constraints,
        "min_count": [Interval(Integral, 1, None, closed="left")],
        "max_vocabulary": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, scorer="embedding", *, min_count=1, max_vocabulary=5000, instruction=DEFAULT_INSTRUCTION,
                 labels=None, label_descriptions=None, cache_dir=None, chunk_size=256, claim_ttl=600.0,
                 progress_bar="auto"):
        self.scorer = scorer
        self.min_count = min_count
        self.max_vocabulary = max_vocabulary
        self.instruction = instruction
        self.labels = labels
        self.label_descriptions = label_descriptions
        self.cache_dir = cache_dir
        self.chunk_size = chunk_size
        self.claim_ttl = claim_ttl
        self.progress_bar = progress_bar

    _fitted_attribute = "table_"

    def _fit(self, texts, y):
        """Collect the vocabulary and score each word (and the empty text) against every label."""
        self._fit_task(y)
        counts = Counter(vocabulary_word(w) for t in WordAttributions(texts).words for w in t)
        kept = sorted((w for w, c in counts.items() if c >= self.min_count), key=lambda w: (-counts[w], w))
        words = kept[: int(self.max_vocabulary)]
        self.vocabulary_ = {w: i for i, w in enumerate(words)}
        queries = words + [""]
        names = list(self.task_.label_names)
        with self._session() as session:
            keys = [session.keys([q] * len(names), names) for q in queries]
            session.score([k for ks in keys for k in ks])
            logp = np.array([session.values(ks) for ks in keys])
        self.n_scored_, self.n_cached_ = session.n_scored, session.n_cached
        self.table_ = logp[:-1] - logp[-1]  # log P(class | word) - log P(class | empty text)
        self.n_queries_ = len(queries)

    def _priors(self, texts, y):
        """Each word's score for its text's gold class (NaN outside the vocabulary); no counts (``fit`` keeps them)."""
        col = {c: j for j, c in enumerate(self.classes_.tolist())}
        wa = WordAttributions(texts)
        values = np.full(wa.shape, np.nan)
        for i, (words, label) in enumerate(zip(wa.words, y.tolist())):
            for j, w in enumerate(words):
                row = self.vocabulary_.get(vocabulary_word(w))
                if row is not None:
                    values[i, j] = self.table_[row, col[label]]
        return wa.with_values(values), {}
