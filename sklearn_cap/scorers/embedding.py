"""Embedding scorer: ``log P(label | text)`` from a sentence encoder.

The text and every label name (or description) are embedded; the
log-probability of a label is a temperature-scaled log-softmax, over the
whole label space, of the cosine similarities. Like the LLM path it sees the
full label space, so masking a word that separates two close labels moves
probability between them: the class-aware signal CAP needs.
"""

import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..loading import check_model_source, model_fingerprint, model_registry, quiet_transformers, resolve_device
from ..progress import progress
from .base import BaseScorer

__all__ = ["EmbeddingScorer", "load_encoder", "embed_texts"]


def load_encoder(model, device="cpu"):
    """A tokenizer and encoder from a hub id or folder, loaded once per process (see ``model_registry``)."""
    from transformers import AutoModel, AutoTokenizer

    source = check_model_source(model)
    device = torch.device(device)

    def load():
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(source), AutoModel.from_pretrained(source).to(device).eval()

    return model_registry.get(("encoder", source, str(device)), load)


def embed_texts(texts, tokenizer, encoder, *, batch_size=64, max_length=256, precision="float32",
                progress_bar=False):
    """Mean-pooled, L2-normalised sentence embeddings, as a float32 tensor on the CPU.

    Texts run in length-sorted batches (little padding); the result keeps
    the input order. ``precision="bfloat16"`` runs the encoder under
    ``torch.autocast``. A special-token string in a text (``"[SEP]"``) is
    read as plain characters, not as the tokenizer's control token.
    """
    device = next(encoder.parameters()).device
    out = torch.zeros((len(texts), encoder.config.hidden_size))
    order = np.argsort([len(t) for t in texts], kind="stable")
    bf16 = precision == "bfloat16"
    for start in progress(range(0, len(texts), batch_size), enabled=progress_bar, desc="embedding"):
        rows = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                          split_special_tokens=True, return_tensors="pt").to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = encoder(**batch).last_hidden_state.float()
        m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        out[torch.as_tensor(rows)] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
    return out


class EmbeddingScorer(BaseScorer):
    """Label log-probabilities from cosine similarities of sentence embeddings.

    Parameters
    ----------
    model : str, default=None
        Hub id or folder of a sentence encoder; None is the embedded MiniLM
        (:data:`sklearn_cap.embedded.ENCODER`).
    temperature : float, default=0.05
        Softmax temperature on cosine similarities (lower is sharper).
    batch_size : int, default=64
    max_length : int, default=256
        Longer texts are truncated: words past the limit do not change the
        score, so their CAP prior is zero.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"`` runs the encoder under ``torch.autocast``: 2.2x the
        throughput of float32 on this project's CPU with AMX, with the same
        word ranking in CAP priors (``benchmarks/bench_scale.py --part
        cap_full``); part of the cache key.
    device : str, default="auto"

    Examples
    --------
    >>> from sklearn_cap.scorers import EmbeddingScorer, Task
    >>> task = Task.from_labels(["card_arrival", "lost_or_stolen_card"])
    >>> EmbeddingScorer().score(["where is my new card"], ["card arrival"], task)
    array([-0.35...])
    """

    def __init__(self, model=None, *, temperature=0.05, batch_size=64, max_length=256, precision="float32",
                 device="auto"):
        self.model = model
        self.temperature = temperature
        self.batch_size = batch_size
        self.max_length = max_length
        self.precision = precision
        self.device = device

    def _model_path(self):
        if self.model is None:
            from .. import embedded

            return embedded.ENCODER
        return str(self.model)

    _parameter_constraints = {
        "model": [None, str, os.PathLike],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "device": [str, torch.device],
    }

    @property
    def identity(self):
        """Weights fingerprint, temperature, length limit and device type: what the scores depend on."""
        source = check_model_source(self._model_path())
        device = resolve_device(self.device).type
        prec = "" if self.precision == "float32" else f"|{self.precision}"
        return f"embedding|{model_fingerprint(source)}|T={self.temperature}|L={self.max_length}|{device}{prec}"

    def _label_embeddings(self, tok, enc, task):
        cached = getattr(self, "_labels", None)
        if cached is None or cached[0] != task.fingerprint:
            emb = embed_texts(list(task.label_names), tok, enc, batch_size=int(self.batch_size),
                              max_length=int(self.max_length), precision=self.precision)
            self._labels = (task.fingerprint, emb)
        return self._labels[1]

    def _score(self, texts, answers, task, progress_bar):
        tok, enc = load_encoder(self._model_path(), resolve_device(self.device))
        labels = self._label_embeddings(tok, enc, task)
        # Masked variants repeat: embed each distinct text once.
        uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        emb = embed_texts(list(uniq), tok, enc, batch_size=int(self.batch_size), max_length=int(self.max_length),
                          precision=self.precision, progress_bar=progress_bar)
        logp = torch.log_softmax(emb @ labels.T / float(self.temperature), dim=-1).numpy()
        col = {name: j for j, name in enumerate(task.label_names)}
        return logp[inverse, [col[a] for a in answers]]

    def embed(self, texts, *, progress_bar=False):
        """Mean-pooled, L2-normalised embeddings of texts (a float32 tensor on the CPU).

        Parameters
        ----------
        texts : list of str
            The texts to embed.
        progress_bar : bool or "auto", default=False
            Show a progress bar over the batches.

        Returns
        -------
        torch.Tensor of shape (n_texts, hidden_size)
            One unit-norm row per text, in input order.
        """
        tok, enc = load_encoder(self._model_path(), resolve_device(self.device))
        return embed_texts(list(texts), tok, enc, batch_size=int(self.batch_size), max_length=int(self.max_length),
                           precision=self.precision, progress_bar=progress_bar)

    def predict_log_proba(self, texts, task):
        """Log-probabilities of every label for each text (zero-shot classification).

        Parameters
        ----------
        texts : list of str
            The texts to classify.
        task : Task
            The label space: its ``label_names`` are embedded and compared
            with each text.

        Returns
        -------
        ndarray of shape (n_texts, n_labels)
            Log-softmax of the cosine similarities over ``temperature``,
            columns in ``task.label_names`` order.
        """
        tok, enc = load_encoder(self._model_path(), resolve_device(self.device))
        labels = self._label_embeddings(tok, enc, task)
        emb = embed_texts(list(texts), tok, enc, batch_size=int(self.batch_size), max_length=int(self.max_length),
                          precision=self.precision)
        return torch.log_softmax(emb @ labels.T / float(self.temperature), dim=-1).numpy()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_labels", None)
        return state
