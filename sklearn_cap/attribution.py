"""Self-attribution of a Hugging Face classifier, token-to-word pooling, normalisation.

One normalisation (:func:`normalize`) serves both the fusion of priors and
the classifier's attribution loss, so a prior and the model's own
attribution are compared on the same scale. Token attributions are summed
into the words of :func:`sklearn_cap.text.segment` through the tokenizer's
character offsets (:func:`align_words`), so subwords, punctuation and special
tokens never shift a word's column.
"""

import contextlib

import numpy as np
import torch

__all__ = [
    "NORMALIZATIONS",
    "normalize",
    "normalize_np",
    "align_words",
    "pool_to_words",
    "token_attributions",
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

    Examples
    --------
    >>> normalize_np(np.array([[1.0, 3.0, np.nan], [2.0, -2.0, 0.0]]))
    array([[0.  , 1.  ,  nan],
           [1.  , 0.  , 0.5 ]])
    """
    values = np.asarray(values, dtype=float)
    mask = np.isfinite(values)
    out = normalize(torch.from_numpy(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)),
                    torch.from_numpy(mask), method).numpy()
    out[~mask] = np.nan
    return out


def align_words(tokenizer, texts, spans, max_length):
    """Tokenise texts and map every token to the word it belongs to.

    Parameters
    ----------
    tokenizer : a fast Hugging Face tokenizer (offsets are needed)
    texts : list of str
    spans : list of list of (int, int)
        Word spans from :func:`sklearn_cap.text.segment`.
    max_length : int

    Returns
    -------
    input_ids : list of list of int
    word_index : list of list of int
        Per token, the word it belongs to, or -1 (special tokens, punctuation).
    complete : list of ndarray of bool
        Per text, which words survived truncation whole. Words cut by
        ``max_length`` are left out of the loss rather than misaligned.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("A fast tokenizer (with offset mapping) is required for word alignment.")
    enc = tokenizer(list(texts), truncation=True, max_length=int(max_length), return_offsets_mapping=True)
    word_index, complete = [], []
    for text, sp, offsets in zip(texts, spans, enc["offset_mapping"]):
        char_word = np.full(len(text) + 1, -1, dtype=np.int64)
        for j, (s, e) in enumerate(sp):
            char_word[s:e] = j
        idx, covered = [], 0
        for s, e in offsets:
            w = int(char_word[s:e].max()) if e > s else -1
            idx.append(w)
            covered = max(covered, e)
        word_index.append(idx)
        complete.append(np.array([e <= covered for _, e in sp], dtype=bool))
    return enc["input_ids"], word_index, complete


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
    """
    valid = word_index >= 0
    idx = torch.where(valid, word_index, torch.zeros_like(word_index))
    out = torch.zeros(token_scores.shape[0], n_words, dtype=token_scores.dtype, device=token_scores.device)
    return out.scatter_add(1, idx, torch.where(valid, token_scores, torch.zeros_like(token_scores)))


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


def token_attributions(model, embeds, attention_mask, target, *, method="grad_input", n_steps=8,
                       baseline=None, create_graph=False):
    """Attribution of each token to ``log P(target)``.

    Parameters
    ----------
    model : a ``*ForSequenceClassification`` model
    embeds : torch.Tensor of shape (n, t, h)
        Input embeddings (the output of the embedding layer).
    attention_mask : torch.Tensor of shape (n, t)
    target : torch.LongTensor of shape (n,)
    method : {"grad_input", "ig"}
        ``"grad_input"``: gradient x input, one backward pass.
        ``"ig"``: Integrated Gradients (Sundararajan et al. 2017) with a
        right Riemann sum over ``n_steps`` points from ``baseline`` to the
        input, all steps in one batched pass.
    baseline : torch.Tensor, default=None
        IG baseline embeddings; zeros when None.
    create_graph : bool, default=False
        Keep the graph so the attribution itself can be trained on.

    Returns
    -------
    attributions : torch.Tensor of shape (n, t)
    logits : torch.Tensor of shape (n, n_classes) or None
        The logits at the input (returned by ``"grad_input"``, which computes
        them anyway, so training can reuse them for cross-entropy).
    """
    if method == "grad_input":
        if not embeds.requires_grad:
            embeds = embeds.detach().requires_grad_(True)
        logits, lp = _target_logprob(model, embeds, attention_mask, target, create_graph)
        (grad,) = torch.autograd.grad(lp.sum(), embeds, create_graph=create_graph)
        return (grad * embeds).sum(-1), logits
    if method == "ig":
        m = int(n_steps)
        if m < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        base = torch.zeros_like(embeds) if baseline is None else baseline
        alphas = torch.arange(1, m + 1, dtype=embeds.dtype, device=embeds.device) / m
        delta = embeds - base
        path = base.unsqueeze(0) + alphas[:, None, None, None] * delta.unsqueeze(0)  # (m, n, t, h)
        path = path.reshape(-1, *embeds.shape[1:])
        if not path.requires_grad:
            path.requires_grad_(True)
        _, lp = _target_logprob(model, path, attention_mask.repeat(m, 1), target.repeat(m), create_graph)
        (grad,) = torch.autograd.grad(lp.sum(), path, create_graph=create_graph)
        avg = grad.reshape(m, *embeds.shape).mean(0)
        return (delta * avg).sum(-1), None
    raise ValueError(f"Unknown attribution {method!r}; use 'ig' or 'grad_input'.")
