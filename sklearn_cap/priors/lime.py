"""LIMEPriorTransformer: LIME explanations of a reference classifier, by word position."""

import zlib
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from ..progress import progress
from ..text import segment
from ..validation import RANDOM_STATE, seed_from
from .reference import ReferencePrior

__all__ = ["LIMEPriorTransformer", "lime_weights", "lime_weights_many", "neighbourhood", "text_rng"]

_TEXTS_PER_CALL = 32  # texts whose perturbations are scored together (bounds memory: ~32 x num_samples strings)


def text_rng(seed, text):
    """A NumPy RandomState that depends on the seed and the text only (not on its position in X)."""
    return np.random.RandomState(zlib.crc32(text.encode("utf-8")) ^ (int(seed) & 0x7FFFFFFF))


def _split(text):
    return segment(text)[0]


def _kernel(d, kernel_width=25.0):
    # LimeTextExplainer's default kernel on cosine distances x 100, width 25
    return np.sqrt(np.exp(-(d**2) / kernel_width**2))


def neighbourhood(text, num_samples, random_state):
    """LIME's neighbourhood of a text: the binary word masks and the texts they stand for.

    The same draws as ``LimeTextExplainer(bow=False, mask_string="")``
    makes from the same ``RandomState`` (row 0 is the text itself; row i
    removes ``size ~ U{1..d}`` distinct words), so a run on these samples
    gives lime's weights exactly.

    Returns
    -------
    data : ndarray of shape (num_samples, n_words)
    strings : list of str
    """
    from lime.lime_text import IndexedString

    indexed = IndexedString(text, bow=False, split_expression=_split, mask_string="")
    d = indexed.num_words()
    sizes = random_state.randint(1, d + 1, num_samples - 1)
    data = np.ones((num_samples, d))
    strings = [indexed.raw_string()]
    for i, size in enumerate(sizes, start=1):
        off = random_state.choice(range(d), size, replace=False)
        data[i, off] = 0
        strings.append(indexed.inverse_removing(off))
    return data, strings


def lime_weights_many(predict_proba, texts, label_idx, random_states, *, num_samples=1000):
    """LIME weights of many texts, every distinct perturbation of all of them scored in one call.

    Plain lime scores each text's perturbations in a call of their own. Here
    the neighbourhoods of all ``texts`` are drawn first (as lime draws them),
    each distinct string is scored once by ``predict_proba`` (which batches
    and length-sorts them), and lime's own local regression
    (``LimeBase.explain_instance_with_data``) fits each text. Same samples,
    same weights as plain lime.

    Returns
    -------
    list of ndarray
        Per text, one weight per word (our segmentation, by position).
    """
    from sklearn.metrics.pairwise import pairwise_distances

    from lime.lime_base import LimeBase

    hoods = [neighbourhood(t, int(num_samples), rs) for t, rs in zip(texts, random_states)]
    flat = [s for _, strings in hoods for s in strings]
    uniq, inverse = np.unique(np.asarray(flat, dtype=object), return_inverse=True)
    proba = predict_proba(list(uniq))[inverse.ravel()]
    out, start = [], 0
    for (data, strings), label, rs in zip(hoods, label_idx, random_states):
        labels = proba[start : start + len(strings)]
        start += len(strings)
        distances = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
        _, local, _, _ = LimeBase(_kernel, random_state=rs).explain_instance_with_data(
            data, labels, distances, int(label), data.shape[1], feature_selection="auto")
        w = np.zeros(data.shape[1])
        for j, v in local:
            w[j] = v
        out.append(w)
    return out


def lime_weights(text, classifier_fn, label_idx, *, num_samples=1000, random_state=None):
    """LIME weight of each word (our segmentation, by position) for one label, through lime's explainer.

    Removed words are deleted (``mask_string=""``, as CAP deletes them),
    words are positions (``bow=False``), and the weights are those of lime's
    local ridge model for ``label_idx``. This is plain lime, one text per
    call; :func:`lime_weights_many` gives the same weights faster.
    """
    from lime.lime_text import LimeTextExplainer

    n_words = len(_split(text))
    explainer = LimeTextExplainer(split_expression=_split, bow=False, mask_string="", random_state=random_state)
    exp = explainer.explain_instance(text, classifier_fn, labels=(int(label_idx),), num_features=n_words,
                                     num_samples=int(num_samples))
    out = np.zeros(n_words)
    for j, w in exp.as_map()[int(label_idx)]:
        out[j] = w
    return out


class LIMEPriorTransformer(ReferencePrior):
    """LIME priors: a local linear explanation of the reference classifier for each gold label.

    Same reference-classifier options as :class:`IGPriorTransformer`
    (trained, ``prefit``, ``cv``). Words are our segmentation's positions and
    removed words are deleted. The perturbations of 32 texts at a time are
    drawn as lime draws them and scored in one call, each distinct string
    once (:func:`lime_weights_many`): the weights are lime's for the same
    samples.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier, default=None
        The reference classifier, as for :class:`IGPriorTransformer` (None: a
        linear probe on frozen roberta-base, :func:`~sklearn_cap.make_probe_reference`).
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

    _reference_methods = ("class_index",)
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
        """LIME weights of ``model`` for labels ``y``, one row per text.

        Parameters
        ----------
        model : ExplanationGuidedClassifier
            A fitted reference classifier; its ``predict_proba`` scores the
            perturbed texts.
        texts : list of str
            The texts to explain.
        y : array-like of shape (n_texts,)
            The label to explain for each text, one of ``model.classes_``.

        Returns
        -------
        ndarray of shape (n_texts, max_words)
            LIME weight of each word for its text's label, NaN past a text's
            last word.
        """
        target = model.class_index(y)
        seed = seed_from(self.random_state)
        width = max(len(_split(t)) for t in texts)
        values = np.full((len(texts), width), np.nan)
        chunks = range(0, len(texts), _TEXTS_PER_CALL)
        for s in progress(chunks, enabled=self.progress_bar, desc="LIME prior", unit="chunk"):
            part = texts[s : s + _TEXTS_PER_CALL]
            weights = lime_weights_many(model.predict_proba, part, target[s : s + _TEXTS_PER_CALL],
                                        [text_rng(seed, t) for t in part], num_samples=self.num_samples)
            for i, w in enumerate(weights):
                values[s + i, : len(w)] = w
        return values
