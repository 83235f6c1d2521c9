"""Progress bars: one switch, ``progress_bar``, shared by every estimator.

``"auto"`` (the default everywhere) shows a bar only when stderr is a
terminal, so logs of batch jobs and CI runs do not fill with ``\\r`` lines;
True forces bars on, False turns them off.
"""

from sklearn.utils._param_validation import StrOptions
from tqdm.auto import tqdm

__all__ = ["progress"]

PROGRESS_BAR = ["boolean", StrOptions({"auto"})]  # the constraint every estimator declares


def progress(iterable=None, *, enabled="auto", **kwargs):
    """A ``tqdm`` bar that honours a ``progress_bar`` parameter (True, False or "auto").

    Examples
    --------
    >>> sum(progress(range(3), enabled=False))
    3
    """
    disable = None if enabled == "auto" else not enabled  # tqdm: None = off when not a TTY
    return tqdm(iterable, disable=disable, **kwargs)
