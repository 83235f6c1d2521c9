"""Per-text normalisation and the attribution loss: one scale for priors and self-attributions.

:func:`normalize` serves both the fusion of priors
(:class:`~sklearn_cap.PriorUnion`) and the classifier's attribution loss, so a
prior and the model's own attribution are compared on the same scale.
"""

import numpy as np
import torch

__all__ = ["NORMALIZATIONS", "normalize", "normalize_np", "attribution_loss"]

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
