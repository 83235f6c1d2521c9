"""Word segmentation and the container that carries texts and word scores.

Every prior (CAP, IG, LIME), the classifier's self-attribution and ``explain``
use :func:`segment`, so column ``j`` of any prior matrix is the same word of
the same text. A *word* is a maximal run of word characters, optionally joined
by internal apostrophes or hyphens (``"isn't"``, ``"top-up"``); combining marks
belong to the word they follow, in any script and in decomposed (NFD) text.
Punctuation stays in the text but is never a word, so it carries no
attribution.

Scripts written without spaces:

- Chinese and Japanese: every Han, Hiragana and Katakana character is a word
  of its own (``"我的卡"`` is three words), with the marks that extend it
  (the prolonged-sound mark ``ー``, voicing marks). No dictionary is needed,
  and a prior then says which characters matter.
- Thai, Lao, Khmer and Myanmar: the library has no way to find their word
  boundaries, so a run of such text is one word and its prior covers it
  whole; :func:`segment` warns once per process
  (:class:`UnsegmentedTextWarning`). Segment such texts yourself first:
  :func:`presegment` puts a zero-width space (U+200B, invisible) between the
  words a segmenter of your choice finds (``pythainlp.word_tokenize``...),
  and texts holding one are not warned about.
"""

import html
import numbers
import warnings

import numpy as np
import regex

__all__ = ["WORD_PATTERN", "segment", "presegment", "masked_text", "WordAttributions", "UnsegmentedTextWarning",
           "ZERO_WIDTH_SPACE"]

ZERO_WIDTH_SPACE = "\u200b"

# Characters that are words on their own: Han, Hiragana and Katakana (by script extension, so the marks
# shared by both kana scripts count too).
_CJK = r"\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}"
# Marks that lengthen or voice the kana before them (full- and half-width): part of that character's word.
_CJK_TAIL = r"\p{M}\u30fc\uff70\uff9e\uff9f"
_OTHER = rf"[[\w\p{{M}}]--[{_CJK}]]"

# Word characters *and* combining marks (\p{M}): without the marks, Devanagari
# words split at every vowel sign and a decomposed (NFD) "café" splits before
# its accent. Texts are not normalised: spans index the text as given.
WORD_PATTERN = regex.compile(
    rf"(?V1)[[\w]&&[{_CJK}]--[{_CJK_TAIL}]][{_CJK_TAIL}]*"
    rf"|{_OTHER}+(?:['\u2019\-]{_OTHER}+)*"
)
_UNSEGMENTED = regex.compile(r"[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]")
_SCRIPT_NAMES = ("Thai", "Lao", "Khmer", "Myanmar")
_warned = set()


class UnsegmentedTextWarning(UserWarning):
    """A text in a script without spaces between words (Thai, Lao, Khmer, Myanmar) was segmented as a whole."""


def _warn_unsegmented(words):
    for word in words:
        if _UNSEGMENTED.search(word):
            script = next(n for n in _SCRIPT_NAMES if regex.search(rf"\p{{{n}}}", word))
            if script in _warned:
                return
            _warned.add(script)
            warnings.warn(
                f"{script} text is written without spaces between words, and sklearn_cap cannot find its word "
                f"boundaries: {word[:20]!r}... is one word, so its prior (and explanation) covers it whole. "
                "Segment such texts first with a word segmenter of your choice: "
                "sklearn_cap.text.presegment(texts, segmenter) puts an invisible zero-width space between the "
                "words it finds. This warning is shown once per script and process.",
                UnsegmentedTextWarning, stacklevel=3,
            )
            return


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

    Notes
    -----
    Each Han, Hiragana or Katakana character is a word. A run of Thai, Lao,
    Khmer or Myanmar text is one word (with a warning, once per script and
    process, unless the text holds a zero-width space: see :func:`presegment`).

    Examples
    --------
    >>> segment("Where's my card?")
    (["Where's", 'my', 'card'], [(0, 7), (8, 10), (11, 15)])
    >>> segment("我的卡 card")[0]
    ['我', '的', '卡', 'card']
    """
    matches = list(WORD_PATTERN.finditer(text))
    words = [m.group() for m in matches]
    if ZERO_WIDTH_SPACE not in text and _UNSEGMENTED.search(text):
        _warn_unsegmented(words)
    return words, [m.span() for m in matches]


def presegment(texts, segmenter, *, sep=ZERO_WIDTH_SPACE):
    """Texts with ``sep`` put between the words a segmenter finds: the way to bring your own segmenter.

    For scripts without spaces between words (Thai, Lao, Khmer, Myanmar),
    where :func:`segment` cannot find words. ``sep`` defaults to the
    zero-width space U+200B: invisible, not a word character, so
    :func:`segment` splits there, and BERT-style tokenizers drop it. Use the
    returned texts everywhere (fit, predict, explain).

    Parameters
    ----------
    texts : list of str
        The texts.
    segmenter : callable
        ``segmenter(text) -> list of str``, the words (and spaces or
        punctuation, which are kept) of one text in order, concatenating to
        the text (``pythainlp.word_tokenize`` does).
    sep : str, default="\u200b"
        Put between two consecutive pieces where neither side is
        whitespace already; ``" "`` gives visible spaces.

    Returns
    -------
    list of str
        The segmented texts.

    Examples
    --------
    >>> out = presegment(["บัตรหาย"], lambda t: ["บัตร", "หาย"])
    >>> segment(out[0])[0]
    ['บัตร', 'หาย']
    """
    out = []
    for text in texts:
        pieces = list(segmenter(text))
        if "".join(pieces) != text:
            raise ValueError(
                f"segmenter split {text[:30]!r} into pieces that do not join back to the text ({pieces[:5]}...). "
                "It must return the text's pieces in order, every character kept."
            )
        joined = []
        for piece in filter(None, pieces):
            if joined and not joined[-1][-1].isspace() and not piece[0].isspace():
                joined.append(sep)
            joined.append(piece)
        out.append("".join(joined))
    return out


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


def _as_matrix(values, words):
    """Word scores as a float matrix; a ragged list of per-text scores is checked against the words and padded."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(float, copy=False)
    rows = list(values)
    lengths = {np.ndim(r) == 1 and len(r) for r in rows}
    if len(lengths) <= 1:
        return np.asarray(rows, dtype=float)
    if len(rows) != len(words):
        raise ValueError(f"values must have one row per text: got {len(rows)} rows for {len(words)} texts.")
    width = max((len(w) for w in words), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, (row, ws) in enumerate(zip(rows, words)):
        if np.ndim(row) != 1 or len(row) != len(ws):
            raise ValueError(
                f"Row {i} of the word scores has {np.size(row)} values but text {i} has {len(ws)} words "
                f"({ws[:6]}...). Give one score per word of sklearn_cap.segment(text), or a rectangular "
                "matrix padded with NaN."
            )
        out[i, : len(ws)] = np.asarray(row, dtype=float)
    return out


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
    values : array-like of shape (n_texts, n_positions), or list of lists, default=None
        Word scores by word position. ``None`` means no scores (all NaN):
        what a prior transformer returns for unlabelled texts. Narrower
        matrices are padded with NaN; columns past a text's last word are
        set to NaN. A ragged list holds one list per text with exactly one
        score per word of :func:`segment` (a length that differs raises,
        naming the text).
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
            values = _as_matrix(values, self.words)
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
