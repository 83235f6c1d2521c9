"""Keyword-addition and keyword-replacement adversarial sets.

After the paper's adversarial setting: a text of class ``a`` is edited to
carry a keyword of a class ``b`` that ``a`` is easily confused with, while
its own discriminative words stay, so a human still reads it as ``a``.

- **addition**: insert one keyword of ``b`` (absent from the text and not a
  keyword of ``a``) at a random word boundary;
- **replacement**: replace one word of the text that is *not* among ``a``'s
  keywords (so the words that carry the meaning stay) by that keyword of ``b``.

``b`` is ``a``'s most confusable class by keyword overlap
(:func:`sklearn_cap.metrics.keyword_overlap`), ties broken by class order.
Every edit is recorded (:class:`Edit`), so an adversarial text can be traced
back to its source; texts that admit no edit are left out and counted.
Everything is seeded by ``random_state``.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from .metrics import keyword_overlap
from .text import segment

__all__ = ["Edit", "AdversarialSet", "make_adversarial"]


@dataclass(frozen=True)
class Edit:
    """One edit of source text ``source``: at ``char_start``, ``removed`` became ``inserted``.

    ``keyword`` is the confusable class's keyword that went in (``inserted``
    also holds the space an addition needs); ``confused_with`` is that class.

    Parameters
    ----------
    kind : {"addition", "replacement"}
        The kind of edit.
    source : int
        Index of the source text in the texts given to :func:`make_adversarial`.
    char_start : int
        Character offset in the source text where the edit starts.
    removed : str
        The source text's characters the edit replaces (``""`` for an addition).
    inserted : str
        The characters that take their place: the keyword, with a space
        before or after it for an addition.
    keyword : str
        The confusable class's keyword that was put in.
    confused_with : label
        The confusable class the keyword belongs to.
    """

    kind: str
    source: int
    char_start: int
    removed: str
    inserted: str
    keyword: str
    confused_with: object

    def apply(self, text):
        """The edited text from the source.

        Parameters
        ----------
        text : str
            The source text.

        Returns
        -------
        str
            The text with ``removed`` at ``char_start`` replaced by ``inserted``.
        """
        return text[: self.char_start] + self.inserted + text[self.char_start + len(self.removed) :]

    def undo(self, text):
        """The source text back from the edited one.

        Parameters
        ----------
        text : str
            The edited text (the output of :meth:`apply`).

        Returns
        -------
        str
            The text with ``inserted`` at ``char_start`` replaced by ``removed``.
        """
        return text[: self.char_start] + self.removed + text[self.char_start + len(self.inserted) :]


@dataclass
class AdversarialSet:
    """Edited texts with their gold labels and the edits that made them.

    Parameters
    ----------
    texts : list of str
        The adversarial texts.
    labels : ndarray of shape (n_texts,)
        The gold label of each text: its source text's label.
    edits : list of Edit
        The edit that made each text from its source.
    n_skipped : int
        Source texts that admitted no edit and were left out.
    """

    texts: list
    labels: np.ndarray
    edits: list
    n_skipped: int

    def __len__(self):
        return len(self.texts)


def _partner(keywords):
    overlap, classes = keyword_overlap(keywords)
    np.fill_diagonal(overlap, -1.0)
    return {c: classes[int(np.argmax(overlap[i]))] for i, c in enumerate(classes)}


def make_adversarial(texts, labels, keywords, *, kind="addition", partners=None, random_state=None):
    """Turn a test set into its keyword-addition or keyword-replacement version.

    Parameters
    ----------
    texts : list of str
    labels : array-like
        Gold labels; every label needs an entry in ``keywords``.
    keywords : dict of label -> list of (word, score)
        From :func:`sklearn_cap.metrics.class_keywords` on training priors.
    kind : {"addition", "replacement"}
    partners : dict of label -> label, default=None
        Each class's confusable class; by default the class whose keywords
        overlap most (:func:`sklearn_cap.metrics.keyword_overlap`).
        :func:`sklearn_cap.keywords.confusable_partners` gives a method-free one.
    random_state : int, RandomState or None

    Returns
    -------
    AdversarialSet

    Examples
    --------
    >>> kw = {"card_arrival": [("arrived", 1.0)], "card_delivery_estimate": [("deliver", 1.0)]}
    >>> adv = make_adversarial(["my card has not arrived"], ["card_arrival"], kw, random_state=0)
    >>> adv.texts[0].split().count("deliver")
    1
    """
    if kind not in ("addition", "replacement"):
        raise ValueError(f"kind must be 'addition' or 'replacement', got {kind!r}.")
    labels = np.asarray(labels)
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
    missing = sorted({str(v) for v in labels.tolist() if v not in keywords})
    if missing:
        raise ValueError(f"No keywords for labels {missing[:5]}; compute class_keywords on data with these classes.")
    rng = check_random_state(random_state)
    partner = _partner(keywords) if partners is None else partners
    out_texts, out_labels, edits, skipped = [], [], [], 0
    for i, (text, label) in enumerate(zip(texts, labels.tolist())):
        other = partner[label]
        own = {w for w, _ in keywords[label]}
        words, spans = segment(text)
        present = {w.lower() for w in words}
        candidates = [w for w, _ in keywords[other] if w not in own and w not in present]
        if not candidates or not words:
            skipped += 1
            continue
        new = candidates[0]  # the strongest keyword of the confusable class
        if kind == "addition":
            slot = int(rng.randint(len(words) + 1))
            if slot < len(words):  # before word `slot`
                edit = Edit(kind, i, spans[slot][0], "", new + " ", new, other)
            else:  # after the last word
                edit = Edit(kind, i, spans[-1][1], "", " " + new, new, other)
        else:
            free = [j for j, w in enumerate(words) if w.lower() not in own]
            if not free:
                skipped += 1
                continue
            s, e = spans[free[int(rng.randint(len(free)))]]
            edit = Edit(kind, i, s, text[s:e], new, new, other)
        edited = edit.apply(text)
        out_texts.append(edited)
        out_labels.append(label)
        edits.append(edit)
    return AdversarialSet(out_texts, np.asarray(out_labels, dtype=labels.dtype), edits, skipped)
