"""The interface every self-attribution method implements, and the target log-probability they attribute.

A method is a small object (:class:`AttributionMethod`) with its own
parameters and baseline. The classifier's loss, its
:meth:`~sklearn_cap.ExplanationGuidedClassifier.explain` and the IG prior all
call :meth:`AttributionMethod.attribute`, so a new method (SmoothGrad,
DeepLIFT, ...) is one new subclass and no edit of the estimator.
"""

import contextlib

import torch
from sklearn.base import BaseEstimator

from .pooling import pool_to_words

__all__ = ["AttributionMethod", "target_logprob"]


def target_logprob(model, embeds, attention_mask, target, create_graph):
    """Logits and ``log P(target)`` of a classifier run on input embeddings.

    Parameters
    ----------
    model : a classifier taking ``inputs_embeds`` and ``attention_mask``
        Its output has ``.logits`` of shape (n, n_classes).
    embeds : torch.Tensor of shape (n, t, h)
    attention_mask : torch.Tensor of shape (n, t)
    target : torch.LongTensor of shape (n,)
    create_graph : bool
        The caller will differentiate the gradient again (training on an
        attribution): run attention with the math kernel, the one with a
        double backward.

    Returns
    -------
    logits : torch.Tensor of shape (n, n_classes)
    logprob : torch.Tensor of shape (n,)
    """
    ctx = contextlib.nullcontext()
    if create_graph:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        ctx = sdpa_kernel([SDPBackend.MATH])
    with ctx:
        logits = model(inputs_embeds=embeds, attention_mask=attention_mask).logits
    return logits, torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)


class AttributionMethod(BaseEstimator):
    """Base class: each word's attribution to a classifier's ``log P(target)``.

    Subclasses implement :meth:`token_attributions`; :meth:`attribute` embeds
    a batch, calls it and sums token scores into words. Parameters follow
    scikit-learn's rules (stored verbatim, ``get_params``/``set_params``,
    ``clone``), so a method object can sit in a grid of
    :class:`~sklearn_cap.ExplanationGuidedClassifier` parameters.

    Examples
    --------
    >>> import torch
    >>> class InputNorm(AttributionMethod):
    ...     '''A toy method: the norm of each token's embedding.'''
    ...     def token_attributions(self, model, embeds, batch, target, **kwargs):
    ...         logits = model(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits
    ...         return embeds.norm(dim=-1), logits
    """

    def __eq__(self, other):
        # Methods are values: the same class with the same parameters is the same method.
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_params().items()))))

    def token_attributions(self, model, embeds, batch, target, *, pad_token_id=0, n_steps=None,
                           create_graph=False, internal_batch_size=None):
        """Per-token attribution of ``log P(target)`` and the logits at the input.

        Parameters
        ----------
        model : a classifier taking ``inputs_embeds`` and ``attention_mask``
        embeds : torch.Tensor of shape (n, t, h)
            The batch's input embeddings (detached unless ``create_graph``).
        batch : sklearn_cap.encoding.Batch
            Token ids, attention mask, special-token flags and word index.
        target : torch.LongTensor of shape (n,)
            Class index to attribute, per text.
        pad_token_id : int, default=0
            The tokenizer's pad token (for baselines built from it).
        n_steps : int, default=None
            The caller's number of steps, for methods that take steps and
            were given none of their own.
        create_graph : bool, default=False
            Keep the graph so that a loss on the attribution can be trained.
        internal_batch_size : int, default=None
            Most model rows per pass, for methods that run several.

        Returns
        -------
        tokens : torch.Tensor of shape (n, t)
        logits : torch.Tensor of shape (n, n_classes) or None
            The logits at the input, when the method computed them (the
            training step reuses them for its cross-entropy).
        """
        raise NotImplementedError

    def attribute(self, model, batch, target, *, pad_token_id=0, n_steps=None, create_graph=False,
                  internal_batch_size=None):
        """Each word's attribution: :meth:`token_attributions` summed over each word's tokens.

        Parameters
        ----------
        model, batch, target, pad_token_id, n_steps, create_graph, internal_batch_size
            As in :meth:`token_attributions`.

        Returns
        -------
        words : torch.Tensor of shape (n, width)
            One column per word of the batch (``batch.complete.shape[1]``).
        logits : torch.Tensor of shape (n, n_classes) or None
        """
        embeds = model.get_input_embeddings()(batch.input_ids)
        if not create_graph:
            embeds = embeds.detach()
        tokens, logits = self.token_attributions(model, embeds, batch, target, pad_token_id=pad_token_id,
                                                 n_steps=n_steps, create_graph=create_graph,
                                                 internal_batch_size=internal_batch_size)
        return pool_to_words(tokens.float(), batch.word_index, batch.complete.shape[1]), logits

    def for_explanation(self):
        """The method :meth:`~sklearn_cap.ExplanationGuidedClassifier.explain` uses for a model trained with this one.

        Returns
        -------
        AttributionMethod
            ``self`` by default; a training-time estimate (stochastic IG)
            returns the exact method it estimates.
        """
        return self
