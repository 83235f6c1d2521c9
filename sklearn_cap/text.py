"""Word segmentation and the container that carries texts and word scores.

Every prior (CAP, IG, LIME), the classifier's self-attribution and ``explain``
use :func:`segment`, so column ``j`` of any prior matrix is the same word of
the same text. A *word* is a maximal run of word characters, optionally joined
by internal apostrophes or hyphens (``"isn't"``, ``"top-up"``); combining marks
belong to the word they follow, in any script and in decomposed (NFD) text.
Punctuation stays in the text but is never a word, so it carries no
attribution.
"""

import html
import numbers

import numpy as np
import regex

__all__ = ["WORD_PATTERN", "segment", "masked_text", "WordAttributions"]

# Word characters *and* combining marks (\p{M}): without the marks, Devanagari
# words split at every vowel sign and a decomposed (NFD) "café" splits before
# its accent. Texts are not normalised: spans index the text as given.
WORD_PATTERN = regex.compile(r"[\w\p{M}]+(?:['\u2019\-][\w\p{M}]+)*")


def segment(text):
    """Split one text into words and their character spans.

    Parameters
    ----------
    text : str
        The text.

    Returns
    -------
    words : list of str
    spans : list of (int, int)
        ``text[start:end] == word`` for every word.

    Examples
    --------
    >>> segment("Where's my card?")
    (["Where's", 'my', 'card'], [(0, 7), (8, 10), (11, 15)])
    """
    matches = list(WORD_PATTERN.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]


def masked_text(text, spans, keep):
    """The text with the words where ``keep`` is 0 deleted, whitespace collapsed.

    CAP's masks, LIME's perturbations and the ERASER metrics all remove
    words this way, so they agree on what "the text without these words" is.

    Examples
    --------
    >>> text = "Where's my card, please?"
    >>> masked_text(text, segment(text)[1], [1, 0, 1, 1])
    "Where's card, please?"
    """
    pieces, pos = [], 0
    for (start, end), k in zip(spans, keep):
        if not k:
            pieces.append(text[pos:start])
            pos = end
    pieces.append(text[pos:])
    return " ".join("".join(pieces).split())


