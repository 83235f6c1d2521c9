"""Training stages: what :meth:`~sklearn_cap.ExplanationGuidedClassifier.fit` runs, one object each.

``fit`` validates, builds the model (:meth:`~sklearn_cap.ExplanationGuidedClassifier.initialize`),
then runs the stages of :meth:`~sklearn_cap.ExplanationGuidedClassifier.get_stages`
in order, notifying the callbacks around each. A stage is a small object
with a :meth:`Stage.run` method; adding one ("fit the head on frozen
features first", "a contrastive pass over the body") needs no edit of
``fit``: pass ``stages=[...]`` or override ``get_stages``.
"""

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator

__all__ = ["TrainingData", "Stage", "FineTune", "LinearProbe"]


@dataclass
class TrainingData:
    """What a stage trains on: the encoded texts, their classes and priors, and the row split.

    Parameters
    ----------
    encoded : EncodedTexts
        All texts of ``fit`` (training and held-out), encoded for the model.
    y_idx : ndarray of int
        Gold class index of each text (columns of ``classes_``).
    priors : torch.Tensor of shape (n_texts, n_words) or None
        Priors by word position, NaN where a word has none; None trains
        with cross-entropy only.
    train_rows : ndarray of int
        Rows to train on.
    val_rows : ndarray of int or None
        Held-out rows (early stopping), or None.
    rng : numpy.random.Generator
        Shuffles the training batches (seeded from ``random_state``).
    """

    encoded: object
    y_idx: np.ndarray
    priors: object
    train_rows: np.ndarray
    val_rows: object
    rng: np.random.Generator

    def target(self, rows, device):
        """Gold class indices of ``rows`` as a tensor on ``device``.

        Parameters
        ----------
        rows : ndarray of int
        device : torch.device

        Returns
        -------
        torch.LongTensor of shape (len(rows),)
        """
        return torch.as_tensor(self.y_idx[rows], dtype=torch.long, device=device)

    def prior(self, rows, device):
        """Priors of ``rows`` on ``device``, or None.

        Parameters
        ----------
        rows : ndarray of int
        device : torch.device

        Returns
        -------
        torch.Tensor of shape (len(rows), n_words) or None
        """
        return None if self.priors is None else self.priors[rows].to(device)


class Stage(BaseEstimator):
    """Base class of a training stage.

    A stage's parameters follow scikit-learn's rules, so stages can be
    cloned and searched over inside the classifier's ``stages``.

    Examples
    --------
    >>> class Report(Stage):
    ...     '''A stage that trains nothing and says how many texts there are.'''
    ...     def run(self, clf, data):
    ...         print(len(data.train_rows), "training texts")
    """

    def n_steps(self, clf, data):
        """Optimisation steps this stage will take (for the progress bar); 0 by default.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
        data : TrainingData

        Returns
        -------
        int
        """
        return 0

    def run(self, clf, data):
        """Train ``clf.model_`` (in place) on ``data``.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being fitted; its model exists.
        data : TrainingData
        """
        raise NotImplementedError


class FineTune(Stage):
    """Fine-tune the whole model for ``epochs`` epochs: the classifier's loss, AdamW, warm-up then linear decay.

    Parameters
    ----------
    epochs : int or None, default=None
        None: the classifier's ``epochs``.

    Examples
    --------
    >>> FineTune(epochs=2)
    FineTune(epochs=2)
    """

    def __init__(self, epochs=None):
        self.epochs = epochs

    def _epochs(self, clf):
        return int(clf.epochs if self.epochs is None else self.epochs)

    def n_steps(self, clf, data):
        return int(np.ceil(len(data.train_rows) / int(clf.batch_size))) * self._epochs(clf)

    def run(self, clf, data):
        clf.optimizer_ = clf.initialize_optimizer()
        clf.scheduler_ = clf.initialize_scheduler(clf.optimizer_, self.n_steps(clf, data))
        try:
            for epoch in range(self._epochs(clf)):
                record = clf.run_single_epoch(data, epoch)
                clf.history_.append(record)
                if clf.notify("on_epoch_end", record=record, data=data):
                    break
        finally:
            # The optimizer's state is twice the model's size: not worth keeping in a pickle.
            del clf.optimizer_, clf.scheduler_


