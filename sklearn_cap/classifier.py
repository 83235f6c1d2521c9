"""ExplanationGuidedClassifier: a Hugging Face encoder trained with CE + beta x attribution loss.

The loss for a batch is ``CE + beta * MSE(norm(self-attribution), norm(prior))``
where the self-attribution is the model's own word attribution for the gold
class (IG, as in the paper, or gradient x input), pooled from tokens into the
words of the prior, both normalised per text the same way, and the MSE runs
over words that have a finite prior and survived truncation whole.
"""

import copy
import io
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._hf import quiet_transformers
from .attribution import NORMALIZATIONS, align_words, normalize, pool_to_words, token_attributions
from .scorers.causal_lm import resolve_device
from .text import WordAttributions, check_texts, text_input_tags

__all__ = ["ExplanationGuidedClassifier"]


class MeanPoolingClassifier(torch.nn.Module):
    """An encoder, masked mean pooling over tokens, dropout and a linear head.

    Sentence-transformers checkpoints (such as the embedded MiniLM) are
    trained to be read by mean pooling, and their CLS pooler is not: a
    CLS head on them learns slowly, worst of all in few-shot training.
    The interface is the one the library uses of a Hugging Face
    ``*ForSequenceClassification`` model: ``model(...).logits``,
    ``get_input_embeddings()`` and ``config``.
    """

    def __init__(self, encoder, num_labels, dropout=0.1):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              inputs_embeds=inputs_embeds).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return SimpleNamespace(logits=self.classifier(self.dropout(pooled)))


def _resolve_pooling(pooling, model):
    """``"auto"``: mean pooling for a sentence-transformers folder, else the model's own head."""
    if pooling not in ("auto", "mean", "cls"):
        raise ValueError(f"pooling must be 'auto', 'mean' or 'cls', got {pooling!r}.")
    if pooling != "auto":
        return pooling
    folder = Path(str(model))
    if (folder / "1_Pooling" / "config.json").exists():
        cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if cfg.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


