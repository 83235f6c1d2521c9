"""The training loop of :class:`~sklearn_cap.ExplanationGuidedClassifier`, in overridable steps.

The loop lives in :class:`TrainingMixin`; each part is a method a subclass may
override, as in skorch's ``NeuralNet``:

- :meth:`~TrainingMixin.initialize_optimizer` and
  :meth:`~TrainingMixin.initialize_scheduler`;
- :meth:`~TrainingMixin.get_loss`: ``CE + beta * attribution loss`` for a batch;
- :meth:`~TrainingMixin.train_step`: loss, backward, clipping, optimizer step;
- callbacks (:class:`Callback`), called at the start and end of training and
  after every epoch; :class:`EarlyStopping` is one.
"""

import copy
import time

import numpy as np
import torch

from .attribution import attribution_loss
from .progress import progress

__all__ = ["TrainingMixin", "Callback", "EarlyStopping"]

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class Callback:
    """Hooks into the training loop; subclass and pass instances in ``callbacks=[...]``.

    Examples
    --------
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, clf, record):
    ...         print(record["epoch"], round(record["loss"], 3))
    """

    def on_train_begin(self, clf):
        """Called once the model and optimizer exist, before the first epoch.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained (``model_`` and ``optimizer_`` set).
        """

    def on_epoch_end(self, clf, record):
        """Called after every epoch with its record (``clf.history_[-1]``); return True to stop.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier being trained.
        record : dict
            The epoch's record: ``epoch``, ``loss``, ``ce``, ``attr`` (means
            over batches), ``seconds``, and ``val_accuracy`` with a validation set.

        Returns
        -------
        bool
            True stops training after this epoch.
        """
        return False

    def on_train_end(self, clf):
        """Called after the last epoch.

        Parameters
        ----------
        clf : ExplanationGuidedClassifier
            The classifier that was trained.
        """


class EarlyStopping(Callback):
    """Stop when validation accuracy has not improved for ``patience`` epochs; keep the best weights.

    The classifier adds one when ``early_stopping=True`` (with
    ``n_iter_no_change`` as ``patience``) and holds out
    ``validation_fraction`` of the training texts for it.

    Parameters
    ----------
    patience : int, default=2
        Epochs without an improvement of ``val_accuracy`` after which
        training stops.
    """

    def __init__(self, patience=2):
        self.patience = patience

    def on_train_begin(self, clf):
        self.best_, self.best_state_, self.stale_ = -np.inf, None, 0

    def on_epoch_end(self, clf, record):
        score = record.get("val_accuracy")
        if score is None:
            raise ValueError("EarlyStopping needs a validation score: fit with early_stopping=True.")
        if score > self.best_:
            self.best_, self.stale_ = score, 0
            self.best_state_ = copy.deepcopy(clf.model_.state_dict())
        else:
            self.stale_ += 1
        return self.stale_ >= self.patience

    def on_train_end(self, clf):
        if self.best_state_ is not None:
            clf.model_.load_state_dict(self.best_state_)
        self.best_state_ = None  # do not keep a second copy of the weights


