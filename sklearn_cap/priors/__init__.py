"""Prior transformers: each returns a :class:`~sklearn_cap.text.WordAttributions`."""

from .cap import CAPPriorTransformer

__all__ = ["CAPPriorTransformer"]