class ExplanationGuidedClassifier(ClassifierMixin, BaseEstimator):
    """A text classifier whose own explanations are trained towards attribution priors.

    ``fit`` takes raw texts (plain cross-entropy: the vanilla baseline) or the
    :class:`~sklearn_cap.text.WordAttributions` a prior transformer returns
    (cross-entropy plus ``beta`` times the attribution loss). ``predict``,
    ``predict_proba`` and ``explain`` take either.

    Parameters
    ----------
    model : str, default="roberta-base"
        Hub id or local folder of an encoder, e.g.
        :data:`sklearn_cap.embedded.ENCODER`. A classification head is added.
    pooling : {"auto", "cls", "mean"}, default="auto"
        ``"cls"``: the model's own sequence-classification head (first
        token). ``"mean"``: masked mean of the token states, then a linear
        head (:class:`MeanPoolingClassifier`). ``"auto"``: ``"mean"`` for a
        sentence-transformers folder that pools by mean (the embedded
        MiniLM), else ``"cls"``.
    beta : float, default=1.0
        Weight of the attribution loss. 0 trains with cross-entropy only.
    attribution : {"ig", "grad_input"}, default="ig"
        Self-attribution in the loss and in :meth:`explain`: Integrated
        Gradients (the paper) or gradient x input (one backward pass, cheaper).
    n_steps : int, default=4
        IG steps during training (the paper uses a small number).
    normalization : {"minmax", "l1", "softmax"}, default="minmax"
        Per-text normalisation of both the prior and the self-attribution.
    max_length : int, default=128
        Tokens per text; words cut off are left out of the attribution loss.
    epochs : int, default=3
    batch_size : int, default=32
    learning_rate : float, default=5e-5
    weight_decay : float, default=0.01
    warmup_ratio : float, default=0.06
        Fraction of steps with a linearly rising learning rate, then linear decay.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, keep the
        weights of the best epoch (accuracy), stop after ``n_iter_no_change``
        epochs without improvement.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=2
    device : str, default="auto"
        ``"auto"`` picks CUDA when available.
    random_state : int or None, default=None
        Seeds the head's initialisation, shuffling and dropout: the same
        seed gives the same predictions on CPU.
    progress_bar : bool, default=True

    Attributes
    ----------
    classes_ : ndarray
    model_ : transformers.PreTrainedModel
    tokenizer_ : transformers.PreTrainedTokenizerFast
    n_epochs_ : int
        Epochs run.
    history_ : list of dict
        Per epoch: ``loss``, ``ce``, ``attr`` (mean over batches), ``seconds``,
        and ``val_accuracy`` with early stopping.

    Examples
    --------
    >>> from sklearn_cap import ExplanationGuidedClassifier, embedded
    >>> clf = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=1)  # doctest: +SKIP
    >>> clf.fit(["my card is late", "I lost my card"], ["card_arrival", "lost_card"])  # doctest: +SKIP
    >>> clf.explain(["where is my card"]).to_list(0)  # doctest: +SKIP
    [('where', 0.02), ('is', -0.01), ('my', 0.0), ('card', 0.3)]
    """

    def __init__(
        self,
        model="roberta-base",
        *,
        pooling="auto",
        beta=1.0,
        attribution="ig",
        n_steps=4,
        normalization="minmax",
        max_length=128,
        epochs=3,
        batch_size=32,
        learning_rate=5e-5,
        weight_decay=0.01,
        warmup_ratio=0.06,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=2,
        device="auto",
        random_state=None,
        progress_bar=True,
    ):
        self.model = model
        self.pooling = pooling
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
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.progress_bar = progress_bar

    # -- validation ---------------------------------------------------------
    def _check_params(self):
        if self.attribution not in ("ig", "grad_input"):
            raise ValueError(f"attribution must be 'ig' or 'grad_input', got {self.attribution!r}.")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}.")
        if not (np.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}.")
        for name in ("epochs", "batch_size", "max_length", "n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, (int, np.integer)) and v >= 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}.")

    @staticmethod
    def _as_container(X, priors=None, *, allow_empty):
        """(texts, WordAttributions or None) from raw texts or a container."""
        if isinstance(X, WordAttributions):
            if priors is not None:
                raise ValueError("Pass priors either as X (a WordAttributions) or as priors=, not both.")
            check_texts(X.texts, allow_empty=allow_empty)
            return X.texts, X
        texts = check_texts(X, allow_empty=allow_empty)
        if priors is None:
            return texts, None
        if isinstance(priors, WordAttributions):
            if len(priors) != len(texts) or priors.texts != texts:
                raise ValueError(
                    f"The prior container's rows do not match X ({len(priors)} rows for "
                    f"{len(texts)} texts, or different texts). Compute the priors on the same X."
                )
            return texts, priors
        values = np.asarray(priors, dtype=float)
        if values.ndim != 2 or values.shape[0] != len(texts):
            raise ValueError(f"priors must have one row per text: got shape {values.shape} for {len(texts)} texts.")
        return texts, WordAttributions(texts, values)

    def _device(self):
        device = resolve_device(self.device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            warnings.warn(f"device={self.device!r} but no GPU is visible; using the CPU.")
            device = "cpu"
        return torch.device(device)

    # -- fitting ------------------------------------------------------------
    def fit(self, X, y, priors=None):
        """Fine-tune the encoder.

        Parameters
        ----------
        X : list of str or WordAttributions
            Texts, or texts with priors (from a prior transformer).
        y : array-like of shape (n_texts,)
        priors : WordAttributions or array-like of shape (n_texts, n_words), default=None
            Priors for raw-text ``X``; NaN marks words without a prior.

        Returns
        -------
        self
        """
        self._check_params()
        texts, wa = self._as_container(X, priors, allow_empty=False)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(texts):
            raise ValueError(f"X and y have different lengths: {len(texts)} texts and {y.shape} labels.")
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has a single class ({classes[0]!r}); a classifier needs at least two.")
        if wa is None:
            wa = WordAttributions(texts)
        prior_values = np.asarray(wa)
        if np.isinf(prior_values).any():
            raise ValueError("Priors contain infinite values; use NaN for words without a prior.")
        use_prior = self.beta > 0 and wa.has_values

        seed = self.random_state if self.random_state is not None else int(np.random.randint(2**31 - 1))
        torch.manual_seed(seed)
        device = self._device()
        self.classes_ = classes
        self.pooling_ = _resolve_pooling(self.pooling, self.model)
        self.tokenizer_, self.model_ = self._build(len(classes))
        self.model_.to(device)
        self.model_.config.id2label = {i: str(c) for i, c in enumerate(classes)}
        self.model_.config.label2id = {str(c): i for i, c in enumerate(classes)}

        data = self._encode(wa)
        train_rows = np.arange(len(texts))
        val_rows = None
        if self.early_stopping:
            strat = y_idx if np.bincount(y_idx).min() >= 2 else None
            train_rows, val_rows = train_test_split(
                train_rows, test_size=self.validation_fraction, random_state=seed, stratify=strat
            )
        self._train(data, y_idx, prior_values if use_prior else None, train_rows, val_rows, seed, device)
        return self

    def _build(self, num_labels, config=None):
        """Tokenizer and model: from ``self.model``, or from a config (unpickling)."""
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        with quiet_transformers():  # "newly initialised head" is expected here
            tokenizer = None if config is not None else AutoTokenizer.from_pretrained(str(self.model))
            if self.pooling_ == "mean":
                encoder = (AutoModel.from_config(config) if config is not None
                           else AutoModel.from_pretrained(str(self.model)))
                return tokenizer, MeanPoolingClassifier(encoder, num_labels)
            if config is not None:
                return tokenizer, AutoModelForSequenceClassification.from_config(config)
            return tokenizer, AutoModelForSequenceClassification.from_pretrained(str(self.model), num_labels=num_labels)

    def _encode(self, wa):
        ids, word_index, complete = align_words(self.tokenizer_, wa.texts, wa.spans, self.max_length)
        return {"ids": ids, "word_index": word_index, "complete": complete, "width": max(wa.width, 1)}

    def _collate(self, data, rows, device):
        ids = [data["ids"][r] for r in rows]
        T = max(map(len, ids))
        pad = self.tokenizer_.pad_token_id or 0
        input_ids = torch.full((len(rows), T), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        widx = torch.full((len(rows), T), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(data["ids"][r])
            input_ids[i, :n] = torch.tensor(data["ids"][r])
            mask[i, :n] = 1
            widx[i, :n] = torch.tensor(data["word_index"][r])
        return input_ids.to(device), mask.to(device), widx.to(device)

    def _baseline(self, input_ids, embeds):
        """IG baseline: the pad embedding at word tokens; special tokens keep theirs."""
        pad_id = self.tokenizer_.pad_token_id if self.tokenizer_.pad_token_id is not None else 0
        special = torch.zeros_like(input_ids, dtype=torch.bool)
        for tid in self.tokenizer_.all_special_ids:
            special |= input_ids == tid
        pad = self.model_.get_input_embeddings().weight[pad_id].detach()
        return torch.where(special[..., None], embeds, pad.expand_as(embeds))

    def _attribution_loss(self, input_ids, mask, widx, embeds, target, prior_batch, complete, create_graph):
        """MSE between normalised word self-attribution and normalised prior."""
        method = self.attribution
        base = self._baseline(input_ids, embeds) if method == "ig" else None
        tok_attr, logits = token_attributions(
            self.model_, embeds, mask, target, method=method, n_steps=self.n_steps,
            baseline=base, create_graph=create_graph,
        )
        W = prior_batch.shape[1]
        words = pool_to_words(tok_attr, widx, W)
        valid = torch.isfinite(prior_batch) & complete
        a = normalize(words, valid, self.normalization)
        p = normalize(torch.nan_to_num(prior_batch, nan=0.0), valid, self.normalization)
        n_valid = valid.sum()
        loss = ((a - p) ** 2 * valid).sum() / n_valid.clamp(min=1)
        return loss, logits

    def _train(self, data, y_idx, prior_values, train_rows, val_rows, seed, device):
        from transformers import get_linear_schedule_with_warmup

        model = self.model_
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        groups = [
            {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
             "weight_decay": float(self.weight_decay)},
            {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=float(self.learning_rate))
        bs = int(self.batch_size)
        steps_per_epoch = int(np.ceil(len(train_rows) / bs))
        total = steps_per_epoch * int(self.epochs)
        sched = get_linear_schedule_with_warmup(opt, int(float(self.warmup_ratio) * total), total)
        rng = np.random.default_rng(seed)
        y_t = torch.as_tensor(y_idx, dtype=torch.long)
        W = data["width"]
        self.history_ = []
        best, best_state, stale = -np.inf, None, 0
        import time

        bar = tqdm(total=total, disable=not self.progress_bar, desc="training", unit="step")
        for epoch in range(int(self.epochs)):
            model.train()
            start = time.perf_counter()
            sums = {"loss": 0.0, "ce": 0.0, "attr": 0.0}
            order = rng.permutation(train_rows)
            for b in range(steps_per_epoch):
                rows = order[b * bs : (b + 1) * bs]
                input_ids, mask, widx = self._collate(data, rows, device)
                target = y_t[rows].to(device)
                embeds = model.get_input_embeddings()(input_ids)
                attr = torch.zeros((), device=device)
                logits = None
                if prior_values is not None:
                    pb = torch.as_tensor(prior_values[rows][:, :W], dtype=embeds.dtype, device=device)
                    if pb.shape[1] < W:
                        pb = torch.nn.functional.pad(pb, (0, W - pb.shape[1]), value=float("nan"))
                    complete = torch.zeros((len(rows), W), dtype=torch.bool, device=device)
                    for i, r in enumerate(rows):
                        c = data["complete"][r]
                        complete[i, : len(c)] = torch.as_tensor(c)
                    if torch.isfinite(pb).any():
                        attr, logits = self._attribution_loss(
                            input_ids, mask, widx, embeds, target, pb, complete, create_graph=True
                        )
                if logits is None:
                    logits = model(inputs_embeds=embeds, attention_mask=mask).logits
                ce = torch.nn.functional.cross_entropy(logits, target)
                loss = ce + float(self.beta) * attr
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                sums["loss"] += loss.item()
                sums["ce"] += ce.item()
                sums["attr"] += attr.item()
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / (b + 1):.3f}")
            record = {k: v / steps_per_epoch for k, v in sums.items()}
            record["epoch"] = epoch + 1
            record["seconds"] = time.perf_counter() - start
            if val_rows is not None:
                pred = self._predict_idx(data, val_rows, device)
                record["val_accuracy"] = float(np.mean(pred == y_idx[val_rows]))
                if record["val_accuracy"] > best:
                    best, stale = record["val_accuracy"], 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
            self.history_.append(record)
            if val_rows is not None and stale >= int(self.n_iter_no_change):
                break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        self.n_epochs_ = len(self.history_)

    # -- inference ----------------------------------------------------------
    def _logits(self, data, rows, device, eval_batch_size=64):
        model = self.model_
        model.eval()
        out = np.empty((len(rows), len(self.classes_)), dtype=np.float32)
        # Length-sorted batches: little padding, hence little wasted compute.
        order = np.argsort([len(data["ids"][r]) for r in rows], kind="stable")
        with torch.inference_mode():
            for s in range(0, len(order), eval_batch_size):
                pick = order[s : s + eval_batch_size]
                input_ids, mask, _ = self._collate(data, [rows[i] for i in pick], device)
                out[pick] = model(input_ids=input_ids, attention_mask=mask).logits.float().cpu().numpy()
        return out

    def _predict_idx(self, data, rows, device):
        return self._logits(data, np.asarray(rows), device).argmax(1)

    def _prepare(self, X):
        check_is_fitted(self, "model_")
        texts, wa = self._as_container(X, allow_empty=True)
        if wa is None:
            wa = WordAttributions(texts)
        self.model_.to(self._device())
        return wa, self._encode(wa)

    def class_index(self, labels):
        """Column of each label in ``classes_`` (what ``predict_proba`` and ``explain`` index by).

        Raises a ``ValueError`` naming labels not seen in ``fit``.
        """
        check_is_fitted(self, "classes_")
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        labels = np.asarray(labels).tolist()
        unknown = sorted({t for t in labels if t not in lookup}, key=str)
        if unknown:
            raise ValueError(f"Labels {unknown[:5]} were not seen in fit; classes_ are {self.classes_[:5]}...")
        return np.array([lookup[t] for t in labels], dtype=int)

    def decision_function(self, X):
        """Logits, shape (n_texts, n_classes). Empty texts get the model's answer for no words."""
        wa, data = self._prepare(X)
        return self._logits(data, np.arange(len(wa)), self._device())

    def predict_proba(self, X):
        """Class probabilities, shape (n_texts, n_classes), columns in ``classes_`` order."""
        logits = torch.from_numpy(self.decision_function(X))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X):
        """Predicted labels (of the same type as those seen in ``fit``)."""
        scores = self.decision_function(X)
        return self.classes_[scores.argmax(1)]

    def explain(self, X, target=None, *, method=None, n_steps=32, batch_size=16):
        """Per-word attributions of the fitted model.

        Parameters
        ----------
        X : list of str or WordAttributions
        target : array-like of labels, default=None
            Class to explain per text; the predicted class by default.
        method : {"ig", "grad_input"}, default=None
            Defaults to the ``attribution`` the model was trained with.
        n_steps : int, default=32
            IG steps (more than in training: this is for reading, not speed).
        batch_size : int, default=16

        Returns
        -------
        WordAttributions
            Raw attributions to ``log P(target)`` summed over each word's
            tokens; ``.targets`` holds the explained labels. Render with
            ``.to_html()``, list with ``.to_list(i)``.
        """
        wa, data = self._prepare(X)
        device = self._device()
        if target is None:
            tgt = self._predict_idx(data, np.arange(len(wa)), device)
        else:
            target = np.asarray(target)
            if len(target) != len(wa):
                raise ValueError(f"target has {len(target)} labels for {len(wa)} texts.")
            tgt = self.class_index(target)
        method = method or self.attribution
        W = max(wa.width, 1)
        values = np.full((len(wa), W), np.nan)
        model = self.model_
        model.eval()
        for s in range(0, len(wa), batch_size):
            rows = np.arange(s, min(s + batch_size, len(wa)))
            input_ids, mask, widx = self._collate(data, rows, device)
            with torch.enable_grad():
                embeds = model.get_input_embeddings()(input_ids).detach()
                base = self._baseline(input_ids, embeds) if method == "ig" else None
                tok, _ = token_attributions(model, embeds, mask, torch.as_tensor(tgt[rows], device=device),
                                            method=method, n_steps=n_steps, baseline=base)
            words = pool_to_words(tok.detach(), widx, W).cpu().numpy()
            for i, r in enumerate(rows):
                d = len(wa.words[r])
                values[r, :d] = np.where(data["complete"][r], words[i, :d], np.nan)
        out = wa.with_values(values)
        out.targets = self.classes_[tgt]
        return out

    # -- persistence --------------------------------------------------------
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
            config = AutoConfig.for_model(**config_dict)
            _, model = self._build(len(self.classes_), config=config)
            model.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
            self.model_ = model.eval()

    def __sklearn_tags__(self):
        tags = text_input_tags(super().__sklearn_tags__())
        tags.non_deterministic = self.random_state is None
        return tags
