"""Token scores summed into the words of the library's one word segmentation."""

import torch

__all__ = ["pool_to_words"]


def pool_to_words(token_scores, word_index, n_words):
    """Sum token scores into word columns.

    Parameters
    ----------
    token_scores : torch.Tensor of shape (n, t)
    word_index : torch.LongTensor of shape (n, t)
        -1 for tokens that belong to no word (they are dropped).
    n_words : int
        Width of the result.

    Returns
    -------
    torch.Tensor of shape (n, n_words)

    Examples
    --------
    >>> pool_to_words(torch.tensor([[0.5, 1.0, 2.0]]), torch.tensor([[-1, 0, 0]]), 2)
    tensor([[3., 0.]])
    """
    valid = word_index >= 0
    idx = torch.where(valid, word_index, torch.zeros_like(word_index))
    out = torch.zeros(token_scores.shape[0], n_words, dtype=token_scores.dtype, device=token_scores.device)
    return out.scatter_add(1, idx, torch.where(valid, token_scores, torch.zeros_like(token_scores)))
