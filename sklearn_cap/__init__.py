"""sklearn-cap: explanation-guided training of small text classifiers with
class-aware attribution priors (CAP), the scikit-learn way."""

from .classifier import ExplanationGuidedClassifier
from .priors import (BasePrior, CAPPriorTransformer, GlobalPriorTransformer, IGPriorTransformer, LIMEPriorTransformer,
                     PriorUnion, make_probe_reference)
from .text import WordAttributions, segment

__version__ = "0.1.0.dev0"

__all__ = [
    "BasePrior",
    "CAPPriorTransformer",
    "ExplanationGuidedClassifier",
    "GlobalPriorTransformer",
    "IGPriorTransformer",
    "LIMEPriorTransformer",
    "PriorUnion",
    "WordAttributions",
    "segment",
    "make_probe_reference",
    "__version__",
]
