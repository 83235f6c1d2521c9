"""IGPriorTransformer: Integrated Gradients of a reference classifier, summed into words."""

import numpy as np
import torch
from tqdm.auto import tqdm

from ..attribution import pool_to_words
from ._reference import ReferencePriorMixin

__all__ = ["IGPriorTransformer", "captum_ig"]


def captum_ig(clf, texts, target_idx, *, n_steps=50, internal_batch_size=64, batch_size="auto", progress_bar=False):
    """Word-level IG of a fitted :class:`~sklearn_cap.ExplanationGuidedClassifier`, through captum.

    Integrated Gradients (Sundararajan et al. 2017) on the word-embedding
    layer, for ``log P(target)``, from a baseline that replaces every word
    token by the pad token and keeps special tokens. Token attributions
    are summed over the embedding dimension, then over each word's tokens.
    ``batch_size`` texts go through captum at once; captum splits the
    ``batch_size x n_steps`` interpolated inputs into chunks of
    ``internal_batch_size``. ``"auto"`` is 16 texts on a GPU and 1 on a CPU,
    where the padding of several texts costs more than batching saves
    (measured in ``benchmarks/bench_priors.py``).

    Returns
    -------
    ndarray of shape (n_texts, max_words), NaN past a text's last word and
    for words cut off by the classifier's ``max_length``.
    """
    from captum.attr import LayerIntegratedGradients

    wa, data = clf._prepare(texts)
    device = clf._device()
    if batch_size == "auto":
        batch_size = 16 if device.type == "cuda" else 1
    model = clf.model_

    def forward(input_ids, attention_mask):
        return torch.log_softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    pad_id = clf.tokenizer_.pad_token_id or 0
    special_ids = torch.tensor(clf.tokenizer_.all_special_ids, device=device)
    W = max(wa.width, 1)
    values = np.full((len(wa), W), np.nan)
    for s in tqdm(range(0, len(wa), batch_size), disable=not progress_bar, desc="IG prior"):
        rows = np.arange(s, min(s + batch_size, len(wa)))
        input_ids, mask, widx = clf._collate(data, rows, device)
        base = torch.where(torch.isin(input_ids, special_ids), input_ids, torch.full_like(input_ids, pad_id))
        attr = lig.attribute(
            input_ids, baselines=base, target=torch.as_tensor(target_idx[rows], device=device),
            additional_forward_args=(mask,), n_steps=int(n_steps),
            internal_batch_size=int(internal_batch_size),
        )
        words = pool_to_words(attr.sum(-1).detach().float(), widx, W).cpu().numpy()
        for i, r in enumerate(rows):
            d = len(wa.words[r])
            values[r, :d] = np.where(data["complete"][r], words[i, :d], np.nan)
    return values


class IGPriorTransformer(ReferencePriorMixin):
    """Integrated-Gradients priors: how a plain fine-tuned classifier explains each gold label.

    ``fit_transform(X, y)`` trains the reference classifier (or takes it,
    ``prefit=True``, or cross-fits it, ``cv=k``) and returns each text's IG
    attribution for its gold label, one column per word. ``transform(X)``
    on unlabelled texts returns them with no prior.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier, default=None
        The reference classifier; None: ``ExplanationGuidedClassifier(beta=0)``.
        Train it with ``beta=0``: the reference is the vanilla model.
    prefit : bool, default=False
        ``estimator`` is already fitted; use it as is.
    cv : int, cross-validation generator or None, default=None
        Cross-fitting: each text's prior from a model that did not see it
        (see :mod:`sklearn_cap.priors._reference` for when it matters).
    n_steps : int, default=50
        Riemann steps of IG.
    internal_batch_size : int, default=64
        Interpolated inputs per forward pass inside captum.
    batch_size : int or "auto", default="auto"
        Texts attributed together: 16 on a GPU, 1 on a CPU (see :func:`captum_ig`).
    progress_bar : bool, default=True

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

    def __init__(self, estimator=None, *, prefit=False, cv=None, n_steps=50, internal_batch_size=64,
                 batch_size="auto", progress_bar=True):
        self.estimator = estimator
        self.prefit = prefit
        self.cv = cv
        self.n_steps = n_steps
        self.internal_batch_size = internal_batch_size
        self.batch_size = batch_size
        self.progress_bar = progress_bar

    def _explain(self, model, texts, y):
        return captum_ig(model, texts, model.class_index(y), n_steps=self.n_steps,
                         internal_batch_size=self.internal_batch_size, batch_size=self.batch_size,
                         progress_bar=self.progress_bar)
