"""Integrated Gradients (Sundararajan et al. 2017): one implementation for the loss, ``explain`` and the IG prior.

It is ours, not captum's, because the loss differentiates *through* the
attribution (``create_graph=True``), which captum does not offer; the tests
pin it to captum's ``IntegratedGradients(method="riemann_right")``.
"""

import torch

from .base import AttributionMethod, target_logprob

__all__ = ["IntegratedGradients", "integrated_gradients", "pad_baseline"]

BASELINES = ("pad", "zeros")


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
        out, lp = target_logprob(model, path, attention_mask.repeat(len(a), 1), target.repeat(len(a)),
                                  create_graph)
        (grad,) = torch.autograd.grad(lp.sum(), path, create_graph=create_graph)
        grad_sum = grad_sum + grad.reshape(len(a), *embeds.shape).sum(0)
        if at_input and start + len(a) == m:
            logits = out[-n:]
    return (delta * grad_sum / m).sum(-1), logits




def make_baseline(kind, model, embeds, batch, pad_token_id):
    """The IG baseline of a batch: ``"pad"`` (:func:`pad_baseline`) or ``"zeros"`` at word tokens."""
    if kind == "pad":
        pad = model.get_input_embeddings().weight[pad_token_id].detach()
    elif kind == "zeros":
        pad = torch.zeros(embeds.shape[-1], dtype=embeds.dtype, device=embeds.device)
    else:
        raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}.")
    return pad_baseline(embeds, batch.special, pad)


class IntegratedGradients(AttributionMethod):
    """Integrated Gradients of ``log P(target)``, a right Riemann sum (``attribution="ig"``).

    Parameters
    ----------
    n_steps : int or None, default=None
        Riemann steps; None takes the caller's: the classifier's ``n_steps``
        in training, ``explain``'s ``n_steps`` when explaining.
    baseline : {"pad", "zeros"}, default="pad"
        At word tokens, the pad token's embedding (the library's default)
        or the zero vector; special and padding tokens keep their own.

    Examples
    --------
    >>> from sklearn_cap import ExplanationGuidedClassifier
    >>> clf = ExplanationGuidedClassifier(attribution=IntegratedGradients(n_steps=8))
    >>> clf.attribution.n_steps
    8
    """

    def __init__(self, n_steps=None, baseline="pad"):
        self.n_steps = n_steps
        self.baseline = baseline

    def _steps(self, n_steps):
        steps = self.n_steps if self.n_steps is not None else n_steps
        return 32 if steps is None else steps

    def token_attributions(self, model, embeds, batch, target, *, pad_token_id=0, n_steps=None,
                           create_graph=False, internal_batch_size=None):
        base = make_baseline(self.baseline, model, embeds, batch, pad_token_id)
        return integrated_gradients(model, embeds, batch.attention_mask, target, base, n_steps=self._steps(n_steps),
                                    create_graph=create_graph, internal_batch_size=internal_batch_size)

    def for_explanation(self):
        # The training steps are for speed; explain reads with its own n_steps.
        return IntegratedGradients(baseline=self.baseline)
