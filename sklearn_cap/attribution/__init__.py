"""Self-attribution of a classifier, token-to-word pooling and normalisation.

One file per method over a shared base (:mod:`.base`), as captum lays out
its methods: :class:`GradientXInput`, :class:`IntegratedGradients` and
:class:`StochasticIntegratedGradients`. The same objects serve the training
loss, :meth:`~sklearn_cap.ExplanationGuidedClassifier.explain` and the IG
prior, so the same model gives the same attribution everywhere. One
normalisation (:mod:`.normalization`) serves the fusion of priors and the
attribution loss.
"""

from .base import AttributionMethod, target_logprob
from .gradient_x_input import GradientXInput, gradient_x_input
from .integrated_gradients import IntegratedGradients, integrated_gradients, pad_baseline
from .normalization import NORMALIZATIONS, attribution_loss, normalize, normalize_np
from .pooling import pool_to_words
from .stochastic_ig import StochasticIntegratedGradients

__all__ = [
    "ATTRIBUTIONS",
    "AttributionMethod",
    "GradientXInput",
    "IntegratedGradients",
    "StochasticIntegratedGradients",
    "resolve_attribution",
    "NORMALIZATIONS",
    "normalize",
    "normalize_np",
    "pool_to_words",
    "pad_baseline",
    "integrated_gradients",
    "gradient_x_input",
    "attribution_loss",
    "target_logprob",
]

# The names ``attribution=`` accepts, and the method each stands for.
ATTRIBUTIONS = {
    "ig": IntegratedGradients,
    "ig_stochastic": StochasticIntegratedGradients,
    "grad_input": GradientXInput,
}


def resolve_attribution(method):
    """An :class:`AttributionMethod` from a name of :data:`ATTRIBUTIONS` or an object.

    Parameters
    ----------
    method : str or AttributionMethod

    Returns
    -------
    AttributionMethod

    Examples
    --------
    >>> resolve_attribution("grad_input")
    GradientXInput()
    """
    if isinstance(method, AttributionMethod):
        return method
    if isinstance(method, str) and method in ATTRIBUTIONS:
        return ATTRIBUTIONS[method]()
    raise ValueError(
        f"attribution must be one of {sorted(ATTRIBUTIONS)} or an AttributionMethod instance, got {method!r}."
    )
