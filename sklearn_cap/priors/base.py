"""The prior contract: what every prior transformer promises, and the reference-model hand-off.

The data path of a CAP Hybrid pipeline::

    texts, y ──► prior.fit_transform(X, y) ──► WordAttributions ──► clf.fit(·, y)
                 (labels needed: each text's       texts, words,       CE + beta x
                  gold label is explained)         priors (NaN: none)  attribution loss

    texts ─────► prior.transform(X) ─────────► WordAttributions ──► clf.predict(·)
                 (no labels: no prior,             texts, words,
                  no scorer or model call)         no values

This is the contract of scikit-learn's ``TargetEncoder``: ``fit_transform``
differs from ``fit().transform()``. A :class:`~sklearn.pipeline.Pipeline`
calls ``fit_transform`` while fitting and ``transform`` while predicting, so
priors reach the classifier at fit time only, and ``predict`` never scores.
A classifier with ``beta > 0`` refuses a ``fit`` without prior values.
"""

from dataclasses import dataclass, field

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..text import WordAttributions
from ..validation import check_labels, check_texts, text_input_tags

__all__ = ["BasePrior", "References"]


@dataclass
class References:
    """Fitted reference classifier(s) that IG- and LIME-style priors explain.

    Parameters
    ----------
    full : estimator or None, default=None
        One classifier fitted on all training texts (None when cross-fitted).
    folds : list of (ndarray, estimator), default=[]
        Cross-fitting: the rows each fold model did *not* see, and the model.

    Attributes
    ----------
    models : list of estimator
        ``[full]``, or the fold models when ``full`` is None.
    """

    full: object = None
    folds: list = field(default_factory=list)

    @property
    def models(self):
        return [self.full] if self.full is not None else [m for _, m in self.folds]


class BasePrior(TransformerMixin, BaseEstimator):
    """Base class of prior transformers; subclass it to write a prior that joins a :class:`PriorUnion`.

    The contract:

    - ``fit(X, y)`` learns what the prior needs and returns ``self``;
    - ``fit_transform(X, y)`` returns the training texts' priors, a
      :class:`~sklearn_cap.text.WordAttributions` with one value per word
      (NaN for "no prior for this word"), each for the text's gold label;
    - ``transform(X)`` returns the texts with *no* prior values and calls no
      model: unlabelled texts have no gold label;
    - ``compute_priors(X, y)`` returns priors of any labelled texts after ``fit``.

    A subclass implements :meth:`fit` and :meth:`compute_priors` (and
    overrides :meth:`fit_transform` when training priors are made
    differently, as cross-fitting does).

    Priors that explain a reference classifier (IG, LIME) also implement the
    hand-off: :meth:`reference_key` (equal keys: one set of reference models
    serves both), :meth:`fit_reference`, :meth:`fit_with` and
    :meth:`fit_transform_with`. A
    :class:`~sklearn_cap.priors.PriorUnion` trains each distinct reference
    once and hands it to every member that shares it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cap.priors import BasePrior
    >>> class WordLength(BasePrior):
    ...     "Longer words matter more: a toy prior."
    ...     def fit(self, X, y):
    ...         self.n_texts_ = len(self.check_fit_data(X, y)[0])
    ...         return self
    ...     def compute_priors(self, X, y):
    ...         texts, _ = self.check_fit_data(X, y)
    ...         wa = WordAttributions(texts)
    ...         return wa.with_values([[len(w) for w in ws] + [np.nan] * (wa.width - len(ws)) for ws in wa.words])
    >>> WordLength().fit_transform(["my card", "hello"], ["a", "b"]).to_list(0)
    [('my', 2.0), ('card', 4.0)]
    """

    def fit(self, X, y):
        """Learn what the prior needs from labelled texts; return ``self``.

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
        raise NotImplementedError(f"{type(self).__name__} must implement fit(X, y).")

    def compute_priors(self, X, y):
        """Priors of labelled texts (after ``fit``): a WordAttributions.

        Parameters
        ----------
        X : list of str
            Texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Label of each text; its prior is about that label.

        Returns
        -------
        WordAttributions
            One row per text, one value per word (NaN: no prior).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement compute_priors(X, y).")

    def fit_transform(self, X, y=None):
        """Fit, then return each training text's prior for its gold label.

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text (required despite the default: priors
            need the labels).

        Returns
        -------
        WordAttributions
            One row per text, one value per word (NaN: no prior).
        """
        self.check_fit_data(X, y)
        return self.fit(X, y).compute_priors(X, y)

    def transform(self, X):
        """The texts with no prior values (no model is called): what ``Pipeline.predict`` passes on.

        Parameters
        ----------
        X : list of str
            Texts (no labels needed); empty texts are allowed.

        Returns
        -------
        WordAttributions
            The texts and their words, with no values (all NaN).
        """
        check_is_fitted(self)
        return WordAttributions(check_texts(X))

    def check_fit_data(self, X, y):
        """``(texts, y)`` checked: texts with a word each, one label per text.

        Parameters
        ----------
        X : list of str
            Texts; each must have at least one word.
        y : array-like of shape (n_texts,)
            One label per text; None raises a ``ValueError``.

        Returns
        -------
        texts : list of str
            The checked texts.
        y : ndarray of shape (n_texts,)
            The checked labels.
        """
        texts = check_texts(X, allow_empty=False)
        return texts, check_labels(y, len(texts), owner=type(self).__name__)

    # -- the reference-model hand-off ---------------------------------------
    def reference_key(self):
        """A hashable key of the reference models this prior needs, or None (needs none)."""
        return None

    def fit_reference(self, X, y):
        """Train (or take) the reference model(s): a :class:`References`.

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        References
            The fitted reference model(s).
        """
        raise NotImplementedError(f"{type(self).__name__} explains no reference model.")

    def fit_with(self, references, X, y):
        """Fit with given :class:`References` instead of training them; compute no prior.

        Parameters
        ----------
        references : References
            Reference model(s) from :meth:`fit_reference`, of this or of an
            equal-keyed prior (:meth:`reference_key`).
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        self
            The fitted prior.
        """
        raise NotImplementedError(f"{type(self).__name__} explains no reference model.")

    def fit_transform_with(self, references, X, y):
        """Fit with given :class:`References` instead of training them; return the training priors.

        Parameters
        ----------
        references : References
            Reference model(s) from :meth:`fit_reference`, of this or of an
            equal-keyed prior (:meth:`reference_key`).
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        WordAttributions
            One row per text, one value per word (NaN: no prior).
        """
        raise NotImplementedError(f"{type(self).__name__} explains no reference model.")

    def __sklearn_tags__(self):
        return text_input_tags(super().__sklearn_tags__(), y_required=True)
