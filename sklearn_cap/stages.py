"""Training stages: what :meth:`~sklearn_cap.ExplanationGuidedClassifier.fit` runs, one object each.

``fit`` validates, builds the model (:meth:`~sklearn_cap.ExplanationGuidedClassifier.initialize`),
then runs the stages of :meth:`~sklearn_cap.ExplanationGuidedClassifier.get_stages`
in order, notifying the callbacks around each. A stage is a small object
with a :meth:`Stage.run` method; adding one ("fit the head on frozen
features first", "a contrastive pass over the body") needs no edit of
``fit``: pass ``stages=[...]`` or override ``get_stages``.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator

__all__ = ["TrainingData", "Stage", "FineTune", "LinearProbe", "ContrastiveBody", "supervised_contrastive_loss"]


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


def supervised_contrastive_loss(features, labels, temperature=0.05):
    """Supervised contrastive loss of a batch: every text is pulled towards the batch's other texts of its class.

    The loss of Khosla et al. 2020 ("Supervised Contrastive Learning", their
    L_out): for each anchor with at least one positive in the batch, the
    mean over its positives of ``-log softmax(cos / temperature)`` taken over
    every other text of the batch. Anchors without a positive are left out.

    Parameters
    ----------
    features : torch.Tensor of shape (n, dim)
        Embeddings (normalised here).
    labels : torch.LongTensor of shape (n,)
    temperature : float, default=0.05

    Returns
    -------
    torch.Tensor (scalar)
        0 (with a gradient) when no text of the batch has a positive.

    Examples
    --------
    >>> import torch
    >>> f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> near = supervised_contrastive_loss(f, torch.tensor([0, 0, 1, 1]))
    >>> far = supervised_contrastive_loss(f, torch.tensor([0, 1, 0, 1]))
    >>> bool(near < far)
    True
    """
    z = torch.nn.functional.normalize(features.float(), dim=-1)
    sim = z @ z.T / float(temperature)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))  # a text is neither its own positive nor a negative
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(1)
    anchors = n_pos > 0
    if not anchors.any():
        return features.sum() * 0.0
    mean_pos = log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / n_pos[anchors]
    return -mean_pos.mean()


class ContrastiveBody(Stage):
    """Tune the encoder so that texts of a class embed together: a contrastive pass before the head is fitted.

    In the spirit of SetFit (Tunstall et al. 2022, "Efficient Few-Shot
    Learning Without Prompts"), which tunes a sentence encoder on pairs
    drawn from the labels before fitting a logistic regression; here every
    pair of a batch counts at once (the supervised contrastive loss of
    Khosla et al. 2020, :func:`supervised_contrastive_loss`), so one epoch
    costs one pass over the training texts instead of SetFit's
    ``20 x n_texts`` pairs. Batches are built of ``per_class`` texts of
    each of ``batch_size // per_class`` classes, so that every text has
    positives. It trains the pooled features only (the head is untouched),
    so a :class:`LinearProbe` and a :class:`FineTune` usually follow.
    Needs ``pooling="mean"``.

    The stage records its per-epoch mean loss in ``clf.contrastive_``.

    Parameters
    ----------
    epochs : int, default=2
    temperature : float, default=0.05
    per_class : int, default=2
        Texts of each class in a batch (at least 2: a text's positives).
    batch_size : int or None, default=None
        None: the classifier's ``batch_size``.
    learning_rate : float or None, default=None
        None: the classifier's ``learning_rate``.

    Examples
    --------
    >>> ContrastiveBody(epochs=1)
    ContrastiveBody(epochs=1)
    """

    def __init__(self, epochs=2, temperature=0.05, per_class=2, batch_size=None, learning_rate=None):
        self.epochs = epochs
        self.temperature = temperature
        self.per_class = per_class
        self.batch_size = batch_size
        self.learning_rate = learning_rate

    def batches(self, y_idx, rows, batch_size, rng):
        """One epoch of row batches, each of ``per_class`` texts from ``batch_size // per_class`` classes.

        Every training text is in exactly one batch; a class's leftover
        text (an odd count) joins that class's last group.

        Parameters
        ----------
        y_idx : ndarray of int
        rows : ndarray of int
        batch_size : int
        rng : numpy.random.Generator

        Returns
        -------
        list of ndarray of int
        """
        k = int(self.per_class)
        if k < 2:
            raise ValueError(f"ContrastiveBody(per_class={self.per_class}) needs at least 2 texts of a class per "
                             "batch (a text's positives); use per_class >= 2.")
        groups = []
        for c in np.unique(y_idx[rows]):
            members = rng.permutation(rows[y_idx[rows] == c])
            cut = [members[s:s + k] for s in range(0, len(members), k)]
            if len(cut) > 1 and len(cut[-1]) < k:
                cut = cut[:-2] + [np.concatenate(cut[-2:])]
            groups.extend(cut)
        groups = [groups[i] for i in rng.permutation(len(groups))]
        per_batch = max(1, int(batch_size) // k)
        return [np.concatenate(groups[s:s + per_batch]) for s in range(0, len(groups), per_batch)]

    def _batch_size(self, clf):
        return int(clf.batch_size if self.batch_size is None else self.batch_size)

    def n_steps(self, clf, data):
        per_batch = max(1, self._batch_size(clf) // max(2, int(self.per_class)))
        groups = sum(max(1, int(n) // max(2, int(self.per_class)))
                     for n in np.bincount(data.y_idx[data.train_rows]) if n)
        return int(math.ceil(groups / per_batch)) * int(self.epochs)

    def run(self, clf, data):
        model = clf.model_
        if not hasattr(model, "features"):
            raise ValueError("ContrastiveBody trains pooled features, which only pooling='mean' exposes; use "
                             "pooling='mean' or leave this stage out.")
        params = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
        lr = float(clf.learning_rate if self.learning_rate is None else self.learning_rate)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=float(clf.weight_decay))
        scheduler = clf.initialize_scheduler(optimizer, self.n_steps(clf, data))
        clf.contrastive_ = {"loss": [], "seconds": []}
        model.train()
        for epoch in range(int(self.epochs)):
            start, total, steps = time.perf_counter(), 0.0, 0
            for rows in self.batches(data.y_idx, data.train_rows, self._batch_size(clf), data.rng):
                batch = data.encoded.batch(rows, clf.device_)
                optimizer.zero_grad(set_to_none=True)
                with clf.autocast():
                    feats = model.features(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
                loss = supervised_contrastive_loss(feats, data.target(rows, clf.device_), self.temperature)
                loss.backward()
                clf.notify("on_grad_computed", named_parameters=list(model.named_parameters()))
                optimizer.step()
                scheduler.step()
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"The contrastive loss is {value} at epoch {epoch + 1}: lower this "
                                             f"stage's learning_rate (now {lr}) or raise its temperature.")
                total, steps = total + value, steps + 1
                clf.notify("on_batch_end", record={"loss": value, "stage": "contrastive", "step": steps})
            clf.contrastive_["loss"].append(total / max(1, steps))
            clf.contrastive_["seconds"].append(time.perf_counter() - start)
