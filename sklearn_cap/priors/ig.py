"""IGPriorTransformer: Integrated Gradients of a reference classifier, summed into words."""

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .reference import ReferencePrior

__all__ = ["IGPriorTransformer"]


class IGPriorTransformer(ReferencePrior):
    """Integrated-Gradients priors: how a plain fine-tuned classifier explains each gold label.

    ``fit_transform(X, y)`` trains the reference classifier (or takes it,
    ``prefit=True``, or cross-fits it, ``cv=k``) and returns each text's IG
    attribution for its gold label, one column per word. ``transform(X)``
    on unlabelled texts returns them with no prior.

    The attributions are the reference model's own
    :meth:`~sklearn_cap.ExplanationGuidedClassifier.explain` with
    ``method="ig"``: the one IG of the library (a right Riemann sum from a
    baseline that replaces word tokens by the pad token), the same that the
    classifier's loss and ``explain`` use.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier, default=None
        The reference classifier. It must have ``beta=0``: the reference is
        a model trained on the texts alone. None:
        ``make_probe_reference()``, a linear probe on frozen roberta-base
        (:func:`~sklearn_cap.make_probe_reference`; pass one for another
        encoder). ``ExplanationGuidedClassifier(model, beta=0)`` is a
        fine-tuned reference, the default before issue 28: as accurate on
        the results page and about twice the cost.
    prefit : bool, default=False
        ``estimator`` is already fitted; use it as is.
    cv : int, cross-validation generator or None, default=None
        Cross-fitting: each text's prior from a model that did not see it
        (see :mod:`sklearn_cap.priors.reference` for when it matters).
    n_steps : int, default=50
        Riemann steps of IG.
    internal_batch_size : int or None, default=64
        Most interpolated inputs per forward pass (bounds memory).
    batch_size : int or "auto", default="auto"
        Texts attributed together (length-sorted): 16 on a GPU, 1 on a CPU,
        where one text's ``n_steps`` points already fill the cores.
    progress_bar : bool or "auto", default="auto"

    Attributes
    ----------
    estimator_ : the reference classifier (None with ``cv``)
    estimators_ : list of the fold classifiers (empty without ``cv``)
    classes_ : ndarray

    Examples
    --------
    >>> from sklearn_cap import ExplanationGuidedClassifier, IGPriorTransformer, embedded
    >>> ig = IGPriorTransformer(ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=2))
    >>> priors = ig.fit_transform(X_train, y_train)  # doctest: +SKIP
    """

    _reference_methods = ("explain",)
    _parameter_constraints = {
        **ReferencePrior._parameter_constraints,
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "internal_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(self, estimator=None, *, prefit=False, cv=None, n_steps=50, internal_batch_size=64,
                 batch_size="auto", progress_bar="auto"):
        self.estimator = estimator
        self.prefit = prefit
        self.cv = cv
        self.n_steps = n_steps
        self.internal_batch_size = internal_batch_size
        self.batch_size = batch_size
        self.progress_bar = progress_bar

    def explain_with(self, model, texts, y):
        """IG of ``model`` for labels ``y`` through its ``explain``.

        Parameters
        ----------
        model : ExplanationGuidedClassifier
            A fitted reference classifier.
        texts : list of str
            The texts to explain.
        y : array-like of shape (n_texts,)
            The label to explain for each text, one of ``model.classes_``.

        Returns
        -------
        ndarray of shape (n_texts, max_words)
            IG attribution of each word to ``log P(y)``, NaN past a text's
            last word and for words cut off by the model's ``max_length``.
        """
        bs = self.batch_size
        if bs == "auto":
            bs = 16 if getattr(model, "device_", None) is not None and model.device_.type == "cuda" else 1
        ex = model.explain(texts, target=y, method="ig", n_steps=self.n_steps, batch_size=bs,
                           internal_batch_size=self.internal_batch_size, progress_bar=self.progress_bar)
        return np.asarray(ex)
