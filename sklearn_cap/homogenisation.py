"""Do priors homogenise confusable classes? Shared top words of each class and its most confusable class.

The paper's motivation (Zhang et al. 2025): IG and LIME priors highlight the
words that similar classes share ("card" for both ``card_arrival`` and
``card_delivery_estimate``), so they add little discrimination, while CAP,
which sees the whole label space, should rank each class's own words first.
:func:`top_word_overlap` measures that for any prior: each class's top-k
words under the prior, and the share of them that its most confusable class
also has among its top k.

The pairs come from word counts alone
(:func:`sklearn_cap.keywords.confusable_partners`), so no prior under test
chooses which classes it is compared on. Without a prior the same overlap is
computed for the log-odds keywords of :func:`sklearn_cap.keywords.logodds_keywords`:
the method-free reference, what word counts alone give.
"""

import numbers

import numpy as np
from sklearn.utils import Bunch

from .keywords import _norm, confusable_partners, logodds_keywords
from .metrics import class_keywords
from .text import WordAttributions

__all__ = ["top_word_overlap"]


def _folded(texts, priors):
    """The priors as a WordAttributions of ``texts`` whose words are case-folded and NFC-normalised."""
    if isinstance(priors, WordAttributions):
        if len(priors) != len(texts):
            raise ValueError(f"priors hold {len(priors)} texts but {len(texts)} texts were given.")
        if priors.texts != texts:
            i = next(i for i, (a, b) in enumerate(zip(priors.texts, texts)) if a != b)
            raise ValueError(f"priors are of other texts: text {i} is {texts[i][:40]!r} but the priors' text {i} "
                             f"is {priors.texts[i][:40]!r}. Pass the priors of these texts, in the same order.")
        wa = priors
    else:
        values = np.asarray(priors, dtype=float)
        if values.ndim != 2 or values.shape[0] != len(texts):
            raise ValueError(f"priors must have one row per text: got shape {values.shape} for {len(texts)} texts.")
        wa = WordAttributions(texts, values)
    if not wa.has_values:
        raise ValueError("priors carry no values (all NaN): a prior transformer's transform() of unlabelled texts "
                         "gives none; use fit_transform(texts, labels).")
    # Fold the words the way keywords.py does, so a prior's top words and the log-odds keywords count the same
    # words; class_keywords lower-cases what it is given, a no-op on folded words (Cherokee letters aside).
    segments = [([_norm(w) for w in words], spans) for words, spans in zip(wa.words, wa.spans)]
    return WordAttributions(texts, wa.values, _segments=segments)


def top_word_overlap(texts, labels, priors=None, *, top_k=10, min_count=1, partners=None):
    """Share of each class's top-k prior words that its most confusable class also ranks in its top k.

    For class ``c`` with partner ``p``: ``|top_k(c) & top_k(p)| / top_k``.
    The top words of a class under a prior are those of
    :func:`sklearn_cap.metrics.class_keywords`: each text's prior values are
    min-max normalised over its words (NaN ignored), then summed per word
    over the class's texts (divided by the class size, which keeps the
    order), ties broken alphabetically. A word ranks high when the prior
    ranks it high in many of the class's texts. Without ``priors`` the top
    words are the class's log-odds keywords
    (:func:`sklearn_cap.keywords.logodds_keywords`, default ``alpha0``). Words
    are case-folded and NFC-normalised in both cases.

    Parameters
    ----------
    texts : list of str
        The texts the priors are of.
    labels : array-like of shape (n_texts,)
        The class of each text; at least two classes.
    priors : WordAttributions or array-like of shape (n_texts, n_positions), default=None
        One value per word of :func:`sklearn_cap.segment` (NaN where none),
        e.g. a prior transformer's ``fit_transform(texts, labels)``. None:
        the log-odds keywords, the reference that uses no prior.
    top_k : int, default=10
        Words per class. A class with fewer eligible words has a shorter
        list, and its overlap is still divided by ``top_k``.
    min_count : int, default=1
        Fewest occurrences of a word in the class to be one of its top
        words: texts holding it for a prior (capped at the class size), word
        occurrences for the log-odds keywords. At 5 texts a class, 2
        leaves many classes fewer than 10 candidate words, the same for
        every prior, which the overlap would then measure.
    partners : dict of label -> label, default=None
        Each class's most confusable class; None computes
        :func:`~sklearn_cap.keywords.confusable_partners` of ``texts``.
        Pass those of a larger sample (the whole training split) for pairs
        that do not move with a few-shot sample.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        - ``overlap``: dict of label -> float in [0, 1], each class's overlap
          with its partner;
        - ``mean_overlap``: float, the mean over classes;
        - ``keywords``: dict of label -> list of (word, score), each class's
          top words, best first;
        - ``partners``: dict of label -> label, the partners used.

    See Also
    --------
    sklearn_cap.metrics.class_keywords : The top words of each class under a prior.
    sklearn_cap.keywords.logodds_keywords : The top words of each class from word counts alone.
    sklearn_cap.keywords.confusable_partners : Each class's most confusable class.

    Examples
    --------
    >>> from sklearn_cap import WordAttributions
    >>> texts = ["card not arrived", "card still missing", "card delivery time", "card delivery date",
    ...          "fee charged", "fee too high"]
    >>> labels = ["arrival", "arrival", "delivery", "delivery", "fee", "fee"]
    >>> priors = WordAttributions(texts, [[1.0, 0.0, 0.0]] * 6)  # every prior puts the first word on top
    >>> out = top_word_overlap(texts, labels, priors, top_k=1)
    >>> out.partners["arrival"], out.keywords["arrival"], out.overlap["arrival"]
    ('delivery', [('card', 1.0)], 1.0)
    >>> top_word_overlap(texts, labels, top_k=1).overlap["arrival"]  # the log-odds keywords: no prior
    0.0
    """
    texts = list(texts)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts):
        raise ValueError(f"labels must have one entry per text: got {labels.shape} labels for {len(texts)} texts.")
    for name, value in (("top_k", top_k), ("min_count", min_count)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    classes = np.unique(labels).tolist()
    if len(classes) < 2:
        raise ValueError(f"A class needs another class to be confused with; got {len(classes)} class.")
    if partners is None:
        partners = confusable_partners(texts, labels)
    missing = [c for c in classes if c not in partners or partners[c] not in classes or partners[c] == c]
    if missing:
        raise ValueError(f"partners must map every class to another class of the labels; not so for {missing[:5]}.")
    if priors is None:
        keywords = logodds_keywords(texts, labels, top_k=top_k, min_count=min_count)
    else:
        keywords = class_keywords(_folded(texts, priors), labels, top_k=top_k, min_count=min_count)
    tops = {c: {w for w, _ in keywords[c]} for c in classes}
    overlap = {c: len(tops[c] & tops[partners[c]]) / top_k for c in classes}
    return Bunch(overlap=overlap, mean_overlap=float(np.mean(list(overlap.values()))),
                 keywords={c: keywords[c] for c in classes}, partners={c: partners[c] for c in classes})