class LinearProbe(Stage):
    """Fit the head as a logistic regression on the frozen encoder's features: the LP of LP-FT.

    Fine-tuning from a random head moves the encoder before the head is any
    good, which distorts features the pre-trained encoder already had
    (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
    Underperform Out-of-Distribution"); fitting the head first on frozen
    features and then fine-tuning (LP-FT) keeps them. This stage runs the
    encoder once in evaluation mode over the training texts, fits
    scikit-learn's ``LogisticRegression`` on the pooled features (the
    ones the head reads) and copies its weights into the head; a
    :class:`FineTune` stage usually follows. Needs ``pooling="mean"``.

    The stage records what it fitted in the classifier's ``probe_``: ``C``,
    the probe's accuracy on the training texts, and with ``C="cv"`` the mean
    cross-validated accuracy of every candidate.

    Parameters
    ----------
    C : float or "cv", default=10.0
        Inverse L2 strength of the logistic regression; ``"cv"`` chooses it
        among ``Cs`` by stratified ``cv``-fold accuracy on the training
        texts alone.
    Cs : tuple of float, default=(0.1, 1.0, 10.0, 100.0)
    cv : int, default=3
    max_iter : int, default=1000

    Examples
    --------
    >>> LinearProbe(C=1.0)
    LinearProbe(C=1.0)
    """

    def __init__(self, C=10.0, Cs=(0.1, 1.0, 10.0, 100.0), cv=3, max_iter=1000):
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter

    def choose_C(self, features, y_idx, seed=0):
        """``C``, or with ``C="cv"`` the candidate of ``Cs`` with the best cross-validated accuracy.

        Parameters
        ----------
        features : ndarray of shape (n, hidden)
        y_idx : ndarray of int
        seed : int, default=0
            Shuffles the folds.

        Returns
        -------
        C : float
        scores : dict of str -> float
            Mean cross-validated accuracy per candidate (empty without ``"cv"``).
        """
        if self.C != "cv":
            return float(self.C), {}
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score

        folds = min(int(self.cv), int(np.bincount(y_idx)[np.unique(y_idx)].min()))
        if folds < 2:
            raise ValueError("LinearProbe(C='cv') needs at least 2 training texts of every class; give C a number.")
        split = StratifiedKFold(folds, shuffle=True, random_state=seed)
        scores = {f"{c:g}": float(cross_val_score(LogisticRegression(C=float(c), max_iter=int(self.max_iter)),
                                                  features, y_idx, cv=split).mean()) for c in self.Cs}
        best = max(self.Cs, key=lambda c: scores[f"{c:g}"])  # ties: the first, the strongest regularisation
        return float(best), scores

    def fit_probe(self, features, y_idx, n_classes, C):
        """The fitted ``LogisticRegression`` and its (n_classes, hidden) weights and biases, every class a row.

        Classes absent from ``y_idx`` (possible after a validation split)
        get zero weights and a bias below every other class's.

        Parameters
        ----------
        features : ndarray of shape (n, hidden)
        y_idx : ndarray of int
        n_classes : int
        C : float

        Returns
        -------
        lr : LogisticRegression
        weight : ndarray of shape (n_classes, hidden)
        intercept : ndarray of shape (n_classes,)
        """
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=float(C), max_iter=int(self.max_iter)).fit(features, y_idx)
        coef, bias = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2:  # scikit-learn keeps one row for two classes: logits (0, w.x + b)
            coef, bias = np.vstack([-coef / 2, coef / 2]), np.array([-bias[0] / 2, bias[0] / 2])
        weight = np.zeros((n_classes, features.shape[1]))
        intercept = np.full(n_classes, bias.min() - 10.0)
        weight[lr.classes_], intercept[lr.classes_] = coef, bias
        return lr, weight, intercept

    def run(self, clf, data):
        model = clf.model_
        if not hasattr(model, "features"):
            raise ValueError("LinearProbe reads pooled features, which only pooling='mean' exposes; use "
                             "pooling='mean' or head_init='random'.")
        feats, y_idx = clf.features(data.encoded, data.train_rows), data.y_idx[data.train_rows]
        C, scores = self.choose_C(feats, y_idx, seed=int(data.rng.integers(2**31)) if self.C == "cv" else 0)
        lr, weight, intercept = self.fit_probe(feats, y_idx, len(clf.classes_), C)
        clf.probe_ = {"C": C, "train_accuracy": float(lr.score(feats, y_idx)), "cv_accuracy": scores}
        head = model.classifier
        with torch.no_grad():
            # A cosine head has no bias and keeps only the class directions.
            head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
            if head.bias is not None:
                head.bias.copy_(torch.as_tensor(intercept, dtype=head.bias.dtype))
