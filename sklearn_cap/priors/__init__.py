"""Prior transformers; each returns a :class:`~sklearn_cap.text.WordAttributions`.

- :class:`CAPPriorTransformer`: class-aware priors from an LLM (or encoder) that sees the label space;
- :class:`IGPriorTransformer`, :class:`LIMEPriorTransformer`: explanations of a reference classifier;
- :class:`PriorUnion`: per-text normalisation and fusion (CAP Hybrid).
"""

from .cap import CAPPriorTransformer
from .ig import IGPriorTransformer
from .lime import LIMEPriorTransformer
from .union import PriorUnion

__all__ = ["CAPPriorTransformer", "IGPriorTransformer", "LIMEPriorTransformer", "PriorUnion"]
