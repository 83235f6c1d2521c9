"""Gradient x input: one backward pass, the cheapest self-attribution."""

import torch

from .base import AttributionMethod, target_logprob

__all__ = ["GradientXInput", "gradient_x_input"]


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
    logits, lp = target_logprob(model, embeds, attention_mask, target, create_graph)
    (grad,) = torch.autograd.grad(lp.sum(), embeds, create_graph=create_graph)
    return (grad * embeds).sum(-1), logits




class GradientXInput(AttributionMethod):
    """Gradient x input of ``log P(target)`` with respect to the input embeddings (``attribution="grad_input"``).

    Examples
    --------
    >>> from sklearn_cap import ExplanationGuidedClassifier
    >>> ExplanationGuidedClassifier(attribution=GradientXInput()).attribution
    GradientXInput()
    """

    def token_attributions(self, model, embeds, batch, target, *, pad_token_id=0, n_steps=None,
                           create_graph=False, internal_batch_size=None):
        return gradient_x_input(model, embeds, batch.attention_mask, target, create_graph=create_graph)
