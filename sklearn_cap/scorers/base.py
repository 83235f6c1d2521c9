"""The scorer interface: ``log P(label | prompt(text))`` for many pairs at once.

A :class:`Task` is what every query of a data set shares: the instruction with
the whole label space written into it. A scorer turns (task, text, label)
into one float, the log-probability of the label's words given the prompt.
Scorers are scikit-learn estimators only in the sense that ``get_params``,
``set_params`` and :func:`~sklearn.base.clone` work on them, so they nest in
a prior transformer's parameters (``priors__cap__scorer__batch_size``).
"""

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator

from ..validation import validate_params

__all__ = ["Task", "PromptLayout", "BaseScorer", "humanize_label", "DEFAULT_INSTRUCTION"]

DEFAULT_INSTRUCTION = (
    "Classify the customer message into exactly one of these intents:\n{labels}\n"
    "Answer with the intent only."
)


def humanize_label(label):
    """Turn a label such as ``"card_arrival"`` or ``"cardArrival"`` into words.

    Parameters
    ----------
    label : object
        A raw label; converted with ``str``.

    Returns
    -------
    str
        The label in lower case, camel case split and underscores, hyphens
        and runs of whitespace turned into single spaces.

    Examples
    --------
    >>> humanize_label("card_arrival")
    'card arrival'
    >>> humanize_label("getSpareCard")
    'get spare card'
    """
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(label))
    return re.sub(r"[_\-\s]+", " ", text).strip().lower()


def _check_description_keys(descriptions, labels):
    """Every key of ``label_descriptions`` is a label: a misspelt one would be ignored without a word."""
    labels = list(labels)
    known = set(labels)
    unknown = [k for k in descriptions if k not in known]
    if not unknown:
        return
    names = [str(lab) for lab in labels]
    hints = []
    for key in unknown[:5]:
        close = difflib.get_close_matches(str(key), names, n=3, cutoff=0.6)
        hints.append(f"{key!r} (did you mean {' or '.join(map(repr, close))}?)" if close else repr(key))
    many = len(unknown) > 1
    raise ValueError(
        f"label_descriptions has {len(unknown)} {'keys that are' if many else 'key that is'} not a label of "
        f"the label space: {', '.join(hints)}. Its keys must be raw labels as they appear in y "
        f"or labels= (for example {names[0]!r}): fix or remove the others, or, for labels that this y lacks, "
        "pass the full label space as labels=."
    )


class PromptLayout(NamedTuple):
    """The plain prompt of a query: ``prefix + text + suffix + answer_lead + answer``.

    Parameters
    ----------
    prefix : str
        The instruction (with the label space) and the lead-in of the text.
    suffix : str
        What follows the text and asks for the answer.
    answer_lead : str
        What separates the question from the answer.
    """

    prefix: str
    suffix: str
    answer_lead: str


@dataclass(frozen=True)
class Task:
    """The part of the prompt shared by every query of a data set.

    Parameters
    ----------
    instruction : str
        The instruction with the label space already written in.
    label_names : tuple of str
        The answer string of each label, in label-space order.
    """

    instruction: str
    label_names: tuple

    @classmethod
    def from_labels(cls, labels, template=DEFAULT_INSTRUCTION, descriptions=None):
        """Build a task from raw labels, a template with ``{labels}``, and optional descriptions.

        ``descriptions`` maps a raw label to the words the model should see
        (and answer with); other labels are humanised.

        Parameters
        ----------
        labels : array-like of shape (n_labels,)
            The raw labels of the label space, in order.
        template : str, default=DEFAULT_INSTRUCTION
            Instruction with a ``{labels}`` placeholder, where the label
            names are written as a ``- name`` list.
        descriptions : dict, default=None
            Raw label -> the words the model sees for it; other labels go
            through :func:`humanize_label`. A key that is not a label (a
            misspelling) raises a ``ValueError`` naming the close matches.

        Returns
        -------
        Task
            The instruction with the label space written in, and the label names.
        """
        if "{labels}" not in template:
            raise ValueError(
                "The instruction template must contain the placeholder '{labels}', "
                f"where the label space is written; got {template!r}."
            )
        descriptions = descriptions or {}
        _check_description_keys(descriptions, labels)
        names = tuple(str(descriptions.get(lab, humanize_label(lab))) for lab in labels)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(
                f"Two labels read the same after humanising: {dup}. Pass "
                "label_descriptions to tell them apart."
            )
        listing = "\n".join(f"- {n}" for n in names)
        return cls(template.replace("{labels}", listing), names)

    @property
    def layout(self):
        r"""The plain prompt layout every scorer reads (:class:`PromptLayout`).

        A chat template, where a scorer uses one, wraps ``prefix + text`` as
        the user turn instead of appending ``suffix``.

        Examples
        --------
        >>> Task.from_labels(["card_arrival", "refund"], "Intents:\n{labels}").layout.prefix
        'Intents:\n- card arrival\n- refund\n\nMessage: '
        """
        return PromptLayout(f"{self.instruction}\n\nMessage: ", "\nIntent:", " ")

    @property
    def fingerprint(self):
        blob = self.instruction + "\x00" + "\x00".join(self.label_names)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class BaseScorer(BaseEstimator):
    """Interface of every CAP scorer.

    Subclasses implement :meth:`_score` and :attr:`identity`. The count of
    pairs actually sent to the model is kept in ``n_scored_`` (cache hits in
    the prior transformer never reach the scorer), which is how the tests
    and users can check that a change of ``lam`` costs no LLM call.
    """

    _parameter_constraints = {}  # subclasses declare theirs; checked once per public score() call

    def score(self, texts, label_names, task, *, progress_bar=False):
        """Log-probability of each answer given its text's prompt.

        Parameters
        ----------
        texts : list of str
            The (masked) texts.
        label_names : list of str
            The answer of each pair, one of ``task.label_names``.
        task : Task
        progress_bar : bool, default=False

        Returns
        -------
        ndarray of shape (len(texts),)
        """
        if len(texts) != len(label_names):
            raise ValueError(f"{len(texts)} texts but {len(label_names)} labels.")
        unknown = set(label_names) - set(task.label_names)
        if unknown:
            raise ValueError(f"Labels {sorted(unknown)} are not in the task's label space.")
        validate_params(self)  # skipped when a prior's scoring session has checked them already
        if not len(texts):
            return np.zeros(0)
        out = np.asarray(self._score(list(texts), list(label_names), task, progress_bar), dtype=float)
        if out.shape != (len(texts),):
            raise ValueError(f"{type(self).__name__} returned {out.shape} scores for {len(texts)} texts.")
        bad = np.flatnonzero(~np.isfinite(out) | (out > 1e-4))
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"{type(self).__name__} returned {out[i]!r} as log P({label_names[i]!r} | {texts[i][:40]!r}...); "
                "a log-probability is finite and <= 0. Nothing from this batch was cached. Check the model "
                "(dtype overflow in float16?) or the server."
            )
        self.n_scored_ = getattr(self, "n_scored_", 0) + len(texts)
        return out

    def _score(self, texts, label_names, task, progress_bar):
        raise NotImplementedError

    @property
    def identity(self):
        """A string that changes whenever the scores could change."""
        raise NotImplementedError
