"""Building the classifier network: a Hugging Face encoder with a classification head.

Two heads: the model's own ``*ForSequenceClassification`` head (first token)
or :class:`MeanPoolingClassifier` (masked mean of the token states), which
sentence-transformers checkpoints such as the embedded MiniLM need.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from .loading import check_model_source, quiet_transformers

__all__ = ["MeanPoolingClassifier", "resolve_pooling", "build_classifier", "max_tokens"]

# Models whose position ids start after the padding index, so two positions are unusable.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "bart", "mbart"}


class MeanPoolingClassifier(torch.nn.Module):
    """An encoder, masked mean pooling over tokens, dropout and a linear or cosine head.

    Sentence-transformers checkpoints (such as the embedded MiniLM) are
    trained to be read by mean pooling, and their CLS pooler is not: a
    CLS head on them learns slowly, worst of all in few-shot training.
    The interface is the one the library uses of a Hugging Face
    ``*ForSequenceClassification`` model: ``model(...).logits``,
    ``get_input_embeddings()`` and ``config``; :meth:`features` gives the
    pooled features the head reads (what a linear probe is fitted on).

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
    num_labels : int
    dropout : float, default=0.1
    normalize : bool, default=False
        L2-normalise the pooled features (sentence-transformers compare
        them by cosine, so their direction carries the meaning).
    head : {"linear", "cosine"}, default="linear"
        ``"cosine"``: logits are the cosine similarities of the
        normalised features and class weights divided by ``temperature``
        (no bias).
    temperature : float, default=0.05
    """

    def __init__(self, encoder, num_labels, dropout=0.1, *, normalize=False, head="linear", temperature=0.05):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.normalize = bool(normalize)
        self.head = head
        self.temperature = float(temperature)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels, bias=head == "linear")

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def features(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        """Masked mean of the token states, L2-normalised with ``normalize`` or a cosine head; (n, hidden)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              inputs_embeds=inputs_embeds).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        if self.normalize or self.head == "cosine":
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        pooled = self.dropout(self.features(input_ids, attention_mask, inputs_embeds))
        if self.head == "cosine":
            weight = torch.nn.functional.normalize(self.classifier.weight, dim=-1)
            return SimpleNamespace(logits=torch.nn.functional.normalize(pooled, dim=-1) @ weight.T / self.temperature)
        return SimpleNamespace(logits=self.classifier(pooled))


def resolve_pooling(pooling, model):
    """``"auto"``: ``"mean"`` for a sentence-transformers folder that pools by mean, else ``"cls"``."""
    if pooling not in ("auto", "mean", "cls"):
        raise ValueError(f"pooling must be 'auto', 'mean' or 'cls', got {pooling!r}.")
    if pooling != "auto":
        return pooling
    cfg = Path(str(model)) / "1_Pooling" / "config.json"
    if cfg.exists() and json.loads(cfg.read_text()).get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls"


def build_classifier(model, pooling, num_labels, *, config=None, head_options=None):
    """Tokenizer and classification model.

    Parameters
    ----------
    model : str
        Hub id or folder of the encoder (ignored when ``config`` is given).
    pooling : {"cls", "mean"}
        Resolved pooling (:func:`resolve_pooling`).
    num_labels : int
    config : transformers.PretrainedConfig, default=None
        Build an untrained model of this configuration instead (unpickling,
        which then loads the saved weights); no tokenizer is returned.
    head_options : dict, default=None
        ``normalize``, ``head`` and ``temperature`` of
        :class:`MeanPoolingClassifier` (mean pooling only).

    Returns
    -------
    tokenizer : transformers.PreTrainedTokenizerFast or None
    model : torch.nn.Module
    """
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    with quiet_transformers():  # "newly initialised head" is expected here
        if config is not None:
            if pooling == "mean":
                return None, MeanPoolingClassifier(AutoModel.from_config(config), num_labels, **(head_options or {}))
            return None, AutoModelForSequenceClassification.from_config(config)
        source = check_model_source(model)
        tokenizer = AutoTokenizer.from_pretrained(source)
        if pooling == "mean":
            return tokenizer, MeanPoolingClassifier(AutoModel.from_pretrained(source), num_labels,
                                                    **(head_options or {}))
        return tokenizer, AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels)


def max_tokens(tokenizer, config):
    """The most tokens the model takes per text (position embeddings and the tokenizer's own limit)."""
    limit = getattr(config, "max_position_embeddings", None) or 10**9
    if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        limit -= 2
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 10**6:  # transformers' "no limit" is a huge int
        limit = min(limit, tok_limit)
    return int(limit)
