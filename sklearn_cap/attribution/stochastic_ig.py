"""Stochastic Integrated Gradients: one random point of IG's path per text and step."""

import torch

from .base import AttributionMethod
from .integrated_gradients import IntegratedGradients, integrated_gradients, make_baseline

__all__ = ["StochasticIntegratedGradients"]


class StochasticIntegratedGradients(AttributionMethod):
    """An unbiased one-point estimate of IG at about the cost of gradient x input (``attribution="ig_stochastic"``).

    Each call draws one interpolation point per text uniformly on the path
    from the baseline to the input (expected gradients' estimator, Erion
    et al. 2021), from torch's generator, which the classifier forks and
    seeds in ``fit``. :meth:`for_explanation` is exact IG.

    Parameters
    ----------
    baseline : {"pad", "zeros"}, default="pad"
        As in :class:`~sklearn_cap.attribution.IntegratedGradients`.

    Examples
    --------
    >>> StochasticIntegratedGradients().for_explanation()
    IntegratedGradients()
    """

    def __init__(self, baseline="pad"):
        self.baseline = baseline

    def token_attributions(self, model, embeds, batch, target, *, pad_token_id=0, n_steps=None,
                           create_graph=False, internal_batch_size=None):
        base = make_baseline(self.baseline, model, embeds, batch, pad_token_id)
        alphas = torch.rand((1, len(batch)), device=embeds.device)
        return integrated_gradients(model, embeds, batch.attention_mask, target, base, alphas=alphas,
                                    create_graph=create_graph, internal_batch_size=internal_batch_size)

    def for_explanation(self):
        return IntegratedGradients(baseline=self.baseline)
