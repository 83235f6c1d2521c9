"""What the IG and LIME priors share: a reference classifier, trained, prefit or cross-fitted.

The reference classifier is a plain fine-tuned model (``beta=0``) whose
explanations of the gold label are the prior. Three ways to get it:

- trained in ``fit`` on the same texts (default);
- ``prefit=True``: the given ``estimator`` is already fitted and used as is,
  as :class:`~sklearn.feature_selection.SelectFromModel` does. Wrap it in
  :class:`sklearn.frozen.FrozenEstimator` when the prior sits in a pipeline
  that will be cloned (``GridSearchCV``, ``cross_validate``): ``clone`` of
  a plain fitted estimator returns an unfitted copy;
- ``cv=k``: cross-fitting. Each training text's prior comes from a model that
  did not see it. It matters when the reference model can memorise its
  training set (large models, few examples per class): explanations of
  memorised examples are sharper and less general than those the final
  classifier will see at test time. It costs ``k`` trainings instead of one.
  What it changes, as measured, is in :ref:`bench-cross-fitting`
  (doc/benchmarks.rst).

A :class:`~sklearn_cap.priors.PriorUnion` holding IG and LIME priors with the
same reference settings trains the reference model(s) once and hands them to
both (:meth:`~ReferencePrior.fit_reference`, then
:meth:`~ReferencePrior.fit_with` or :meth:`~ReferencePrior.fit_transform_with`, the contract of
:class:`~sklearn_cap.priors.BasePrior`).
"""

import joblib
import numpy as np
from sklearn.base import _fit_context, clone
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import HasMethods, InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from ..progress import PROGRESS_BAR
from ..text import WordAttributions
from ..validation import check_known_labels, validate_params
from .base import BasePrior, References

__all__ = ["ReferencePrior", "make_probe_reference"]


def make_probe_reference(model="roberta-base", *, C=10.0, **params):
    """A reference classifier that is a linear probe on the frozen encoder: cheap to cross-fit.

    The encoder is never trained: a logistic regression is fitted on its
    mean-pooled, L2-normalised features and becomes the head
    (:class:`~sklearn_cap.stages.LinearProbe` as the only stage). IG and
    LIME then explain that model through the encoder, as they explain a
    fine-tuned one. Cross-fitting it costs one pass of the encoder over the
    training texts per fold instead of a fine-tuning per fold.

    On the results page (5-shot BANKING77 and HWU64, 3 seeds each, the
    embedded MiniLM), IG and LIME from probe references train classifiers as
    accurate as those from fine-tuned references, at about half of their
    cost; see "Choosing a reference model" in the user guide. It is the
    reference of :class:`IGPriorTransformer` and
    :class:`LIMEPriorTransformer` when ``estimator=None`` (a probe on
    roberta-base, their default encoder); pass
    ``ExplanationGuidedClassifier(model, beta=0)`` for a fine-tuned reference,
    the default before.

    Parameters
    ----------
    model : str or path-like, default="roberta-base"
        The encoder, as :class:`~sklearn_cap.ExplanationGuidedClassifier` takes it.
    C : float or "cv", default=10.0
        Inverse L2 strength of the probe's logistic regression; ``"cv"``
        chooses it by 3-fold CV on each reference's training texts.
    **params
        Other parameters of the classifier (``max_length``, ``precision``,
        ``random_state``, ``progress_bar``...).

    Returns
    -------
    ExplanationGuidedClassifier
        Unfitted, with ``beta=0``, mean pooling and normalised features.

    Examples
    --------
    >>> from sklearn_cap import IGPriorTransformer, make_probe_reference
    >>> reference = make_probe_reference("my-encoder", C=1.0)
    >>> reference.stages
    [LinearProbe(C=1.0)]
    >>> ig = IGPriorTransformer(reference, cv=3)  # three probes: seconds, not three fine-tunings
    """
    from ..classifier import ExplanationGuidedClassifier
    from ..stages import LinearProbe

    fixed = {"beta": 0, "pooling": "mean", "head_init": "probe", "normalize_features": True,
             "stages": [LinearProbe(C=C)]}
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise TypeError(f"make_probe_reference sets {', '.join(clash)} itself (a probe reference has "
                        f"{', '.join(f'{k}={fixed[k]!r}' for k in clash)}); leave them out, or build "
                        "ExplanationGuidedClassifier(...) yourself for another reference.")
    return ExplanationGuidedClassifier(model, **fixed, **params)


