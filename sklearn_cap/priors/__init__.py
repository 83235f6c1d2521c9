"""Prior transformers; each returns a :class:`~sklearn_cap.text.WordAttributions`.

- :class:`BasePrior`: the contract every prior follows (subclass it for your own);
- :class:`CAPPriorTransformer`: class-aware priors from an LLM (or encoder) that sees the label space;
- :class:`GlobalPriorTransformer`: one class-level score per vocabulary word (LAAT-style), asked once;
- :class:`IGPriorTransformer`, :class:`LIMEPriorTransformer`: explanations of a reference classifier
  (:func:`make_probe_reference`: a linear probe on the frozen encoder, the cheap reference);
- :class:`PriorUnion`: per-text normalisation and fusion (CAP Hybrid).
"""

from .base import BasePrior, References
from .cap import CAPPriorTransformer
from .global_prior import GlobalPriorTransformer
from .ig import IGPriorTransformer
from .lime import LIMEPriorTransformer
from .reference import make_probe_reference
from .union import PriorUnion

__all__ = ["BasePrior", "CAPPriorTransformer", "GlobalPriorTransformer", "IGPriorTransformer", "LIMEPriorTransformer", "PriorUnion",
           "References", "make_probe_reference"]
