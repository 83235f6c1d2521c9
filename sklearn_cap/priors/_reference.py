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

A :class:`~sklearn_cap.priors.PriorUnion` holding IG and LIME priors with the
same reference settings trains the reference model(s) once and hands them to
both (:meth:`_fit_references` / :meth:`_fit_from_references`).
"""

import zlib

import joblib
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import check_cv
from sklearn.utils.validation import check_is_fitted

from ..text import WordAttributions, check_texts, text_input_tags


def text_rng(seed, text):
    """A NumPy RandomState that depends on the seed and the text only."""
    return np.random.RandomState(zlib.crc32(text.encode("utf-8")) ^ (int(seed) & 0x7FFFFFFF))


class ReferencePriorMixin(TransformerMixin, BaseEstimator):
    """Base of priors computed from a reference classifier's explanations."""

    def _default_estimator(self):
        from ..classifier import ExplanationGuidedClassifier

        return ExplanationGuidedClassifier(beta=0)

    def _check_xy(self, X, y):
        texts = check_texts(X, allow_empty=False)
        if y is None:
            raise ValueError(f"{type(self).__name__} needs the labels y: the prior explains each text's gold label.")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(texts):
            raise ValueError(f"X and y have different lengths: {len(texts)} texts and {len(y)} labels.")
        return texts, y

    def reference_key(self):
        """Equal keys mean the same reference model(s) can serve both priors."""
        if self.prefit:
            return None
        est = self.estimator if self.estimator is not None else self._default_estimator()
        return joblib.hash((type(est).__name__, est.get_params(deep=True), repr(self.cv)))

    def _fit_references(self, X, y):
        """Train the reference model(s): ``{"full": model or None, "folds": [(test_rows, model)]}``."""
        texts, y = self._check_xy(X, y)
        if self.prefit:
            check_is_fitted(self.estimator)
            return {"full": self.estimator, "folds": []}
        est = self.estimator if self.estimator is not None else self._default_estimator()
        if self.cv is None:
            return {"full": clone(est).fit(texts, y), "folds": []}
        folds = []
        X_arr = np.asarray(texts, dtype=object)
        for train, test in check_cv(self.cv, y, classifier=True).split(X_arr, y):
            folds.append((test, clone(est).fit(list(X_arr[train]), y[train])))
        return {"full": None, "folds": folds}

    def _fit_from_references(self, refs, X, y):
        """Keep the reference model(s) and return the training texts' priors."""
        texts, y = self._check_xy(X, y)
        self.estimator_ = refs["full"]
        self.estimators_ = [m for _, m in refs["folds"]]
        self.classes_ = (refs["full"] or self.estimators_[0]).classes_
        if refs["full"] is not None:
            return self.compute_priors(texts, y)
        wa = WordAttributions(texts)
        values = np.full(wa.shape, np.nan)
        for test, model in refs["folds"]:
            part = self._explain(model, [texts[i] for i in test], y[test])
            values[test, : part.shape[1]] = part
        return wa.with_values(values)

    def fit(self, X, y):
        """Train (or take) the reference classifier."""
        self._fit_from_references(self._fit_references(X, y), X, y)
        return self

    def fit_transform(self, X, y=None):
        """Fit, then return each training text's prior for its gold label."""
        return self._fit_from_references(self._fit_references(X, y), X, y)

    def transform(self, X):
        """The texts with no prior: unlabelled texts have no gold label to explain."""
        check_is_fitted(self, "classes_")
        return WordAttributions(check_texts(X))

    def compute_priors(self, X, y):
        """Priors of labelled texts from the fitted reference model.

        With ``cv``, the fold models' priors are averaged.
        """
        check_is_fitted(self, "classes_")
        texts, y = self._check_xy(X, y)
        known = set(self.classes_.tolist())
        unknown = sorted({v for v in y.tolist() if v not in known}, key=str)
        if unknown:
            raise ValueError(f"Labels {unknown[:5]} were not seen by the reference classifier.")
        models = [self.estimator_] if self.estimator_ is not None else self.estimators_
        values = np.mean([self._explain(m, texts, y) for m in models], axis=0)
        return WordAttributions(texts, values)

    def _explain(self, model, texts, y):
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = text_input_tags(super().__sklearn_tags__(), y_required=True)
        return tags
