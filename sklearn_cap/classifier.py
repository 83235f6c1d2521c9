"""ExplanationGuidedClassifier: a Hugging Face encoder trained with CE + beta x attribution loss.

The loss for a batch is ``CE + beta * MSE(norm(self-attribution), norm(prior))``
where the self-attribution is the model's own word attribution for the gold
class (IG, as in the paper, or gradient x input), pooled from tokens into the
words of the prior, both normalised per text the same way, and the MSE runs
over words that have a finite prior and survived truncation whole.

The parts live in their own modules: the network in :mod:`sklearn_cap.modeling`,
the encoded texts in :mod:`sklearn_cap.encoding`, the training stages in
:mod:`sklearn_cap.stages`, the callbacks in :mod:`sklearn_cap.callbacks`, the
attribution methods in :mod:`sklearn_cap.attribution`. This module holds the
estimator: parameters, ``fit`` and the loop's overridable steps (as skorch's
``NeuralNet``: ``initialize``, ``notify``, ``infer``, ``get_loss``,
``train_step``, ``run_single_epoch``), inference, ``explain`` and pickling.
"""

import io
import math
import time
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .attribution import ATTRIBUTIONS, NORMALIZATIONS, AttributionMethod, attribution_loss, resolve_attribution
from .callbacks import Callback, EarlyStopping, GradientNormClipping, ProgressBar, ValidationScoring
from .encoding import EncodedTexts
from .loading import resolve_device
from .modeling import build_classifier, max_tokens, resolve_pooling
from .progress import PROGRESS_BAR, progress
from .stages import ContrastiveBody, FineTune, LinearProbe, Stage, TrainingData
from .text import WordAttributions
from .validation import (RANDOM_STATE, check_known_labels, check_labels, check_min_classes, check_texts, seed_from,
                         text_input_tags)

__all__ = ["ExplanationGuidedClassifier", "LEGACY_RECIPE"]

# The defaults before the LP-FT recipe (sklearn-cap 0.1.0.dev0 up to issue 28): a randomly initialised head
# fine-tuned with the body at one learning rate. ExplanationGuidedClassifier(**LEGACY_RECIPE) trains as then.
LEGACY_RECIPE = {"head_init": "random", "normalize_features": False, "head_learning_rate": None, "learning_rate": 5e-5}

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
_HEAD = ("classifier.", "score.")

_NO_PRIORS = (
    "beta={beta} but X carries no prior values, so the attribution loss would train nothing. A prior "
    "transformer's transform(X) returns texts without priors (like TargetEncoder, priors need the labels): "
    "get them with prior.fit_transform(X, y), inside a Pipeline (which calls fit_transform), or pass "
    "fit(X, y, priors=...). For plain cross-entropy, set beta=0."
)