class ReferencePrior(BasePrior):
    """Base of priors computed from a reference classifier's explanations.

    Subclasses set ``estimator``, ``prefit`` and ``cv`` in ``__init__`` and
    implement :meth:`explain_with`; ``_reference_methods`` names what they
    call on the reference besides ``fit`` and ``predict_proba``, checked
    with the parameters so that another kind of classifier (a TF-IDF
    pipeline) is refused before any training.
    """

    _reference_methods = ()

    def _validate_params(self):
        est = self.estimator
        needed = ("fit", "predict_proba", *self._reference_methods)
        missing = [m for m in needed if not callable(getattr(est, m, None))] if est is not None else []
        if missing:
            raise InvalidParameterError(
                f"The estimator of {type(self).__name__} must be this library's ExplanationGuidedClassifier "
                f"(beta=0), prefit or not: the prior calls its {', '.join(m + '()' for m in missing)}, which "
                f"the given {type(est).__name__} does not have. Pass ExplanationGuidedClassifier(model, beta=0), "
                "or estimator=None for the default."
            )
        super()._validate_params()

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "prefit": ["boolean"],
        "cv": ["cv_object"],
        "progress_bar": PROGRESS_BAR,
    }

    def explain_with(self, model, texts, y):
        """Attributions of ``model`` for labels ``y``: ndarray (n_texts, max_words), NaN-padded.

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
            One attribution per word position, NaN past a text's last word.
        """
        raise NotImplementedError

    def _estimator(self):
        if self.estimator is not None:
            return self.estimator
        return make_probe_reference()  # as accurate as a fine-tuned reference on the results page, at half the cost

    def reference_key(self):
        """Equal keys mean the same reference model(s) can serve both priors (None for prefit)."""
        if self.prefit:
            return None
        est = self._estimator()
        return joblib.hash((type(est).__name__, est.get_params(deep=True), repr(self.cv)))

    def fit_reference(self, X, y):
        """Train (or take) the reference model(s).

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        References
            ``full``: the prefit ``estimator`` or one clone fitted on all
            texts; with ``cv``, ``folds``: one clone per fold.
        """
        validate_params(self)
        return self._fit_reference(*self.check_fit_data(X, y))

    # The reference estimator is a user's object: it checks its own parameters when fitted.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit_with(self, references, X, y):
        """Keep the given reference model(s) instead of training them; compute no prior.

        Parameters
        ----------
        references : References
            Reference model(s) from :meth:`fit_reference` of this or of an
            equal-keyed prior.
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        self
            The fitted prior.
        """
        self.check_fit_data(X, y)
        self._keep(references)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform_with(self, references, X, y):
        """Keep the given reference model(s) and return the training texts' priors.

        Parameters
        ----------
        references : References
            Reference model(s) from :meth:`fit_reference` of this or of an
            equal-keyed prior.
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        WordAttributions
            Each text's attributions for its gold label; with fold models,
            from the model that did not see the text.
        """
        return self._fit_transform_with(references, *self.check_fit_data(X, y))

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Train (or take) the reference classifier; compute no prior (``fit_transform`` does).

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        self
            The fitted prior.
        """
        self._keep(self._fit_reference(*self.check_fit_data(X, y)))
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None):
        """Fit, then return each training text's prior for its gold label (out-of-fold with ``cv``).

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text (required despite the default).

        Returns
        -------
        WordAttributions
            One row per text, one attribution per word (NaN: no prior).
        """
        texts, y = self.check_fit_data(X, y)
        return self._fit_transform_with(self._fit_reference(texts, y), texts, y)

    def compute_priors(self, X, y):
        """Priors of labelled texts from the fitted reference model; with ``cv``, the fold models' mean.

        Parameters
        ----------
        X : list of str
            Texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Label to explain for each text, each one of ``classes_``.

        Returns
        -------
        WordAttributions
            One row per text, one attribution per word (NaN: no prior).
        """
        check_is_fitted(self, "classes_")
        validate_params(self)
        texts, y = self.check_fit_data(X, y)
        check_known_labels(y, self.classes_, what="the reference classifier's fit")
        return self._priors(texts, y)

    # -- private paths: inputs checked by the public method that calls them ---
    def _fit_reference(self, texts, y):
        if self.prefit:
            if self.estimator is None:
                raise ValueError("prefit=True needs a fitted estimator; pass estimator=<fitted classifier>.")
            check_is_fitted(self.estimator)
            return References(full=self.estimator)
        est = self._estimator()
        if getattr(est, "beta", 0) > 0:
            raise ValueError(
                f"The reference classifier of {type(self).__name__} has beta={est.beta}: a reference is a "
                "plain model trained on texts alone. Set beta=0 on it."
            )
        if self.cv is None:
            return References(full=clone(est).fit(texts, y))
        X_arr = np.asarray(texts, dtype=object)
        folds = [(test, clone(est).fit(list(X_arr[train]), y[train]))
                 for train, test in check_cv(self.cv, y, classifier=True).split(X_arr, y)]
        return References(folds=folds)

    def _keep(self, references):
        """The fitted attributes: the reference model(s) and their classes."""
        self.estimator_ = references.full
        self.estimators_ = [m for _, m in references.folds]
        self.classes_ = references.models[0].classes_

    def _fit_transform_with(self, references, texts, y):
        self._keep(references)
        if references.full is not None:
            check_known_labels(y, self.classes_, what="the reference classifier's fit")  # a prefit model's labels
            return self._priors(texts, y)
        wa = WordAttributions(texts)
        values = np.full(wa.shape, np.nan)
        for test, model in references.folds:
            part = self.explain_with(model, [texts[i] for i in test], y[test])
            values[test, : part.shape[1]] = part
        return wa.with_values(values)

    def _priors(self, texts, y):
        models = [self.estimator_] if self.estimator_ is not None else self.estimators_
        return WordAttributions(texts, np.mean([self.explain_with(m, texts, y) for m in models], axis=0))
