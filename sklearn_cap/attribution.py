"""Self-attribution of a classifier (one IG, gradient x input), token-to-word pooling, normalisation.

One Integrated Gradients implementation (:func:`integrated_gradients`) serves
the training loss, :meth:`~sklearn_cap.ExplanationGuidedClassifier.explain`
and the IG prior, so the same model gives the same IG everywhere. It is ours,
not captum's, because the loss differentiates *through* the attribution
(``create_graph=True``), which captum does not offer; the tests pin it to
captum's ``IntegratedGradients(method="riemann_right")``.

One normalisation (:func:`normalize`) serves both the fusion of priors and
the classifier's attribution loss, so a prior and the model's own
attribution are compared on the same scale.
"""

import contextlib

import numpy as np
import torch

__all__ = [
    "NORMALIZATIONS",
    "normalize",
    "normalize_np",
    "pool_to_words",
    "pad_baseline",
    "integrated_gradients",
    "gradient_x_input",
    "attribution_loss",
]

NORMALIZATIONS = ("minmax", "l1", "softmax")
_EPS = 1e-8


def normalize(values, mask, method="minmax"):
    """Normalise each row of ``values`` over the entries where ``mask`` is True.

    Parameters
    ----------
    values : torch.Tensor of shape (n, w)
    mask : torch.BoolTensor of shape (n, w)
    method : {"minmax", "l1", "softmax"}
        ``"minmax"`` maps a row onto [0, 1] (the paper's choice; a constant
        row maps to 0); ``"l1"`` divides by the sum of absolute values, so
        signs survive; ``"softmax"`` turns a row into a distribution.

    Returns
    -------
    torch.Tensor
        Same shape; 0 where ``mask`` is False. Differentiable.

    Examples
    --------
    >>> normalize(torch.tensor([[1.0, 3.0, 2.0]]), torch.ones(1, 3, dtype=torch.bool))
    tensor([[0.0000, 1.0000, 0.5000]])
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization {method!r}; choose one of {NORMALIZATIONS}.")
    mask = mask.bool()
    x = torch.where(mask, values, torch.zeros_like(values))
    if method == "minmax":
        big = torch.finfo(values.dtype).max
        lo = torch.where(mask, values, torch.full_like(values, big)).amin(dim=1, keepdim=True)
        hi = torch.where(mask, values, torch.full_like(values, -big)).amax(dim=1, keepdim=True)
        lo = torch.where(mask.any(1, keepdim=True), lo, torch.zeros_like(lo))
        out = (x - lo) / (hi - lo).clamp(min=_EPS)
    elif method == "l1":
        out = x / x.abs().sum(dim=1, keepdim=True).clamp(min=_EPS)
    else:
        logits = torch.where(mask, values, torch.full_like(values, -float("inf")))
        out = torch.softmax(logits, dim=1).nan_to_num(0.0)
    return torch.where(mask, out, torch.zeros_like(out))


def normalize_np(values, method="minmax"):
    """:func:`normalize` for a NaN-padded prior matrix; NaN stays NaN.

    Parameters
    ----------
    values : array-like of shape (n, w)
        Scores by word position; NaN (or infinite) entries are left out of
        each row's normalisation.
    method : {"minmax", "l1", "softmax"}, default="minmax"
        As in :func:`normalize`.

    Returns
    -------
    ndarray of shape (n, w)
        Each row normalised over its finite entries; NaN elsewhere.

    Examples
    --------
    >>> normalize_np(np.array([[1.0, 3.0, np.nan], [2.0, -2.0, 0.0]]))
    array([[0. , 1. , nan],
           [1. , 0. , 0.5]])
    """
    values = np.asarray(values, dtype=float)
    mask = np.isfinite(values)
    out = normalize(torch.from_numpy(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)),
                    torch.from_numpy(mask), method).numpy()
    out[~mask] = np.nan
    return out


def pool_to_words(token_scores, word_index, n_words):
    """Sum token scores into word columns.

    Parameters
    ----------
    token_scores : torch.Tensor of shape (n, t)
    word_index : torch.LongTensor of shape (n, t)
        -1 for tokens that belong to no word (they are dropped).
    n_words : int
        Width of the result.

    Returns
    -------
    torch.Tensor of shape (n, n_words)

    Examples
    --------
    >>> pool_to_words(torch.tensor([[0.5, 1.0, 2.0]]), torch.tensor([[-1, 0, 0]]), 2)
    tensor([[3., 0.]])
    """
    valid = word_index >= 0
    idx = torch.where(valid, word_index, torch.zeros_like(word_index))
    out = torch.zeros(token_scores.shape[0], n_words, dtype=token_scores.dtype, device=token_scores.device)
    return out.scatter_add(1, idx, torch.where(valid, token_scores, torch.zeros_like(token_scores)))


def pad_baseline(embeds, special, pad_embedding):
    """IG baseline: the pad embedding at word tokens; special and padding tokens keep theirs.

    Parameters
    ----------
    embeds : torch.Tensor of shape (n, t, h)
        Input embeddings.
    special : torch.BoolTensor of shape (n, t)
        True for special and padding tokens.
    pad_embedding : torch.Tensor of shape (h,)
        The pad token's embedding.

    Returns
    -------
    torch.Tensor of shape (n, t, h)
        ``embeds`` where ``special`` is True, ``pad_embedding`` elsewhere.
    """
    return torch.where(special[..., None], embeds, pad_embedding.to(embeds.dtype).expand_as(embeds))


def _target_logprob(model, embeds, attention_mask, target, create_graph):
    # Training on an attribution differentiates twice. The fused CPU/GPU
    # attention kernels have no double backward; the math kernel does.
    ctx = contextlib.nullcontext()
    if create_graph:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        ctx = sdpa_kernel([SDPBackend.MATH])
    with ctx:
        logits = model(inputs_embeds=embeds, attention_mask=attention_mask).logits
    return logits, torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)


def gradient_x_input(model, embeds, attention_mask, target, *, create_graph=False):
    """Gradient x input of ``log P(target)`` per token, and the logits at the input.

    Parameters
    ----------
    model : a classifier taking ``inputs_embeds`` and ``attention_mask``
        Its output has ``.logits`` of shape (n, n_classes).
    embeds : torch.Tensor of shape (n, t, h)
        Input embeddings; made to require grad when they do not.
    attention_mask : torch.Tensor of shape (n, t)
        1 for real tokens, 0 for padding.
    target : torch.LongTensor of shape (n,)
        Class index whose log-probability is attributed, per text.
    create_graph : bool, default=False
        Keep the graph so that a loss on the attribution can be trained.

    Returns
    -------
    attributions : torch.Tensor of shape (n, t)
    logits : torch.Tensor of shape (n, n_classes)
    """
    if not embeds.requires_grad:
        embeds = embeds.detach().requires_grad_(True)
    logits, lp = _target_logprob(model, embeds, attention_mask, target, create_graph)
    (grad,) = torch.autograd.grad(lp.sum(), embeds, create_graph=create_graph)
    return (grad * embeds).sum(-1), logits


def integrated_gradients(model, embeds, attention_mask, target, baseline, *, n_steps=32, create_graph=False,
                         internal_batch_size=None, alphas=None):
    """Integrated Gradients (Sundararajan et al. 2017) of ``log P(target)`` per token.

    A right Riemann sum over ``n_steps`` points ``baseline + (k / n_steps) *
    (embeds - baseline)``, ``k = 1..n_steps``: the same sum as captum's
    ``IntegratedGradients(method="riemann_right")``. The points of all texts
    run as one batched forward and backward pass (split into chunks of at
    most ``internal_batch_size`` rows to bound memory).

    Parameters
    ----------
    model : a classifier taking ``inputs_embeds`` and ``attention_mask``
    embeds, baseline : torch.Tensor of shape (n, t, h)
    attention_mask : torch.Tensor of shape (n, t)
    target : torch.LongTensor of shape (n,)
    n_steps : int
    create_graph : bool, default=False
        Keep the graph so that a loss on the attribution can be trained.
    internal_batch_size : int, default=None
        Most interpolated rows per pass; None runs every point at once.
    alphas : torch.Tensor of shape (k, n), default=None
        Interpolation points per step and text, in [0, 1], instead of the
        Riemann grid. One uniform draw per text (``k = 1``) is *stochastic
        IG*: an unbiased estimate of IG's path integral, as expected
        gradients uses for attribution priors (Erion et al. 2021).

    Returns
    -------
    attributions : torch.Tensor of shape (n, t)
    logits : torch.Tensor of shape (n, n_classes) or None
        The logits at the input itself (the last point of the Riemann sum),
        which a training step reuses for its cross-entropy; None with
        ``alphas``, whose points need not include the input.
    """
    n = embeds.shape[0]
    if alphas is None:
        m = int(n_steps)
        if m < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        alphas = (torch.arange(1, m + 1, dtype=embeds.dtype, device=embeds.device) / m)[:, None].expand(m, n)
        at_input = True
    else:
        alphas = alphas.to(embeds.dtype)
        m, at_input = alphas.shape[0], False
    delta = embeds - baseline
    per_pass = m if internal_batch_size is None else max(1, int(internal_batch_size) // max(n, 1))
    grad_sum, logits = torch.zeros_like(embeds), None
    for start in range(0, m, per_pass):
        a = alphas[start : start + per_pass]  # (k, n)
        path = (baseline.unsqueeze(0) + a[:, :, None, None] * delta.unsqueeze(0)).reshape(-1, *embeds.shape[1:])
        if not path.requires_grad:
            path.requires_grad_(True)
        out, lp = _target_logprob(model, path, attention_mask.repeat(len(a), 1), target.repeat(len(a)),
                                  create_graph)
        (grad,) = torch.autograd.grad(lp.sum(), path, create_graph=create_graph)
        grad_sum = grad_sum + grad.reshape(len(a), *embeds.shape).sum(0)
        if at_input and start + len(a) == m:
            logits = out[-n:]
    return (delta * grad_sum / m).sum(-1), logits


def attribution_loss(word_attributions, prior, valid, normalization="minmax"):
    """MSE between the normalised self-attribution and the normalised prior, over ``valid`` words.

    Parameters
    ----------
    word_attributions : torch.Tensor of shape (n, w)
    prior : torch.Tensor of shape (n, w)
        NaN where a word has no prior.
    valid : torch.BoolTensor of shape (n, w)
        Words that count: a finite prior and whole after truncation.
    normalization : {"minmax", "l1", "softmax"}

    Returns
    -------
    torch.Tensor (scalar)
    """
    a = normalize(word_attributions, valid, normalization)
    p = normalize(torch.nan_to_num(prior, nan=0.0), valid, normalization)
    return ((a - p) ** 2 * valid).sum() / valid.sum().clamp(min=1)