class TrainingMixin:
    """The fitting loop; mixed into :class:`~sklearn_cap.ExplanationGuidedClassifier`.

    Expects of the class: ``model_``, ``device_``, the parameters ``epochs``,
    ``batch_size``, ``learning_rate``, ``weight_decay``, ``warmup_ratio``,
    ``optimizer``, ``max_grad_norm``, ``beta``, ``normalization``,
    ``callbacks``, ``progress_bar``, and the methods ``forward``,
    ``word_attributions`` and ``autocast``.
    """

    def initialize_optimizer(self):
        """The optimizer: AdamW (or the ``optimizer`` callable) with no weight decay on biases and norms."""
        named = list(self.model_.named_parameters())
        groups = [
            {"params": [p for n, p in named if not n.endswith(_NO_DECAY)], "weight_decay": float(self.weight_decay)},
            {"params": [p for n, p in named if n.endswith(_NO_DECAY)], "weight_decay": 0.0},
        ]
        if self.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=float(self.learning_rate))
        return self.optimizer(groups, lr=float(self.learning_rate))

    def initialize_scheduler(self, optimizer, total_steps):
        """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0.

        Parameters
        ----------
        optimizer : torch.optim.Optimizer
            The optimizer whose learning rate is scheduled (from
            :meth:`initialize_optimizer`).
        total_steps : int
            Optimisation steps of the whole training (batches x epochs).

        Returns
        -------
        torch.optim.lr_scheduler.LambdaLR
            Stepped once per optimisation step.
        """
        warmup = int(float(self.warmup_ratio) * total_steps)

        def factor(step):
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def get_loss(self, batch, target, prior):
        """``CE + beta * MSE(norm(self-attribution), norm(prior))`` over the batch's valid words.

        Parameters
        ----------
        batch : Batch
        target : torch.LongTensor of shape (n,)
        prior : torch.Tensor of shape (n, width) or None
            NaN where a word has no prior.

        Returns
        -------
        loss : torch.Tensor (scalar)
        parts : dict
            ``{"ce": tensor, "attr": tensor}``.
        """
        attr = torch.zeros((), device=target.device)
        logits = None
        if prior is not None and self.beta > 0:
            valid = torch.isfinite(prior) & batch.complete
            if valid.any():
                words, logits = self.word_attributions(batch, target, create_graph=True)
                attr = attribution_loss(words, prior, valid, self.normalization)
        if logits is None:
            logits = self.model_(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        ce = torch.nn.functional.cross_entropy(logits, target)
        return ce + float(self.beta) * attr, {"ce": ce, "attr": attr}

    def train_step(self, batch, target, prior):
        """One optimisation step; returns the batch's ``loss``, ``ce`` and ``attr`` as floats.

        Parameters
        ----------
        batch : Batch
            The batch's encoded texts on the training device.
        target : torch.LongTensor of shape (n,)
            Gold class indices (columns of ``classes_``).
        prior : torch.Tensor of shape (n, width) or None
            The batch's priors, NaN where a word has no prior; None trains
            with cross-entropy only.

        Returns
        -------
        dict of str -> float
            ``loss``, ``ce`` and ``attr`` of the batch (see :meth:`get_loss`).
        """
        self.optimizer_.zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = self.get_loss(batch, target, prior)
        loss.backward()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model_.parameters(), float(self.max_grad_norm))
        self.optimizer_.step()
        self.scheduler_.step()
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}

    def fit_loop(self, encoded, y_idx, priors, train_rows, val_rows, rng, callbacks):
        """Train ``model_`` for ``epochs`` epochs over length-grouped batches of ``train_rows``.

        ``priors`` is a float tensor (texts x words, NaN for none) or None;
        ``val_rows`` (or None) are scored after every epoch as ``val_accuracy``.

        Parameters
        ----------
        encoded : EncodedTexts
            All texts (training and validation), encoded for ``model_``.
        y_idx : ndarray of shape (n_texts,), dtype int
            Gold class index of each text (columns of ``classes_``).
        priors : torch.Tensor of shape (n_texts, n_words) or None
            Priors by word position, NaN where a word has no prior; None
            trains with cross-entropy only.
        train_rows : ndarray of int
            Indices of the texts to train on.
        val_rows : ndarray of int or None
            Indices of the held-out texts scored after every epoch; None
            for no validation.
        rng : numpy.random.Generator
            Shuffles the training batches.
        callbacks : list of Callback
            Called at the start and end of training and after every epoch.

        Returns
        -------
        self
            With ``history_`` and ``n_epochs_`` set.
        """
        device = self.device_
        bs = int(self.batch_size)
        steps_per_epoch = int(np.ceil(len(train_rows) / bs))
        total = steps_per_epoch * int(self.epochs)
        self.optimizer_ = self.initialize_optimizer()
        self.scheduler_ = self.initialize_scheduler(self.optimizer_, total)
        y_t = torch.as_tensor(y_idx, dtype=torch.long)
        self.history_ = []
        for cb in callbacks:
            cb.on_train_begin(self)
        with progress(total=total, enabled=self.progress_bar, desc="training", unit="step") as bar:
            for epoch in range(int(self.epochs)):
                self.model_.train()
                start = time.perf_counter()
                sums = {}
                for rows in encoded.batches(train_rows, bs, rng=rng):
                    batch = encoded.batch(rows, device)
                    prior = None if priors is None else priors[rows].to(device)
                    for k, v in self.train_step(batch, y_t[rows].to(device), prior).items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.update(1)
                    bar.set_postfix(loss=f"{sums['loss'] / max(1, bar.n - epoch * steps_per_epoch):.3f}")
                record = {k: v / steps_per_epoch for k, v in sums.items()}
                record["epoch"] = epoch + 1
                record["seconds"] = time.perf_counter() - start
                if val_rows is not None:
                    pred = self.forward(encoded, val_rows).argmax(1)
                    record["val_accuracy"] = float(np.mean(pred == y_idx[val_rows]))
                self.history_.append(record)
                if any([cb.on_epoch_end(self, record) for cb in callbacks]):
                    break
        for cb in callbacks:
            cb.on_train_end(self)
        # The optimizer's state is twice the model's size: not worth keeping in a pickle.
        del self.optimizer_, self.scheduler_
        self.model_.eval()
        self.n_epochs_ = len(self.history_)
        return self
