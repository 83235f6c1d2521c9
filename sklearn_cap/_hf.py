"""Small helpers around Hugging Face ``transformers``."""

import contextlib


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings and weight-loading bars for the duration.

    Loading a checkpoint prints a bar per call and, for a new classification
    head, a warning that the head is untrained: both are expected here.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