class WordAttributions:
    """Texts, their words and one score per word: priors or explanations.

    The prior transformers return it, :class:`ExplanationGuidedClassifier`
    accepts it in ``fit`` and returns it from ``explain``. ``np.asarray`` of it
    is the float matrix ``(n_texts, max_words)`` with NaN past a text's last
    word (and everywhere in a row that carries no score).

    Parameters
    ----------
    texts : list of str
        The texts, in order.
    values : array-like of shape (n_texts, n_positions), default=None
        Word scores by word position. ``None`` means no scores (all NaN):
        what a prior transformer returns for unlabelled texts. Narrower
        matrices are padded with NaN; columns past a text's last word are
        set to NaN.
    targets : array-like of shape (n_texts,), default=None
        The label each row's scores are about (set by ``explain``).
    _segments : internal, default=None
        Precomputed segmentation; not for users.

    Attributes
    ----------
    words : list of list of str
    spans : list of list of (int, int)
    values : ndarray of shape (n_texts, max_words)

    Examples
    --------
    >>> wa = WordAttributions(["card not here", "hi"], [[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]])
    >>> np.asarray(wa)
    array([[0.1, 0.2, 0.7],
           [1. , nan, nan]])
    >>> wa.to_list(0)
    [('card', 0.1), ('not', 0.2), ('here', 0.7)]
    """

    def __init__(self, texts, values=None, *, targets=None, _segments=None):
        self.texts = list(texts)
        self.targets = None if targets is None else np.asarray(targets)
        if _segments is None:
            _segments = [segment(t) for t in self.texts]
        self.words = [w for w, _ in _segments]
        self.spans = [s for _, s in _segments]
        width = max((len(w) for w in self.words), default=0)
        out = np.full((len(self.texts), width), np.nan)
        if values is not None:
            values = np.asarray(values, dtype=float)
            if values.ndim != 2 or values.shape[0] != len(self.texts):
                raise ValueError(
                    f"values must have one row per text: got shape {values.shape} "
                    f"for {len(self.texts)} texts."
                )
            k = min(width, values.shape[1])
            out[:, :k] = values[:, :k]
        out[~self.word_mask] = np.nan
        self.values = out

    @property
    def word_mask(self):
        """Boolean matrix, True where the text has a word at that position."""
        lengths = np.array([len(w) for w in self.words], dtype=int)
        return np.arange(self.width)[None, :] < lengths[:, None]

    @property
    def width(self):
        return max((len(w) for w in self.words), default=0)

    @property
    def n_words(self):
        """Number of words of each text."""
        return np.array([len(w) for w in self.words], dtype=int)

    @property
    def has_values(self):
        """Whether any text carries a score (False for unlabelled output)."""
        return bool(np.isfinite(self.values).any())

    def with_values(self, values):
        """A container of the same texts and words with other scores.

        Parameters
        ----------
        values : array-like of shape (n_texts, n_positions) or None
            The new word scores by word position, as in the constructor;
            None gives a container with no scores.

        Returns
        -------
        WordAttributions
            Same texts, words and ``targets``; the new values.
        """
        return WordAttributions(self.texts, values, targets=self.targets, _segments=list(zip(self.words, self.spans)))

    def __len__(self):
        return len(self.texts)

    def __array__(self, dtype=None, copy=None):
        return self.values.astype(dtype or float, copy=True)

    def __getitem__(self, index):
        """Rows by integer, slice, index array or boolean mask."""
        if isinstance(index, numbers.Integral):
            index = [index]
        idx = np.arange(len(self))[index]
        segs = [(self.words[i], self.spans[i]) for i in idx]
        targets = None if self.targets is None else self.targets[idx]
        return WordAttributions([self.texts[i] for i in idx], self.values[idx], targets=targets, _segments=segs)

    @property
    def shape(self):
        return self.values.shape

    def to_list(self, index=None):
        """``(word, score)`` pairs of one text, or of every text when ``index`` is None.

        Parameters
        ----------
        index : int, default=None
            Row of the text; None lists every text.

        Returns
        -------
        list of (str, float), or list of such lists when ``index`` is None
            Each word with its score (NaN when it has none), in text order.
        """
        if index is None:
            return [self.to_list(i) for i in range(len(self))]
        return [(w, float(v)) for w, v in zip(self.words[index], self.values[index])]

    def top_words(self, index, k=5):
        """The ``k`` highest-scored words of one text, best first.

        Parameters
        ----------
        index : int
            Row of the text.
        k : int, default=5
            Most words to return; words without a score are left out.

        Returns
        -------
        list of str
            Up to ``k`` words, highest score first.
        """
        pairs = [p for p in self.to_list(index) if np.isfinite(p[1])]
        return [w for w, _ in sorted(pairs, key=lambda p: -p[1])[:k]]

    def to_html(self, index=None, *, labels=None):
        """HTML with each word's background shaded by its score.

        Scores are scaled per text by the largest absolute score: green for
        positive, red for negative. ``labels`` adds a caption per text
        (default: ``targets``, the explained labels, when set).

        Parameters
        ----------
        index : int, default=None
            Row of the text to render; None renders every text.
        labels : array-like of shape (n_texts,), default=None
            Caption of each text, indexed by row; None uses ``targets``
            (no captions when those are not set either).

        Returns
        -------
        str
            One ``<p>`` element per text rendered.
        """
        if labels is None:
            labels = self.targets
        rows = range(len(self)) if index is None else [index]
        parts = []
        for i in rows:
            text, spans, vals = self.texts[i], self.spans[i], self.values[i]
            finite = np.abs(vals[np.isfinite(vals)])
            scale = finite.max() if finite.size and finite.max() > 0 else 1.0
            out, pos = [], 0
            for (start, end), v in zip(spans, vals):
                out.append(html.escape(text[pos:start]))
                word = html.escape(text[start:end])
                if np.isfinite(v):
                    a = min(abs(v) / scale, 1.0) * 0.8
                    rgb = "34,139,34" if v >= 0 else "200,30,30"
                    out.append(
                        f'<span title="{v:.3g}" style="background:rgba({rgb},{a:.2f})">{word}</span>'
                    )
                else:
                    out.append(word)
                pos = end
            out.append(html.escape(text[pos:]))
            caption = ""
            if labels is not None and str(labels[i]):
                caption = f"<b>{html.escape(str(labels[i]))}</b>: "
            parts.append(f"<p>{caption}{''.join(out)}</p>")
        return "\n".join(parts)

    def _repr_html_(self):
        return self.to_html()

    def __repr__(self):
        return f"WordAttributions(n_texts={len(self)}, max_words={self.width}, has_values={self.has_values})"
