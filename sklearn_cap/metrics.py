"""Faithfulness of explanations (ERASER) and the class-confusion analysis of priors.

Faithfulness (DeYoung et al. 2020, "ERASER"):

- *comprehensiveness*: ``p(c | x) - p(c | x without its top-k% words)``; high
  when the words the explanation ranks first are the ones the model needs;
- *sufficiency*: ``p(c | x) - p(c | only the top-k% words of x)``; low when
  those words alone are enough.

Both are averaged over ``k`` in {1, 5, 10, 20, 50}% (AOPC), where top-k%
keeps at least one word. ``c`` is the class the explanation is about
(``explain`` output carries it) or else the model's prediction.

Class confusion (the paper's measure of homogenised explanations): the top
words of each class under a prior (:func:`class_keywords`), the overlap of
those keyword sets between classes (:func:`keyword_overlap`), and the most
overlapping pairs (:func:`confusable_pairs`).
"""

import math

import numpy as np

from .attribution import normalize_np
from .text import WordAttributions, masked_text

__all__ = [
    "DEFAULT_K",
    "comprehensiveness",
    "sufficiency",
    "faithfulness",
    "comprehensiveness_scorer",
    "sufficiency_scorer",
    "class_keywords",
    "keyword_overlap",
    "confusable_pairs",
]

DEFAULT_K = (0.01, 0.05, 0.10, 0.20, 0.50)


def _top_words(values, n_words, fraction):
    """Indices of the top ``ceil(fraction * n_words)`` words (at least one) by score."""
    k = max(1, math.ceil(fraction * n_words))
    scores = np.where(np.isfinite(values[:n_words]), values[:n_words], -np.inf)
    return set(np.argsort(-scores, kind="stable")[:k].tolist())


def _class_index(clf, attributions, target, proba_full):
    if target is None:
        target = attributions.targets
    if target is None:
        return proba_full.argmax(1)
    # Any classifier with classes_ (not only ours), so no clf.class_index here.
    lookup = {c: i for i, c in enumerate(clf.classes_.tolist())}
    return np.array([lookup[t] for t in np.asarray(target).tolist()])


def _erasure(clf, attributions, k, target, mode):
    if not isinstance(attributions, WordAttributions):
        raise TypeError("attributions must be a WordAttributions (a prior container or explain() output).")
    wa = attributions
    proba = clf.predict_proba(wa.texts)
    cls = _class_index(clf, wa, target, proba)
    p_full = proba[np.arange(len(wa)), cls]
    per_k = []
    for fraction in k:
        if not 0 < fraction <= 1:
            raise ValueError(f"k must hold fractions in (0, 1], got {fraction}.")
        edited = []
        for i in range(len(wa)):
            d = len(wa.words[i])
            top = _top_words(wa.values[i], d, fraction) if d else set()
            keep = set(range(d)) - top if mode == "comprehensiveness" else top
            edited.append(masked_text(wa.texts[i], wa.spans[i], [j in keep for j in range(d)]))
        p_edit = clf.predict_proba(edited)[np.arange(len(wa)), cls]
        per_k.append(p_full - p_edit)
    return np.array(per_k)  # (len(k), n_texts)


def comprehensiveness(clf, attributions, *, k=DEFAULT_K, target=None, per_text=False):
    """AOPC comprehensiveness: mean drop of ``p(c)`` when the top-k% words are removed.

    Parameters
    ----------
    clf : fitted classifier with ``predict_proba`` and ``classes_`` on raw texts
    attributions : WordAttributions
        Any word scores: a prior container or ``clf.explain(X)``.
    k : sequence of float, default=(0.01, 0.05, 0.1, 0.2, 0.5)
    target : array-like, default=None
        Class per text; default ``attributions.targets``, else the prediction.
    per_text : bool, default=False
        Return the AOPC of each text instead of their mean.

    Returns
    -------
    float or ndarray of shape (n_texts,)
        The AOPC comprehensiveness (higher is better), or per text.

    Examples
    --------
    >>> ex = clf.explain(X_test)  # doctest: +SKIP
    >>> comprehensiveness(clf, ex), sufficiency(clf, ex)  # doctest: +SKIP
    (0.41, 0.08)
    """
    out = _erasure(clf, attributions, k, target, "comprehensiveness").mean(0)
    return out if per_text else float(out.mean())


def sufficiency(clf, attributions, *, k=DEFAULT_K, target=None, per_text=False):
    """AOPC sufficiency: mean drop of ``p(c)`` when only the top-k% words are kept (lower is better).

    Parameters
    ----------
    clf : fitted classifier with ``predict_proba`` and ``classes_`` on raw texts
        The model whose probabilities are compared.
    attributions : WordAttributions
        Any word scores: a prior container or ``clf.explain(X)``.
    k : sequence of float, default=(0.01, 0.05, 0.1, 0.2, 0.5)
        Fractions of each text's words (in (0, 1]; at least one word) to
        remove or keep.
    target : array-like, default=None
        Class per text; default ``attributions.targets``, else the prediction.
    per_text : bool, default=False
        Return the AOPC of each text instead of their mean.

    Returns
    -------
    float or ndarray of shape (n_texts,)
        The AOPC sufficiency (lower is better), or per text.
    """
    out = _erasure(clf, attributions, k, target, "sufficiency").mean(0)
    return out if per_text else float(out.mean())