class ExplanationGuidedClassifier(ClassifierMixin, BaseEstimator):
    """A text classifier whose own explanations are trained towards attribution priors.

    ``fit`` takes raw texts with ``beta=0`` (plain cross-entropy: the vanilla
    baseline) or the :class:`~sklearn_cap.text.WordAttributions` a prior
    transformer's ``fit_transform`` returns (cross-entropy plus ``beta``
    times the attribution loss). ``predict``, ``predict_proba`` and
    ``explain`` take either.

    Parameters
    ----------
    model : str or path-like, default="roberta-base"
        Hub id or local folder of an encoder, e.g.
        :data:`sklearn_cap.embedded.ENCODER`. A classification head is added.
    pooling : {"auto", "cls", "mean"}, default="auto"
        ``"cls"``: the model's own sequence-classification head (first
        token). ``"mean"``: masked mean of the token states, then a linear
        head. ``"auto"``: ``"mean"`` for a sentence-transformers folder that
        pools by mean (the embedded MiniLM), else ``"cls"``.
    head_init : {"auto", "probe", "random"}, default="auto"
        How the classification head starts. ``"probe"``: a logistic
        regression fitted on the frozen encoder's pooled features
        (:class:`~sklearn_cap.stages.LinearProbe`), then fine-tuning: LP-FT
        (Kumar et al. 2022). ``"random"``: a randomly initialised head.
        ``"auto"``: ``"probe"`` with mean pooling, ``"random"`` with the
        model's own (``"cls"``) head.
    contrastive_epochs : int, default=0
        Epochs of a supervised contrastive pass over the encoder before the
        probe (:class:`~sklearn_cap.stages.ContrastiveBody`, in the spirit
        of SetFit); 0 leaves it out. Needs a head that starts from a probe.
    probe_C : float or "cv", default=10.0
        Inverse L2 strength of the linear probe's logistic regression;
        ``"cv"`` chooses it by 3-fold CV on the training texts.
    head_learning_rate : float, "auto" or None, default="auto"
        Learning rate of the head's parameters. ``"auto"``: ten times
        ``learning_rate`` for a head that starts from a probe, else
        ``learning_rate``; None: ``learning_rate``.
    normalize_features : bool or "auto", default="auto"
        L2-normalise the pooled features before the head (mean pooling
        only); ``"auto"``: with mean pooling.
    head : {"linear", "cosine"}, default="linear"
        ``"cosine"``: cosine similarity of normalised features and class
        weights over ``temperature`` (mean pooling only).
    temperature : float, default=0.05
        Temperature of the cosine head.
    label_smoothing : float, default=0.0
        Label smoothing of the cross-entropy, in [0, 1).
    beta : float, default=1.0
        Weight of the attribution loss. 0 trains with cross-entropy only;
        with ``beta > 0``, ``fit`` needs prior values.
    attribution : {"ig", "ig_stochastic", "grad_input"} or AttributionMethod, default="ig"
        Self-attribution in the loss and in :meth:`explain`: Integrated
        Gradients with ``n_steps`` points (the paper); stochastic IG, one
        uniformly drawn point per text and step, an unbiased estimate of
        IG at about the cost of gradient x input (``explain`` then uses
        exact IG); or gradient x input (one backward pass, cheapest). An
        object of :mod:`sklearn_cap.attribution` (or a subclass of its
        ``AttributionMethod``) sets the method's own parameters, e.g.
        ``IntegratedGradients(baseline="zeros")``.
    n_steps : int, default=4
        IG steps during training (the paper uses a small number).
    normalization : {"minmax", "l1", "softmax"}, default="minmax"
        Per-text normalisation of both the prior and the self-attribution.
    max_length : int, default=128
        Tokens per text, at most the model's limit; words cut off are left
        out of the attribution loss.
    epochs : int, default=3
    batch_size : int, default=32
    learning_rate : float, default=3e-5
        Of the encoder's parameters (and of the head, see
        ``head_learning_rate``).
    weight_decay : float, default=0.01
        AdamW's decoupled weight decay (not on biases and norms), >= 0.
    warmup_ratio : float, default=0.06
        Fraction of steps (in [0, 1]) with a linearly rising learning rate,
        then linear decay.
    optimizer : "adamw" or callable, default="adamw"
        A callable is called as ``optimizer(param_groups, lr=learning_rate)``
        (for example ``torch.optim.SGD``); or override
        :meth:`initialize_optimizer`.
    max_grad_norm : float or None, default=1.0
        Gradient clipping norm; None turns clipping off.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, keep the
        weights of the best epoch (accuracy), stop after ``n_iter_no_change``
        epochs without improvement (:class:`~sklearn_cap.callbacks.EarlyStopping`).
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=2
    callbacks : list of Callback or (name, Callback), default=None
        :class:`~sklearn_cap.callbacks.Callback` objects notified during
        training, after the defaults (:meth:`get_default_callbacks`).
    stages : list of Stage, default=None
        The training stages ``fit`` runs in order
        (:mod:`sklearn_cap.stages`); None: ``[FineTune()]``.
    eval_batch_size : int, default=64
        Texts per forward pass in ``predict``, ``predict_proba`` and validation.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"`` runs forward passes under ``torch.autocast`` (weights
        and optimizer state stay float32). Its speed and accuracy against
        float32, as measured, are in :ref:`bench-classifier` (doc/benchmarks.rst);
        CPUs without bfloat16 units may be slower.
    device : str, default="auto"
        ``"auto"`` picks CUDA when available; resolved once per ``fit``.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the head's initialisation, shuffling and dropout (through a
        forked torch generator: the global one is left as it was): the same
        seed gives the same predictions on CPU.
    progress_bar : bool or "auto", default="auto"
        "auto": a bar when stderr is a terminal.

    Attributes
    ----------
    classes_ : ndarray
    model_ : torch.nn.Module
    tokenizer_ : transformers.PreTrainedTokenizerFast
    pooling_ : str
    device_ : torch.device
    n_epochs_ : int
        Epochs run.
    n_train_steps_ : int
        Optimisation steps the stages planned (fewer run after an early stop).
    callbacks_ : dict of str -> Callback
        The callbacks of the last ``fit``, by name (:meth:`initialize_callbacks`).
    class_counts_ : ndarray of int
        Training texts per class (before an early-stopping split).
    history_ : list of dict
        Per epoch: ``loss``, ``ce``, ``attr`` (mean over batches), ``seconds``,
        and ``val_accuracy`` with early stopping.
    probe_ : dict
        With a probe head: the probe's ``C``, its ``train_accuracy`` and,
        with ``probe_C="cv"``, each candidate's ``cv_accuracy``.
    contrastive_ : dict
        With ``contrastive_epochs``: per epoch, the mean contrastive
        ``loss`` and its ``seconds``.

    Examples
    --------
    >>> from sklearn_cap import ExplanationGuidedClassifier, embedded
    >>> clf = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=1, progress_bar=False)
    >>> clf = clf.fit(["my card is late", "I lost my card"], ["card_arrival", "lost_card"])
    >>> clf.predict(["where is my card"]).shape
    (1,)
    >>> [w for w, _ in clf.explain(["where is my card"]).to_list(0)]
    ['where', 'is', 'my', 'card']
    """

    _parameter_constraints = {
        "model": [str, os.PathLike],
        "pooling": [StrOptions({"auto", "cls", "mean"})],
        "head_init": [StrOptions({"auto", "probe", "random"})],
        "contrastive_epochs": [Interval(Integral, 0, None, closed="left")],
        "probe_C": [Interval(Real, 0, None, closed="neither"), StrOptions({"cv"})],
        "head_learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"}), None],
        "normalize_features": ["boolean", StrOptions({"auto"})],
        "head": [StrOptions({"linear", "cosine"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "attribution": [StrOptions(set(ATTRIBUTIONS)), AttributionMethod],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "normalization": [StrOptions(set(NORMALIZATIONS))],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "warmup_ratio": [Interval(Real, 0, 1, closed="both")],
        "optimizer": [StrOptions({"adamw"}), callable],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "callbacks": [list, None],
        "stages": [list, None],
        "eval_batch_size": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "device": [str, torch.device],
        "random_state": RANDOM_STATE,
        "progress_bar": PROGRESS_BAR,
    }

    def __init__(
        self,
        model="roberta-base",
        *,
        pooling="auto",
        head_init="auto",
        contrastive_epochs=0,
        probe_C=10.0,
        head_learning_rate="auto",
        normalize_features="auto",
        head="linear",
        temperature=0.05,
        label_smoothing=0.0,
        beta=1.0,
        attribution="ig",
        n_steps=4,
        normalization="minmax",
        max_length=128,
        epochs=3,
        batch_size=32,
        learning_rate=3e-5,
        weight_decay=0.01,
        warmup_ratio=0.06,
        optimizer="adamw",
        max_grad_norm=1.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=2,
        callbacks=None,
        stages=None,
        eval_batch_size=64,
        precision="float32",
        device="auto",
        random_state=None,
        progress_bar="auto",
    ):
        self.model = model
        self.pooling = pooling
        self.head_init = head_init
        self.contrastive_epochs = contrastive_epochs
        self.probe_C = probe_C
        self.head_learning_rate = head_learning_rate
        self.normalize_features = normalize_features
        self.head = head
        self.temperature = temperature
        self.label_smoothing = label_smoothing
        self.beta = beta
        self.attribution = attribution
        self.n_steps = n_steps
        self.normalization = normalization
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.stages = stages
        self.eval_batch_size = eval_batch_size
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.progress_bar = progress_bar

    # -- input --------------------------------------------------------------
    @staticmethod
    def _as_container(X, priors=None, *, allow_empty):
        """The texts of X as a WordAttributions, carrying the priors when there are any."""
        if isinstance(X, WordAttributions):
            if priors is not None:
                raise ValueError("Pass priors either as X (a WordAttributions) or as priors=, not both.")
            check_texts(X.texts, allow_empty=allow_empty)
            return X
        texts = check_texts(X, allow_empty=allow_empty)
        if priors is None:
            return WordAttributions(texts)
        if isinstance(priors, WordAttributions):
            if len(priors) != len(texts) or priors.texts != texts:
                raise ValueError(
                    f"The prior container's rows do not match X ({len(priors)} rows for {len(texts)} texts, "
                    "or different texts). Compute the priors on the same X."
                )
            return priors
        if len(priors) != len(texts):
            raise ValueError(f"priors must have one row per text: got {len(priors)} rows for {len(texts)} texts.")
        # WordAttributions takes a matrix or one list of scores per text, and names a row of the wrong length.
        return WordAttributions(texts, priors)

    def split_validation(self, y_idx, seed):
        """Training and held-out rows for early stopping: ``validation_fraction`` of the texts, stratified when it can be.

        Parameters
        ----------
        y_idx : ndarray of int
            Gold class index of each text.
        seed : int
            Seed of the split (from ``random_state``).

        Returns
        -------
        train_rows, val_rows : ndarray of int
        """
        n = len(y_idx)
        n_val = math.ceil(float(self.validation_fraction) * n)
        if n_val < 2 or n - n_val < 2:
            raise ValueError(
                f"early_stopping holds out validation_fraction={self.validation_fraction} of {n} texts "
                f"({n_val}), which leaves too few texts to validate on or to train on (2 or more each). "
                "Use more texts, a larger validation_fraction, or early_stopping=False."
            )
        counts = np.bincount(y_idx)
        strat = y_idx if counts.min() >= 2 and n_val >= len(counts) else None
        return train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=strat)

    # -- fitting ------------------------------------------------------------
    def fit(self, X, y, priors=None):
        """Fine-tune the encoder.

        Validates, builds the model (:meth:`initialize`), then runs the
        stages of :meth:`get_stages` in order, notifying the callbacks of
        :meth:`initialize_callbacks` around each.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts, or texts with priors (from a prior transformer's ``fit_transform``).
        y : array-like of shape (n_texts,)
            Class labels, one per text (at least two distinct classes).
        priors : WordAttributions or array-like of shape (n_texts, n_words), default=None
            Priors for raw-text ``X``; NaN marks words without a prior.

        Returns
        -------
        self : ExplanationGuidedClassifier
            The fitted estimator.
        """
        self._validate_params()
        wa = self._as_container(X, priors, allow_empty=False)
        y = check_labels(y, len(wa))
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        check_min_classes(classes)
        self.class_counts_ = np.bincount(y_idx, minlength=len(classes))  # for the model card of save_pretrained
        values = np.asarray(wa)
        if np.isinf(values).any():
            raise ValueError("Priors contain infinite values; use NaN for words without a prior.")
        if self.beta > 0 and not wa.has_values:
            raise ValueError(_NO_PRIORS.format(beta=self.beta))
        stages = self.get_stages()
        self.callbacks_ = self.initialize_callbacks()

        seed = seed_from(self.random_state)
        self.device_ = resolve_device(self.device)
        self.classes_ = classes
        self.pooling_ = resolve_pooling(self.pooling, self.model)
        train_rows, val_rows = np.arange(len(wa)), None
        if self.early_stopping:
            train_rows, val_rows = self.split_validation(y_idx, seed)

        cuda = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # seed locally; the caller's torch RNG is untouched
            torch.manual_seed(seed)
            self.initialize()
            prior_t = torch.as_tensor(values, dtype=torch.float32) if self.beta > 0 else None
            data = TrainingData(EncodedTexts(self.tokenizer_, wa, self.max_length), y_idx, prior_t, train_rows,
                                val_rows, np.random.default_rng(seed))
            self.history_ = []
            self.n_train_steps_ = sum(int(stage.n_steps(self, data)) for stage in stages)
            self.notify("on_train_begin", data=data)
            try:
                for stage in stages:
                    self.notify("on_stage_begin", stage=stage, data=data)
                    stage.run(self, data)
                    self.notify("on_stage_end", stage=stage, data=data)
            finally:
                self.notify("on_train_end", data=data)
        self.model_.eval()
        self.n_epochs_ = sum("epoch" in r for r in self.history_)
        return self

    def initialize(self):
        """Build the tokenizer and the model (``tokenizer_``, ``model_``) for ``classes_`` on ``device_``.

        Returns
        -------
        self
        """
        self.tokenizer_, self.model_ = build_classifier(self.model, self.pooling_, len(self.classes_),
                                                        head_options=self._head_options())
        limit = max_tokens(self.tokenizer_, self.model_.config)
        if self.max_length > limit:
            raise ValueError(
                f"max_length={self.max_length} is over this model's limit of {limit} tokens. Use "
                f"max_length <= {limit}: longer texts are truncated and their cut-off words left out "
                "of the attribution loss."
            )
        self.model_.to(self.device_)
        self.model_.config.id2label = {i: str(c) for i, c in enumerate(self.classes_)}
        self.model_.config.label2id = {str(c): i for i, c in enumerate(self.classes_)}
        return self

    def _head_options(self):
        """The mean-pooling head's options; a ValueError where the model's own head cannot take them."""
        custom = {k: v for k, v in (("normalize_features", self.normalize_features), ("head", self.head))
                  if v not in ({"normalize_features": (False, "auto"), "head": ("linear",)}[k])}
        if self.pooling_ != "mean":
            if custom:
                raise ValueError(
                    f"{', '.join(f'{k}={v!r}' for k, v in custom.items())} needs pooling='mean' (the pooled features "
                    "the head reads); with the model's own head (pooling='cls') leave them at their defaults."
                )
            return None
        normalize = self.normalize_features in (True, "auto")
        return {"normalize": normalize, "head": self.head, "temperature": float(self.temperature)}

    def _resolved_head_init(self):
        if self.head_init == "auto":
            return "probe" if resolve_pooling(self.pooling, self.model) == "mean" else "random"
        return self.head_init

    def get_stages(self):
        """The training stages ``fit`` runs, in order.

        ``stages`` when given; else ``[LinearProbe(probe_C), FineTune()]``
        when the head starts from a probe (``head_init``), preceded by
        ``ContrastiveBody(contrastive_epochs)`` when that is above 0, and
        ``[FineTune()]`` otherwise.

        Returns
        -------
        list of Stage
        """
        if self.stages is not None:
            stages = list(self.stages)
        elif self._resolved_head_init() == "probe":
            if resolve_pooling(self.pooling, self.model) != "mean":
                raise ValueError("head_init='probe' fits the head on pooled features, which needs pooling='mean'; "
                                 "use pooling='mean', or head_init='random' for the model's own head.")
            stages = [LinearProbe(C=self.probe_C), FineTune()]
            if self.contrastive_epochs > 0:
                stages.insert(0, ContrastiveBody(epochs=self.contrastive_epochs))
        else:
            if self.contrastive_epochs > 0:
                raise ValueError(f"contrastive_epochs={self.contrastive_epochs} tunes the encoder before a linear "
                                 "probe, so it needs head_init='probe' (or 'auto' with pooling='mean'); set "
                                 "contrastive_epochs=0 for a head that starts at random.")
            stages = [FineTune()]
        for stage in stages:
            if not isinstance(stage, Stage):
                raise TypeError(
                    f"stages must hold sklearn_cap.stages.Stage objects, got {stage!r}. Subclass Stage and "
                    "implement run(clf, data), or use FineTune()."
                )
        return stages

    def get_default_callbacks(self):
        """The callbacks the parameters ask for, as ``(name, callback)`` pairs, in the order they are notified.

        ``"progress_bar"`` (``progress_bar``), ``"gradient_clipping"``
        (``max_grad_norm``), and with ``early_stopping`` ``"validation"``
        then ``"early_stopping"`` (``n_iter_no_change``). The user's
        ``callbacks`` follow them.

        Returns
        -------
        list of (str, Callback)
        """
        defaults = [("progress_bar", ProgressBar(self.progress_bar))]
        if self.max_grad_norm is not None:
            defaults.append(("gradient_clipping", GradientNormClipping(self.max_grad_norm)))
        if self.early_stopping:
            defaults += [("validation", ValidationScoring()), ("early_stopping", EarlyStopping(self.n_iter_no_change))]
        return defaults

    def initialize_callbacks(self):
        """The default callbacks, then ``callbacks``, each initialised: a dict from name to callback.

        A user callback is a :class:`~sklearn_cap.callbacks.Callback` (named
        after its class, with ``_2``, ``_3`` ... for repeats) or a
        ``(name, callback)`` pair.

        Returns
        -------
        dict of str -> Callback
        """
        named = {}
        for item in self.get_default_callbacks() + list(self.callbacks or []):
            name, cb = item if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) else (None, item)
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must hold sklearn_cap.callbacks.Callback objects or (name, Callback) pairs, got "
                    f"{item!r}. Subclass Callback and implement the hooks you need, e.g. "
                    "on_epoch_end(self, clf, record, **kwargs)."
                )
            if name is None:
                base, k = type(cb).__name__, 1
                name = base
                while name in named:
                    k += 1
                    name = f"{base}_{k}"
            elif name in named:
                raise ValueError(f"Two callbacks are named {name!r}; give each (name, callback) pair its own name.")
            named[name] = cb.initialize()
        return named

    def notify(self, hook, **kwargs):
        """Call ``hook`` (a :class:`~sklearn_cap.callbacks.Callback` method name) on every callback, in order.

        Parameters
        ----------
        hook : str
            For example ``"on_epoch_end"``.
        **kwargs
            Passed to each callback after the classifier.

        Returns
        -------
        bool
            True when any callback returned True (for ``on_epoch_end``: stop).
        """
        results = [getattr(cb, hook)(self, **kwargs) for cb in self.callbacks_.values()]
        return any(bool(r) for r in results)

    def initialize_optimizer(self):
        """The optimizer: AdamW (or the ``optimizer`` callable) with no weight decay on biases and norms.

        Returns
        -------
        torch.optim.Optimizer
        """
        named = list(self.model_.named_parameters())
        groups = [
            {"params": [p for n, p in named if not n.endswith(_NO_DECAY)], "weight_decay": float(self.weight_decay)},
            {"params": [p for n, p in named if n.endswith(_NO_DECAY)], "weight_decay": 0.0},
        ]
        head_lr = self.head_learning_rate
        if head_lr == "auto":
            head_lr = 10 * float(self.learning_rate) if self._resolved_head_init() == "probe" else None
        if head_lr is not None:
            # The head in groups of its own at head_learning_rate (both model kinds name it classifier.*).
            body = [(n, p) for n, p in named if not n.startswith(_HEAD)]
            head = [(n, p) for n, p in named if n.startswith(_HEAD)]
            groups = [
                {"params": [p for n, p in body if not n.endswith(_NO_DECAY)], "weight_decay": float(self.weight_decay)},
                {"params": [p for n, p in body if n.endswith(_NO_DECAY)], "weight_decay": 0.0},
                {"params": [p for n, p in head if not n.endswith(_NO_DECAY)], "weight_decay": float(self.weight_decay),
                 "lr": float(head_lr)},
                {"params": [p for n, p in head if n.endswith(_NO_DECAY)], "weight_decay": 0.0, "lr": float(head_lr)},
            ]
        if self.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=float(self.learning_rate))
        opt = self.optimizer(groups, lr=float(self.learning_rate))
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer={self.optimizer!r} returned {opt!r}, not a torch.optim.Optimizer. Pass a callable "
                "called as optimizer(param_groups, lr=learning_rate) that returns one, such as torch.optim.SGD "
                "or functools.partial(torch.optim.AdamW, betas=(0.9, 0.98))."
            )
        return opt

    def initialize_scheduler(self, optimizer, total_steps):
        """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0.

        Parameters
        ----------
        optimizer : torch.optim.Optimizer
            The optimizer whose learning rate is scheduled.
        total_steps : int
            Optimisation steps of the stage.

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

    def infer(self, batch, target, prior=None):
        """The model's outputs for a training batch: logits, and word attributions when the loss needs them.

        Parameters
        ----------
        batch : Batch
        target : torch.LongTensor of shape (n,)
        prior : torch.Tensor of shape (n, width) or None
            NaN where a word has no prior.

        Returns
        -------
        dict
            ``logits`` (n, n_classes); ``words`` (n, width) and ``valid``
            (the words the attribution loss counts: a finite prior, whole
            after truncation), both None when ``beta`` is 0, there is no
            prior, or no word of the batch has one.
        """
        out = {"logits": None, "words": None, "valid": None}
        if prior is not None and self.beta > 0:
            valid = torch.isfinite(prior) & batch.complete
            if valid.any():
                out["words"], out["logits"] = self.word_attributions(batch, target, create_graph=True)
                out["valid"] = valid
        if out["logits"] is None:
            out["logits"] = self.model_(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        return out

    def get_loss(self, y_pred, y_true, prior=None):
        """``CE + beta * MSE(norm(self-attribution), norm(prior))`` of a batch's outputs.

        Parameters
        ----------
        y_pred : dict
            The outputs of :meth:`infer`.
        y_true : torch.LongTensor of shape (n,)
            Gold class indices.
        prior : torch.Tensor of shape (n, width) or None
            The batch's priors, NaN where a word has none.

        Returns
        -------
        loss : torch.Tensor (scalar)
        parts : dict
            ``{"ce": tensor, "attr": tensor}``.
        """
        attr = torch.zeros((), device=y_true.device)
        if y_pred.get("words") is not None:
            attr = attribution_loss(y_pred["words"], prior, y_pred["valid"], self.normalization)
        ce = torch.nn.functional.cross_entropy(y_pred["logits"], y_true, label_smoothing=float(self.label_smoothing))
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
        """
        self.optimizer_.zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = self.get_loss(self.infer(batch, target, prior), target, prior)
        loss.backward()
        self.notify("on_grad_computed", named_parameters=list(self.model_.named_parameters()))
        self.optimizer_.step()
        self.scheduler_.step()
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}

    def run_single_epoch(self, data, epoch):
        """One pass over ``data.train_rows`` in shuffled, length-grouped batches; returns the epoch's record.

        Parameters
        ----------
        data : TrainingData
        epoch : int
            Counts from 0.

        Returns
        -------
        dict
            ``loss``, ``ce``, ``attr`` (means over batches), ``epoch``
            (from 1) and ``seconds``.
        """
        bs = int(self.batch_size)
        self.model_.train()
        self.notify("on_epoch_begin", epoch=epoch, data=data)
        start, sums, step = time.perf_counter(), {}, 0
        for rows in data.encoded.batches(data.train_rows, bs, rng=data.rng):
            batch = data.encoded.batch(rows, self.device_)
            self.notify("on_batch_begin", batch=batch)
            parts = self.train_step(batch, data.target(rows, self.device_), data.prior(rows, self.device_))
            step += 1
            if not math.isfinite(parts["loss"]):
                raise FloatingPointError(
                    f"The training loss is {parts['loss']} at epoch {epoch + 1}, step {step}: training diverged "
                    f"(cross-entropy {parts['ce']:.4g}, attribution loss {parts['attr']:.4g}). Lower "
                    f"learning_rate (now {self.learning_rate}), or beta (now {self.beta}) if the attribution "
                    "loss is the one that is not finite; keep max_grad_norm set to bound each step."
                )
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            self.notify("on_batch_end", record={**parts, "epoch": epoch + 1, "step": step})
        record = {k: v / max(1, step) for k, v in sums.items()}
        record["epoch"] = epoch + 1
        record["seconds"] = time.perf_counter() - start
        return record

    def autocast(self):
        """The context of this model's forward passes: ``torch.autocast`` to bfloat16, or nothing."""
        return torch.autocast(self.device_.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    # -- attribution --------------------------------------------------------
    def word_attributions(self, batch, target, *, method=None, n_steps=None, create_graph=False,
                          internal_batch_size=None):
        """Each word's attribution to ``log P(target)``: the one path of the loss and of :meth:`explain`.

        Parameters
        ----------
        batch : Batch
            From :meth:`encode` then ``EncodedTexts.batch``.
        target : torch.LongTensor of shape (n,)
            Class indices (columns of ``classes_``).
        method : str or AttributionMethod, default=None
            A name of ``attribution``'s options or an
            :class:`~sklearn_cap.attribution.AttributionMethod`;
            ``attribution`` when None.
        n_steps : int, default=None
            Steps for methods that take them and have none of their own;
            ``n_steps`` when None.
        create_graph : bool, default=False
            Keep the graph (training on the attribution).
        internal_batch_size : int, default=None
            Most interpolated IG rows per pass.

        Returns
        -------
        words : torch.Tensor of shape (n, width)
            Token attributions summed per word.
        logits : torch.Tensor of shape (n, n_classes) or None
            The logits at the input when the method computed them, reusable
            for the cross-entropy.
        """
        method = resolve_attribution(self.attribution if method is None else method)
        pad_id = self.tokenizer_.pad_token_id if self.tokenizer_.pad_token_id is not None else 0
        return method.attribute(self.model_, batch, target, pad_token_id=pad_id, n_steps=n_steps or self.n_steps,
                                create_graph=create_graph, internal_batch_size=internal_batch_size)

    # -- inference ----------------------------------------------------------
    def encode(self, X):
        """Tokenise texts (or a WordAttributions) once for this model: an :class:`~sklearn_cap.encoding.EncodedTexts`.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts to tokenise; empty texts are allowed. Prior values, if any,
            travel with the encoded texts.

        Returns
        -------
        encoded : EncodedTexts
            The token ids, attention masks and word alignment of the texts,
            truncated to ``max_length`` tokens.
        """
        check_is_fitted(self, "model_")
        return EncodedTexts(self.tokenizer_, self._as_container(X, allow_empty=True), self.max_length)

    def features(self, encoded, rows=None):
        """Pooled features the head reads (mean pooling), shape (n, hidden), in evaluation mode.

        Parameters
        ----------
        encoded : EncodedTexts
        rows : array-like of int, default=None
            Indices of the texts to run; None runs every text.

        Returns
        -------
        ndarray of shape (n_rows, hidden), dtype float64
        """
        rows = np.arange(len(encoded)) if rows is None else np.asarray(rows)
        was_training = self.model_.training
        self.model_.eval()
        out = np.empty((len(encoded), self.model_.config.hidden_size))
        with torch.inference_mode(), self.autocast():
            for chunk in encoded.batches(rows, int(self.eval_batch_size)):
                b = encoded.batch(chunk, self.device_)
                out[chunk] = self.model_.features(input_ids=b.input_ids, attention_mask=b.attention_mask).float().cpu()
        self.model_.train(was_training)
        return out[rows]

    def forward(self, encoded, rows=None):
        """Logits of the encoded texts (all, or ``rows``), shape (n, n_classes), in length-sorted batches.

        Parameters
        ----------
        encoded : EncodedTexts
            Texts encoded for this model, e.g. by :meth:`encode`.
        rows : array-like of int, default=None
            Indices of the texts to run; None runs every text.

        Returns
        -------
        logits : ndarray of shape (n_rows, n_classes), dtype float32
            One row per entry of ``rows`` (or per text), in that order.
        """
        rows = np.arange(len(encoded)) if rows is None else np.asarray(rows)
        self.model_.eval()
        out = np.empty((len(encoded), len(self.classes_)), dtype=np.float32)
        with torch.inference_mode(), self.autocast():
            for chunk in encoded.batches(rows, int(self.eval_batch_size)):
                b = encoded.batch(chunk, self.device_)
                out[chunk] = self.model_(input_ids=b.input_ids, attention_mask=b.attention_mask).logits.float().cpu()
        return out[rows]

    def _prepare(self, X, *, words=True):
        check_is_fitted(self, "model_")
        # Moving a module visits every tensor (0.7 ms of a 6.5 ms batch-1 predict of MiniLM, doc/benchmarks.rst):
        # only when the weights are elsewhere, e.g. after unpickling on another device.
        first = next(self.model_.parameters(), None)
        target = torch.device(self.device_)
        if first is not None and (first.device.type, first.device.index or 0) != (target.type, target.index or 0):
            self.model_.to(target)
        if words:
            return self.encode(X)
        # Logits need token ids only: skip word segmentation and alignment (same ids, a third of the cost).
        texts = check_texts(X.texts if isinstance(X, WordAttributions) else X, allow_empty=True)
        return EncodedTexts.tokens_only(self.tokenizer_, texts, self.max_length)

    def class_index(self, labels):
        """Column of each label in ``classes_`` (what ``predict_proba`` and ``explain`` index by).

        Raises a ``ValueError`` naming labels not seen in ``fit``.

        Parameters
        ----------
        labels : array-like of shape (n_labels,)
            Labels, each one of ``classes_``.

        Returns
        -------
        ndarray of shape (n_labels,), dtype int
            The column of ``classes_`` that holds each label.
        """
        check_is_fitted(self, "classes_")
        labels = np.asarray(labels)
        check_known_labels(labels, self.classes_)
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        return np.array([lookup[t] for t in labels.tolist()], dtype=int)

    def decision_function(self, X):
        """Logits, shape (n_texts, n_classes); for two classes, shape (n_texts,): the second class's margin.

        The binary shape is scikit-learn's convention, which ``roc_auc`` scoring relies on.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts to score; prior values, if any, are ignored.

        Returns
        -------
        ndarray of shape (n_texts, n_classes) or (n_texts,)
            The logits, columns in ``classes_`` order; with two classes, the
            logit of ``classes_[1]`` minus that of ``classes_[0]``.
        """
        logits = self.forward(self._prepare(X, words=False))
        return logits[:, 1] - logits[:, 0] if len(self.classes_) == 2 else logits

    def predict_proba(self, X):
        """Class probabilities, shape (n_texts, n_classes), columns in ``classes_`` order.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts to classify; prior values, if any, are ignored.

        Returns
        -------
        ndarray of shape (n_texts, n_classes)
            Softmax of the logits; each row sums to 1.
        """
        return torch.softmax(torch.from_numpy(self.forward(self._prepare(X, words=False))), dim=1).numpy()

    def predict(self, X):
        """Predicted labels (of the same type as those seen in ``fit``). Empty texts get the model's answer for no words.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts to classify; prior values, if any, are ignored.

        Returns
        -------
        ndarray of shape (n_texts,)
            The class of ``classes_`` with the highest logit, for each text.
        """
        logits = self.forward(self._prepare(X, words=False))
        return self.classes_[logits.argmax(1)]

    def explain(self, X, target=None, *, method=None, n_steps=32, batch_size=16, internal_batch_size=None,
                progress_bar=None):
        """Per-word attributions of the fitted model.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts to explain; prior values, if any, are ignored.
        target : label or array-like of labels, default=None
            Class to explain: one label for every text, or one per text;
            the predicted class by default.
        method : {"ig", "grad_input"} or AttributionMethod, default=None
            Defaults to the method the model was trained with, as its
            :meth:`~sklearn_cap.attribution.AttributionMethod.for_explanation`
            gives it (exact IG for a model trained with stochastic IG).
        n_steps : int, default=32
            IG steps (more than in training: this is for reading, not
            speed), for a method that has no ``n_steps`` of its own.
        batch_size : int, default=16
            Texts per pass (length-sorted).
        internal_batch_size : int, default=None
            Most interpolated IG rows per pass (bounds memory).
        progress_bar : bool, "auto" or None, default=None
            None: the estimator's ``progress_bar``.

        Returns
        -------
        WordAttributions
            Raw attributions to ``log P(target)`` summed over each word's
            tokens; ``.targets`` holds the explained labels. Render with
            ``.to_html()``, list with ``.to_list(i)``.
        """
        check_scalar(n_steps, "n_steps", Integral, min_val=1)
        check_scalar(batch_size, "batch_size", Integral, min_val=1)
        if not (method is None or method in ("ig", "grad_input") or isinstance(method, AttributionMethod)):
            raise ValueError(f"method must be 'ig', 'grad_input', an AttributionMethod or None, got {method!r}.")
        method = resolve_attribution(self.attribution).for_explanation() if method is None else method
        encoded = self._prepare(X)
        wa = encoded.attributions
        if target is None:
            tgt = self.forward(encoded).argmax(1)
        else:
            if np.ndim(target) == 0:
                target = np.full(len(wa), target, dtype=object)
            target = np.asarray(target)
            if len(target) != len(wa):
                raise ValueError(f"target has {len(target)} labels for {len(wa)} texts; give one, or one per text.")
            tgt = self.class_index(target)
        tgt_t = torch.as_tensor(tgt, device=self.device_)
        values = np.full((len(wa), encoded.width), np.nan)
        self.model_.eval()
        bar = self.progress_bar if progress_bar is None else progress_bar
        for rows in progress(encoded.batches(np.arange(len(wa)), int(batch_size)), enabled=bar, desc="explain"):
            batch = encoded.batch(rows, self.device_)
            with torch.enable_grad(), self.autocast():
                words, _ = self.word_attributions(batch, tgt_t[rows], method=method, n_steps=n_steps,
                                                  internal_batch_size=internal_batch_size)
            values[rows] = np.where(encoded.complete[rows], words.detach().float().cpu().numpy(), np.nan)
        out = wa.with_values(values)
        out.targets = self.classes_[tgt]
        return out

    # -- persistence --------------------------------------------------------
    def save_pretrained(self, path, *, metrics=None, priors=None, dataset=None):
        """Write the fitted model to a folder: safetensors weights, tokenizer, ``config.json``, model card.

        No pickle: :meth:`from_pretrained` reads it back
        (:mod:`sklearn_cap.serialization`). With ``pooling="cls"`` the folder
        also loads in ``transformers.pipeline("text-classification")``.

        Parameters
        ----------
        path : str or path-like
            Folder to write (created).
        metrics : dict of str -> float, default=None
            Scores to state in the model card.
        priors : estimator, list or str, default=None
            The prior transformers (or a description) the priors came from,
            for the model card.
        dataset : str, default=None
            What the training texts were, for the model card.

        Returns
        -------
        pathlib.Path
            The folder written.
        """
        from .serialization import save_pretrained

        return save_pretrained(self, path, metrics=metrics, priors=priors, dataset=dataset)

    @classmethod
    def from_pretrained(cls, path, *, device=None):
        """A fitted estimator from a folder of :meth:`save_pretrained`; reads safetensors and JSON, never a pickle.

        Parameters
        ----------
        path : str or path-like
            The folder.
        device : str, default=None
            Overrides the saved ``device`` parameter.

        Returns
        -------
        ExplanationGuidedClassifier
            Fitted; parameters that were not JSON values have their defaults
            (a warning names them).
        """
        from .serialization import load_pretrained

        return load_pretrained(path, estimator_class=cls, device=device)

    def export_onnx(self, path, *, quantize=False, opset_version=17):
        """Write one ONNX graph (token ids and mask in, probabilities out) and ``tokenizer.json`` to a folder.

        Run it with :class:`~sklearn_cap.onnx_predictor.ONNXTextClassifier`
        (``onnxruntime`` and ``tokenizers`` only); needs the ``[onnx]`` extra.

        Parameters
        ----------
        path : str or path-like
            Folder to write (created).
        quantize : bool, default=False
            Also write ``model_int8.onnx`` (dynamic int8 quantisation, one
            scale per weight column; see
            :func:`~sklearn_cap.onnx_predictor.quantize_onnx`).
        opset_version : int, default=17
            ONNX operator set.

        Returns
        -------
        pathlib.Path
            The folder written.
        """
        from .onnx_export import export_onnx

        return export_onnx(self, path, quantize=quantize, opset_version=opset_version)

    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state:
            buf = io.BytesIO()
            torch.save({k: v.cpu() for k, v in self.model_.state_dict().items()}, buf)
            state["model_"] = (self.model_.config.to_dict(), buf.getvalue())
        return state

    def __setstate__(self, state):
        packed = state.get("model_")
        self.__dict__.update(state)
        if isinstance(packed, tuple):
            from transformers import AutoConfig

            config_dict, weights = packed
            _, model = build_classifier(None, self.pooling_, len(self.classes_),
                                        config=AutoConfig.for_model(**config_dict),
                                        head_options=self._head_options())
            model.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
            self.model_ = model.eval()
            # Resolved again: a model pickled on a GPU machine loads on a CPU-only one.
            self.device_ = resolve_device(self.device)

    def __sklearn_tags__(self):
        tags = text_input_tags(super().__sklearn_tags__())
        tags.non_deterministic = self.random_state is None
        return tags
