"""CAP scorers: ``log P(label | prompt(text))`` for many pairs at once.

- :class:`CausalLMScorer`: a Hugging Face causal LM, with the shared prompt
  prefix computed once (the paper's path; Llama-3-8B-Instruct on a GPU).
- :class:`OpenAIScorer`: an OpenAI-compatible server such as vLLM.
- :class:`EmbeddingScorer`: a sentence encoder's softmax over label-name
  similarities; the strong offline default.
"""

import difflib
import os

from sklearn.base import clone

from ..loading import check_model_source
from .base import DEFAULT_INSTRUCTION, BaseScorer, PromptLayout, Task, humanize_label
from .causal_lm import CausalLMScorer
from .embedding import EmbeddingScorer
from .openai import OpenAIScorer, ScoringServerError, Secret

__all__ = [
    "BaseScorer",
    "CausalLMScorer",
    "DEFAULT_INSTRUCTION",
    "EmbeddingScorer",
    "OpenAIScorer",
    "PromptLayout",
    "ScoringServerError",
    "Secret",
    "Task",
    "humanize_label",
    "build_scorer",
]


def build_scorer(scorer):
    """Build a scorer from a string, or a fresh copy of a scorer object (``sklearn.base.clone``).

    ``"embedding"`` is :class:`EmbeddingScorer` on the embedded MiniLM; any
    other string is a model for :class:`CausalLMScorer` (hub id, folder or
    ``.gguf`` file).

    Parameters
    ----------
    scorer : BaseScorer, str or path-like
        A scorer object (cloned), ``"embedding"``, or a causal LM's hub id,
        folder or ``.gguf`` path.

    Returns
    -------
    BaseScorer
        A new, unfitted scorer.
    """
    if isinstance(scorer, BaseScorer):
        return clone(scorer)  # fit never mutates its parameters; loaded models are shared by the registry
    if isinstance(scorer, (str, os.PathLike)):
        if scorer == "embedding":
            return EmbeddingScorer()
        name = os.fspath(scorer)
        if not os.path.exists(os.path.expanduser(name)) and difflib.get_close_matches(name, ["embedding"], 1, 0.75):
            raise ValueError(f"scorer={name!r} is not a model folder or file; did you mean 'embedding'?")
        check_model_source(name, what="scorer", gguf=True)
        return CausalLMScorer(name)
    raise TypeError(
        "scorer must be a BaseScorer, 'embedding', or a model id / folder / .gguf "
        f"path for a causal LM; got {type(scorer).__name__}."
    )