def faithfulness(clf, attributions, *, k=DEFAULT_K, target=None):
    """Both metrics, overall and per ``k``: ``{"comprehensiveness": .., "sufficiency": .., "per_k": {...}}``.

    Parameters
    ----------
    clf : fitted classifier with ``predict_proba`` and ``classes_`` on raw texts
        The model whose probabilities are compared.
    attributions : WordAttributions
        Any word scores: a prior container or ``clf.explain(X)``.
    k : sequence of float, default=(0.01, 0.05, 0.1, 0.2, 0.5)
        Fractions of each text's words (in (0, 1]; at least one word) to
        remove or keep.
    target : array-like, default=None
        Class per text; default ``attributions.targets``, else the prediction.

    Returns
    -------
    dict
        ``"comprehensiveness"`` and ``"sufficiency"`` (AOPC, floats), and
        ``"per_k"``: fraction -> ``{"comprehensiveness": float, "sufficiency": float}``.
    """
    comp = _erasure(clf, attributions, k, target, "comprehensiveness")
    suff = _erasure(clf, attributions, k, target, "sufficiency")
    return {
        "comprehensiveness": float(comp.mean()),
        "sufficiency": float(suff.mean()),
        "per_k": {f: {"comprehensiveness": float(c.mean()), "sufficiency": float(s.mean())}
                  for f, c, s in zip(k, comp, suff)},
    }


def _final_classifier(estimator):
    """The classifier at the end of a Pipeline (and the texts it sees are the raw texts)."""
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def comprehensiveness_scorer(estimator, X, y=None):
    """Scorer ``(estimator, X, y) -> float`` for ``cross_validate(scoring=...)``: explains X, then AOPC comprehensiveness.

    Works on an :class:`~sklearn_cap.ExplanationGuidedClassifier` or a
    Pipeline ending in one (prior steps pass unlabelled texts through).
    Higher is better.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier or Pipeline
        A fitted classifier, or a fitted Pipeline whose last step is one.
    X : list of str
        Texts to explain (for their predicted classes) and score.
    y : array-like of shape (n_texts,), default=None
        Ignored; present for the scorer signature.

    Returns
    -------
    float
        The AOPC comprehensiveness of the classifier's own explanations.
    """
    clf = _final_classifier(estimator)
    return comprehensiveness(clf, clf.explain(list(X)))


def sufficiency_scorer(estimator, X, y=None):
    """Scorer for AOPC sufficiency, negated so that higher is better (scikit-learn's convention).

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier or Pipeline
        A fitted classifier, or a fitted Pipeline whose last step is one.
    X : list of str
        Texts to explain (for their predicted classes) and score.
    y : array-like of shape (n_texts,), default=None
        Ignored; present for the scorer signature.

    Returns
    -------
    float
        Minus the AOPC sufficiency of the classifier's own explanations.
    """
    clf = _final_classifier(estimator)
    return -sufficiency(clf, clf.explain(list(X)))


def class_keywords(attributions, labels, *, top_k=10, min_count=2, normalization="minmax"):
    """The top words of each class under an attribution or prior.

    Each text's scores are normalised (min-max by default), then summed per
    lower-cased word over the texts of a class and divided by the class
    size; words seen in fewer than ``min_count`` texts of the class are
    left out (one-off words are not a class's keywords).

    Parameters
    ----------
    attributions : WordAttributions
        Word scores of the texts: priors or explanations.
    labels : array-like of shape (n_texts,)
        The class of each text.
    top_k : int, default=10
        Keywords per class.
    min_count : int, default=2
        Fewest texts of the class a word must appear in (capped at the
        class size).
    normalization : {"minmax", "l1", "softmax"}, default="minmax"
        Per-text normalisation of the scores before they are summed.

    Returns
    -------
    dict of label -> list of (word, score), best first
    """
    labels = np.asarray(labels)
    if len(labels) != len(attributions):
        raise ValueError(f"{len(labels)} labels for {len(attributions)} texts.")
    values = normalize_np(np.asarray(attributions), normalization)
    out = {}
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        total, count = {}, {}
        for i in rows:
            seen = set()
            for w, v in zip(attributions.words[i], values[i]):
                if not np.isfinite(v):
                    continue
                w = w.lower()
                total[w] = total.get(w, 0.0) + float(v)
                if w not in seen:
                    count[w] = count.get(w, 0) + 1
                    seen.add(w)
        ranked = sorted(((w, s / len(rows)) for w, s in total.items() if count[w] >= min(min_count, len(rows))),
                        key=lambda p: (-p[1], p[0]))
        out[label.item() if hasattr(label, "item") else label] = ranked[:top_k]
    return out


def keyword_overlap(keywords):
    """Jaccard overlap of the keyword sets of every pair of classes.

    Parameters
    ----------
    keywords : dict of label -> list of (word, score)
        Each class's keywords, e.g. from :func:`class_keywords`.

    Returns
    -------
    overlap : ndarray of shape (n_classes, n_classes)
    classes : list
        Row/column order.
    """
    classes = list(keywords)
    sets = [{w for w, _ in keywords[c]} for c in classes]
    n = len(classes)
    overlap = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            union = sets[i] | sets[j]
            overlap[i, j] = overlap[j, i] = len(sets[i] & sets[j]) / len(union) if union else 0.0
    return overlap, classes


def confusable_pairs(overlap, classes, n=10):
    """The ``n`` class pairs with the highest keyword overlap: list of (a, b, overlap).

    Parameters
    ----------
    overlap : ndarray of shape (n_classes, n_classes)
        Symmetric overlap matrix, from :func:`keyword_overlap`.
    classes : list
        Row/column order of ``overlap``.
    n : int, default=10
        Most pairs to return.

    Returns
    -------
    list of (label, label, float)
        Pairs of distinct classes, highest overlap first (ties in row order).
    """
    iu = np.triu_indices(len(classes), k=1)
    order = np.argsort(-overlap[iu], kind="stable")[:n]
    return [(classes[iu[0][o]], classes[iu[1][o]], float(overlap[iu][o])) for o in order]
