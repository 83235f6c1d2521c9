"""LIMEPriorTransformer: LIME explanations of a reference classifier, by word position."""

import zlib
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from ..progress import progress
from ..text import segment
from ..validation import RANDOM_STATE, seed_from
from .reference import ReferencePrior

__all__ = ["LIMEPriorTransformer", "lime_weights", "batched_proba", "text_rng"]


def text_rng(seed, text):
    """A NumPy RandomState that depends on the seed and the text only (not on its position in X)."""
    return np.random.RandomState(zlib.crc32(text.encode("utf-8")) ^ (int(seed) & 0x7FFFFFFF))


def batched_proba(clf):
    """A LIME ``classifier_fn`` that scores each distinct perturbation once, in batches.

    LIME draws thousands of perturbations of a short text, most of them
    repeated (a 6-word text has 63 distinct ones); the classifier sees each
    distinct string once, in length-sorted batches.
    """

    def classifier_fn(strings):
        uniq, inverse = np.unique(np.asarray(strings, dtype=object), return_inverse=True)
        return clf.predict_proba(list(uniq))[inverse.ravel()]

    return classifier_fn


def lime_weights(text, classifier_fn, label_idx, *, num_samples=1000, random_state=None):
    """LIME weight of each word (our segmentation, by position) for one label.

    Removed words are deleted (``mask_string=""``, as CAP deletes them),
    words are positions (``bow=False``), and the weights are those of lime's
    local ridge model for ``label_idx``.
    """
    from lime.lime_text import LimeTextExplainer

    words = segment(text)[0]
    explainer = LimeTextExplainer(
        split_expression=lambda s: segment(s)[0], bow=False, mask_string="", random_state=random_state,
    )
    exp = explainer.explain_instance(text, classifier_fn, labels=(int(label_idx),),
                                     num_features=len(words), num_samples=int(num_samples))
    out = np.zeros(len(words))
    for j, w in exp.as_map()[int(label_idx)]:
        out[j] = w
    return out


class LIMEPriorTransformer(ReferencePrior):
    """LIME priors: a local linear explanation of the reference classifier for each gold label.

    Same reference-classifier options as :class:`IGPriorTransformer`
    (trained, ``prefit``, ``cv``). Words are our segmentation's positions,
    removed words are deleted, and each text's perturbations are scored in
    batches with duplicates scored once (:func:`batched_proba`).

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier, default=None
    prefit : bool, default=False
    cv : int, cross-validation generator or None, default=None
    num_samples : int, default=1000
        Perturbations per text (lime's default is 5000), at least 10: lime's
        first sample is the text itself, and its local model has one weight
        per word.
    random_state : int, RandomState, Generator or None, default=0
        With the text, seeds each text's perturbations.
    progress_bar : bool or "auto", default="auto"

    Attributes
    ----------
    estimator_, estimators_, classes_ : as in :class:`IGPriorTransformer`

    Examples
    --------
    >>> from sklearn_cap import ExplanationGuidedClassifier, LIMEPriorTransformer, embedded
    >>> lime = LIMEPriorTransformer(ExplanationGuidedClassifier(embedded.ENCODER, beta=0), num_samples=500)
    >>> priors = lime.fit_transform(X_train, y_train)  # doctest: +SKIP
    """

    _parameter_constraints = {
        **ReferencePrior._parameter_constraints,
        "num_samples": [Interval(Integral, 10, None, closed="left")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, estimator=None, *, prefit=False, cv=None, num_samples=1000, random_state=0,
                 progress_bar="auto"):
        self.estimator = estimator
        self.prefit = prefit
        self.cv = cv
        self.num_samples = num_samples
        self.random_state = random_state
        self.progress_bar = progress_bar

    def explain_with(self, model, texts, y):
        """LIME weights of ``model`` for labels ``y``, one row per text."""
        target = model.class_index(y)
        fn = batched_proba(model)
        seed = seed_from(self.random_state)
        width = max(len(segment(t)[0]) for t in texts)
        values = np.full((len(texts), width), np.nan)
        for i, text in enumerate(progress(texts, enabled=self.progress_bar, desc="LIME prior")):
            w = lime_weights(text, fn, target[i], num_samples=self.num_samples, random_state=text_rng(seed, text))
            values[i, : len(w)] = w
        return values
