"""Class keywords and confusable classes from word counts alone (no model, no prior).

The adversarial test sets of the experiments must not depend on any prior
under test, or a method would be scored on edits its own prior chose. So
their keywords come from a method-free statistic of the training texts: the
weighted log-odds ratio with an informative Dirichlet prior (Monroe,
Colaresi and Quinn 2008, "Fightin' Words"), class against the rest; and each
class's most confusable partner is the class whose word-count profile is
closest (cosine similarity of the classes' word-frequency vectors).
Words are :func:`sklearn_cap.text.segment`'s, case-folded and NFC-normalised.
"""

import unicodedata

import numpy as np

from .text import segment

__all__ = ["word_counts", "logodds_keywords", "confusable_partners"]


def _norm(word):
    return unicodedata.normalize("NFC", word).casefold()


def word_counts(texts, labels):
    """Per-class word counts: ``(counts (n_classes, n_words), classes, vocabulary)``.

    Parameters
    ----------
    texts : list of str
        The texts; their words are case-folded and NFC-normalised.
    labels : array-like of shape (n_texts,)
        The label of each text.

    Returns
    -------
    counts : ndarray of shape (n_classes, n_words)
        Occurrences of each vocabulary word in the texts of each class.
    classes : ndarray of shape (n_classes,)
        The sorted distinct labels (rows of ``counts``).
    vocabulary : list of str
        The sorted distinct words (columns of ``counts``).
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    docs = [[_norm(w) for w in segment(t)[0]] for t in texts]
    vocab = sorted({w for d in docs for w in d})
    col = {w: j for j, w in enumerate(vocab)}
    row = {c: i for i, c in enumerate(classes.tolist())}
    counts = np.zeros((len(classes), len(vocab)))
    for d, lab in zip(docs, labels.tolist()):
        for w in d:
            counts[row[lab], col[w]] += 1
    return counts, classes, vocab


def logodds_keywords(texts, labels, *, top_k=10, alpha0=1000.0, min_count=2):
    """Each class's keywords by the weighted log-odds ratio (informative Dirichlet prior), class vs rest.

    For word ``w`` and class ``c`` with counts ``y_cw`` (class) and ``y_rw``
    (rest), class sizes ``n_c`` and ``n_r``, and prior counts
    ``a_w = alpha0 * (share of w in all texts)``::

        delta = log((y_cw + a_w) / (n_c + alpha0 - y_cw - a_w)) - log((y_rw + a_w) / (n_r + alpha0 - y_rw - a_w))
        z     = delta / sqrt(1 / (y_cw + a_w) + 1 / (y_rw + a_w))

    The ``top_k`` words by ``z`` that occur at least ``min_count`` times in
    the class are its keywords. Takes texts and labels only: no model and no
    prior enters.

    Parameters
    ----------
    texts : list of str
        Training texts.
    labels : array-like of shape (n_texts,)
        The label of each text.
    top_k : int, default=10
        Keywords per class.
    alpha0 : float, default=1000.0
        Total prior count of the Dirichlet prior, spread over the words in
        proportion to their share of all texts.
    min_count : int, default=2
        Fewest occurrences in the class for a word to be one of its keywords.

    Returns
    -------
    dict of label -> list of (word, z), best first
        The format of :func:`sklearn_cap.metrics.class_keywords`.

    Examples
    --------
    >>> kw = logodds_keywords(["card not here", "card late", "fee why", "fee charged"], ["a", "a", "b", "b"],
    ...                       top_k=1, min_count=1)
    >>> kw["a"][0][0], kw["b"][0][0]
    ('card', 'fee')
    """
    counts, classes, vocab = word_counts(texts, labels)
    total = counts.sum(0)
    a = alpha0 * total / total.sum()
    n = counts.sum(1, keepdims=True)
    rest, n_rest = total[None, :] - counts, n.sum() - n
    delta = (np.log((counts + a) / (n + alpha0 - counts - a))
             - np.log((rest + a) / (n_rest + alpha0 - rest - a)))
    z = delta / np.sqrt(1.0 / (counts + a) + 1.0 / (rest + a))
    out = {}
    for i, c in enumerate(classes.tolist()):
        order = [j for j in np.argsort(-z[i], kind="stable") if counts[i, j] >= min_count][:top_k]
        out[c] = [(vocab[j], float(z[i, j])) for j in order]
    return out


def confusable_partners(texts, labels):
    """Each class's nearest other class by the cosine similarity of their word-frequency vectors.

    Parameters
    ----------
    texts : list of str
        Training texts.
    labels : array-like of shape (n_texts,)
        The label of each text; at least two classes.

    Returns
    -------
    dict of label -> label
        Each class's most similar other class: the ``partners`` of
        :func:`sklearn_cap.adversarial.make_adversarial`.
    """
    counts, classes, _ = word_counts(texts, labels)
    unit = counts / np.linalg.norm(counts, axis=1, keepdims=True).clip(min=1e-12)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    names = classes.tolist()
    return {c: names[int(np.argmax(sim[i]))] for i, c in enumerate(names)}
