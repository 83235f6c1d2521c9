"""Texts as token ids, built once: the token-to-word map, whole-word flags and batches.

:class:`EncodedTexts` tokenises a :class:`~sklearn_cap.text.WordAttributions`
once (per ``fit``, ``predict`` or ``explain``) into padded NumPy matrices;
:meth:`EncodedTexts.batch` slices them into tensors with no Python loop over
rows, and :meth:`EncodedTexts.batches` orders rows by length so that batches
carry little padding.
"""

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["align_words", "EncodedTexts", "Batch"]


def align_words(tokenizer, texts, spans, max_length):
    """Tokenise texts and map every token to the word it belongs to.

    Parameters
    ----------
    tokenizer : a fast Hugging Face tokenizer (offsets are needed)
    texts : list of str
    spans : list of list of (int, int)
        Word spans from :func:`sklearn_cap.text.segment`.
    max_length : int

    Returns
    -------
    input_ids : list of list of int
    word_index : list of list of int
        Per token, the word it belongs to, or -1 (special tokens, punctuation).
    complete : list of ndarray of bool
        Per text, which words survived truncation whole. Words cut by
        ``max_length`` are left out of the loss rather than misaligned.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("A fast tokenizer (with offset mapping) is required for word alignment.")
    enc = tokenizer(list(texts), truncation=True, max_length=int(max_length), return_offsets_mapping=True)
    word_index, complete = [], []
    for text, sp, offsets in zip(texts, spans, enc["offset_mapping"]):
        char_word = np.full(len(text) + 1, -1, dtype=np.int64)
        for j, (s, e) in enumerate(sp):
            char_word[s:e] = j
        idx, covered = [], 0
        for s, e in offsets:
            idx.append(int(char_word[s:e].max()) if e > s else -1)
            covered = max(covered, e)
        word_index.append(idx)
        complete.append(np.array([e <= covered for _, e in sp], dtype=bool))
    return enc["input_ids"], word_index, complete


@dataclass
class Batch:
    """Rows of :class:`EncodedTexts` as tensors on one device.

    ``word_index`` is -1 for tokens of no word; ``complete`` (rows x words) is
    True for words that survived truncation whole; ``special`` marks special
    and padding tokens (they keep their embedding in the IG baseline).
    """

    rows: np.ndarray
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    special: torch.Tensor
    complete: torch.Tensor

    def __len__(self):
        return len(self.rows)


class EncodedTexts:
    """Token ids and word alignment of texts, for one tokenizer and ``max_length``.

    Parameters
    ----------
    tokenizer : a fast Hugging Face tokenizer
    attributions : WordAttributions
        The texts and their words (:func:`sklearn_cap.text.segment`).
    max_length : int

    Attributes
    ----------
    attributions : WordAttributions
        The texts and words encoded.
    input_ids, attention_mask, word_index, special : ndarray of shape (n_texts, max_tokens)
    complete : ndarray of bool, shape (n_texts, width)
    lengths : ndarray of int
        Tokens per text.
    width : int
        Word columns (at least 1).

    Examples
    --------
    >>> enc = EncodedTexts(tokenizer, WordAttributions(["my card", "hi"]), 32)  # doctest: +SKIP
    >>> enc.batch([1, 0], "cpu").input_ids.shape  # doctest: +SKIP
    torch.Size([2, 4])
    """

    def __init__(self, tokenizer, attributions, max_length):
        ids, word_index, complete = align_words(tokenizer, attributions.texts, attributions.spans, max_length)
        self.attributions = attributions
        self._fill(tokenizer, ids, max(attributions.width, 1))
        for i, (w, c) in enumerate(zip(word_index, complete)):
            self.word_index[i, : len(w)] = w
            self.complete[i, : len(c)] = c

    @classmethod
    def tokens_only(cls, tokenizer, texts, max_length):
        """Token ids and attention masks of texts, without words: what a forward pass reads.

        The same ids as the full encoding (the same tokenizer call, without
        offsets), at about a third of its cost: no word segmentation or
        alignment. ``attributions`` is None, ``word_index`` is -1 and
        ``complete`` is False throughout.

        Parameters
        ----------
        tokenizer : a fast Hugging Face tokenizer
        texts : list of str
        max_length : int

        Returns
        -------
        EncodedTexts
        """
        ids = tokenizer(list(texts), truncation=True, max_length=int(max_length))["input_ids"]
        out = cls.__new__(cls)
        out.attributions = None
        out._fill(tokenizer, ids, 1)
        return out

    def _fill(self, tokenizer, ids, width):
        n = len(ids)
        self.lengths = np.array([len(r) for r in ids], dtype=np.int64)
        self.width = width
        T = int(self.lengths.max()) if n else 1
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.input_ids = np.full((n, T), pad, dtype=np.int64)
        self.word_index = np.full((n, T), -1, dtype=np.int64)
        self.complete = np.zeros((n, self.width), dtype=bool)
        for i, r in enumerate(ids):
            self.input_ids[i, : len(r)] = r
        self.attention_mask = (np.arange(T)[None, :] < self.lengths[:, None]).astype(np.int64)
        specials = list(tokenizer.all_special_ids) + [pad]
        self.special = np.isin(self.input_ids, specials) | (self.attention_mask == 0)

    def __len__(self):
        return len(self.lengths)

    def batch(self, rows, device):
        """The given rows as a :class:`Batch`, cut to their longest text."""
        rows = np.asarray(rows, dtype=np.int64)
        t = int(self.lengths[rows].max()) if len(rows) else 1

        def take(a):
            return torch.from_numpy(a[rows, :t]).to(device)

        return Batch(rows, take(self.input_ids), take(self.attention_mask), take(self.word_index),
                     take(self.special), torch.from_numpy(self.complete[rows]).to(device))

    def batches(self, rows, batch_size, *, rng=None, pool=8):
        """Row arrays of at most ``batch_size``, grouped by length to cut padding.

        Without ``rng`` (inference) rows are sorted by length. With ``rng``
        (training) rows are shuffled, sorted by length within pools of
        ``pool`` batches, and the batches are shuffled, so every epoch sees
        a new order while each batch holds texts of similar length.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rng is None:
            order = rows[np.argsort(self.lengths[rows], kind="stable")]
            return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        shuffled = rng.permutation(rows)
        out = []
        step = batch_size * pool
        for s in range(0, len(shuffled), step):
            chunk = shuffled[s : s + step]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        return [out[i] for i in rng.permutation(len(out))]
