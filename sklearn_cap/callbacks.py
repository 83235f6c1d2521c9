"""Callbacks of the training loop: named objects notified at each point of :meth:`~sklearn_cap.ExplanationGuidedClassifier.fit`.

The loop itself only iterates; what happens around it is a callback.
:meth:`~sklearn_cap.ExplanationGuidedClassifier.get_default_callbacks` builds
the ones the classifier's parameters ask for, in this order:

- ``"progress_bar"`` (:class:`ProgressBar`, from ``progress_bar``);
- ``"gradient_clipping"`` (:class:`GradientNormClipping`, from ``max_grad_norm``);
- ``"validation"`` (:class:`ValidationScoring`, with ``early_stopping``);

then the user's ``callbacks``, then ``"early_stopping"`` (:class:`EarlyStopping`,
from ``early_stopping`` and ``n_iter_no_change``), which restores the best
weights after every other callback has seen the last epoch. After ``fit``
they are in ``callbacks_``, a dict from name to the callback object.

Every hook takes the classifier first and keyword arguments after it, so a
callback implements only the hooks it needs (and accepts ``**kwargs``).
"""

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .progress import progress

__all__ = ["Callback", "ProgressBar", "GradientNormClipping", "ValidationScoring", "EarlyStopping"]


class Callback(BaseEstimator):
    """Base class of the training loop's callbacks; subclass and pass instances in ``callbacks=[...]``.

    A callback's parameters follow scikit-learn's rules (stored verbatim in
    ``__init__``, ``get_params``/``set_params``, ``clone``). Pass a callback
    alone (it is named after its class) or as a ``(name, callback)`` pair.

    Examples
    --------
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, clf, record, **kwargs):
    ...         print(record["epoch"], round(record["loss"], 3))
    """

    def initialize(self):
        """Reset the state of a previous ``fit``; called before every ``fit``. Returns self."""
        return self

    def on_train_begin(self, clf, **kwargs):
        """Called once the model exists, before the first stage.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_stage_begin(self, clf, stage, **kwargs):
        """Called before each training stage.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        stage : Stage
            The :class:`~sklearn_cap.stages.Stage` about to run.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_epoch_begin(self, clf, epoch, **kwargs):
        """Called before each fine-tuning epoch.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        epoch : int
            The epoch, counted from 0.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_batch_begin(self, clf, batch, **kwargs):
        """Called before each optimisation step.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        batch : Batch
            The :class:`~sklearn_cap.encoding.Batch` of the step.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_grad_computed(self, clf, named_parameters, **kwargs):
        """Called after the backward pass, before the optimizer steps (clipping goes here).

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        named_parameters : list of (str, torch.nn.Parameter)
            The model's parameters, their gradients set.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_batch_end(self, clf, record, **kwargs):
        """Called after each optimisation step.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        record : dict
            ``loss``, ``ce``, ``attr`` of the step, ``epoch`` (from 1) and ``step``.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_epoch_end(self, clf, record, **kwargs):
        """Called after every epoch with its record (``clf.history_[-1]``); return True to stop.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        record : dict
            The epoch's record: ``epoch``, ``loss``, ``ce``, ``attr`` (means
            over batches), ``seconds``, and ``val_accuracy`` once
            :class:`ValidationScoring` has run. A callback may add keys.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`.

        Returns
        -------
        bool
            True stops training after this epoch.
        """
        return False

    def on_stage_end(self, clf, stage, **kwargs):
        """Called after each training stage.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        stage : Stage
            The :class:`~sklearn_cap.stages.Stage` that ran.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """

    def on_train_end(self, clf, **kwargs):
        """Called after the last stage, also when training stopped on an error.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        **kwargs
            ``data``: the :class:`~sklearn_cap.stages.TrainingData`, where the loop has it.
        """


class ProgressBar(Callback):
    """A ``tqdm`` bar over all optimisation steps of a ``fit``, showing the running mean loss.

    Parameters
    ----------
    enabled : bool or "auto", default="auto"
        "auto": a bar when stderr is a terminal.
    """

    def __init__(self, enabled="auto"):
        self.enabled = enabled

    def initialize(self):
        self.bar_, self.sum_, self.count_ = None, 0.0, 0
        return self

    def on_train_begin(self, clf, **kwargs):
        self.bar_ = progress(total=clf.n_train_steps_, enabled=self.enabled, desc="training", unit="step")

    def on_epoch_begin(self, clf, epoch, **kwargs):
        self.sum_, self.count_ = 0.0, 0

    def on_batch_end(self, clf, record, **kwargs):
        self.sum_, self.count_ = self.sum_ + record["loss"], self.count_ + 1
        self.bar_.update(1)
        self.bar_.set_postfix(loss=f"{self.sum_ / self.count_:.3f}")

    def on_train_end(self, clf, **kwargs):
        if self.bar_ is not None:
            self.bar_.close()
        self.bar_ = None  # a tqdm object does not pickle


class GradientNormClipping(Callback):
    """Clip the gradient's total norm before every optimizer step.

    Parameters
    ----------
    max_norm : float, default=1.0
        Largest allowed norm of all parameters' gradients together.
    """

    def __init__(self, max_norm=1.0):
        self.max_norm = max_norm

    def on_grad_computed(self, clf, named_parameters, **kwargs):
        torch.nn.utils.clip_grad_norm_([p for _, p in named_parameters], float(self.max_norm))


class ValidationScoring(Callback):
    """Score the held-out texts after every epoch as ``record["val_accuracy"]``.

    The held-out rows are the training data's ``val_rows``: the classifier
    holds out ``validation_fraction`` of its texts when ``early_stopping``
    is on (:meth:`~sklearn_cap.ExplanationGuidedClassifier.split_validation`).
    """

    def on_epoch_end(self, clf, record, data=None, **kwargs):
        if data is None or data.val_rows is None:
            raise ValueError("ValidationScoring needs held-out texts: fit with early_stopping=True.")
        pred = clf.forward(data.encoded, data.val_rows).argmax(1)
        record["val_accuracy"] = float(np.mean(pred == data.y_idx[data.val_rows]))
        return False


class EarlyStopping(Callback):
    """Stop when validation accuracy has not improved for ``patience`` epochs; keep the best weights.

    The classifier adds one when ``early_stopping=True`` (with
    ``n_iter_no_change`` as ``patience``), after a :class:`ValidationScoring`.

    Parameters
    ----------
    patience : int, default=2
        Epochs without an improvement of ``val_accuracy`` after which
        training stops.
    """

    def __init__(self, patience=2):
        self.patience = patience

    def initialize(self):
        self.best_, self.best_state_, self.stale_ = -np.inf, None, 0
        return self

    def on_epoch_end(self, clf, record, **kwargs):
        score = record.get("val_accuracy")
        if score is None:
            raise ValueError("EarlyStopping needs a validation score: fit with early_stopping=True.")
        if score > self.best_:
            self.best_, self.stale_ = score, 0
            self.best_state_ = copy.deepcopy(clf.model_.state_dict())
        else:
            self.stale_ += 1
        return self.stale_ >= int(self.patience)

    def on_train_end(self, clf, **kwargs):
        if self.best_state_ is not None:
            clf.model_.load_state_dict(self.best_state_)
        self.best_state_ = None  # do not keep a second copy of the weights
