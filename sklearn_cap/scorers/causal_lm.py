"""Hugging Face causal-LM scorer with a shared-prefix key/value cache.

Every prompt of a data set is ``prefix + text + suffix + answer`` where the
prefix (system turn, instruction, the whole label space) is hundreds of
tokens and identical for every query, while text, suffix and answer are a few
dozen. The prefix is run through the model once; a batch of queries is then
packed into one sequence behind a single copy of the prefix's keys and values,
with a block-diagonal causal mask, so a query costs its own tokens only and no
pad token is computed. ``reuse_prefix=False`` runs full prompts (same token
ids, same scores), which the benchmark uses as the baseline.

A text is data, never part of the template: a text holding a special-token
string (``"<|im_end|>"``, ``"<|im_start|>assistant"``) is tokenised as plain
characters (tokenizers' ``split_special_tokens``), so it cannot close the
user turn or open an assistant turn. The prompt's own template keeps its
control tokens.
"""

import inspect
import os
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from ..loading import (check_model_source, model_fingerprint, model_registry, quiet_transformers, resolve_device,
                       resolve_dtype)
from ..progress import progress
from .base import BaseScorer

__all__ = ["CausalLMScorer", "load_causal_lm"]

_SENTINEL = "\u2063TEXT\u2063"


def _cache_arg(lm):
    """Name of the forward argument that takes a key/value cache.

    Recent transformers (5.24 here) call it ``cache`` and warn on the old
    ``past_key_values``, which goes in 5.40; the floor, 4.56, knows only the old one.
    """
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def _special_strings(tokenizer):
    """The strings a tokenizer turns into special tokens when they occur in a text."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found = {t.content for t in added.values() if getattr(t, "special", False)}
    found.update(getattr(tokenizer, "all_special_tokens", []))
    return [s for s in found if s]


def _split_model_path(model):
    """``path/to/file.gguf`` -> (folder, file name); anything else -> (model, None)."""
    model = str(model)
    if model.endswith(".gguf"):
        p = Path(model)
        return str(p.parent), p.name
    return model, None


def load_causal_lm(model, device="cpu", dtype=None, trust_remote_code=False):
    """Load a tokenizer and causal LM once per process (kept in :data:`~sklearn_cap.loading.model_registry`).

    ``model`` is a hub id, a local folder, or a ``.gguf`` file (dequantised by
    ``transformers``; needs the ``gguf`` package).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = check_model_source(model, gguf=True)
    device = torch.device(device)
    torch_dtype = resolve_dtype(dtype, device)

    def load():
        folder, gguf_file = _split_model_path(source)
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code, **kw)
            lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                                      **kw)
        return tok, lm.to(device).eval()

    return model_registry.get(("causal_lm", source, str(device), str(torch_dtype)), load)


class CausalLMScorer(BaseScorer):
    """``log P(answer | prompt)`` from a causal LM, teacher-forced over all answer tokens.

    Parameters
    ----------
    model : str
        Hub id (``"meta-llama/Meta-Llama-3-8B-Instruct"``), local folder, or
        path of a ``.gguf`` file such as :data:`sklearn_cap.embedded.LLM`.
    device : str, default="auto"
        ``"auto"`` picks CUDA when available.
    dtype : str or torch.dtype, default=None
        None: float32 on CPU, bfloat16 (or float16) on CUDA.
    batch_size : int, default=32
        Queries per forward pass.
    reuse_prefix : bool, default=True
        Compute the shared prefix once and reuse its key/value cache.
    pack : bool, default=True
        With ``reuse_prefix``, pack a batch's queries into one sequence
        behind a single copy of the prefix cache (block-diagonal mask)
        instead of padding them into rows that each copy the prefix. It is
        checked once per prompt against the padded path and falls back to
        it, with a warning, for a model that does not honour custom masks.
    use_chat_template : bool, default=True
        Wrap the prompt in the tokenizer's chat template when it has one:
        the instruction and text form the user turn, the answer is the
        assistant turn. Otherwise a plain ``Message: ... Intent: ...`` layout.
    trust_remote_code : bool, default=False

    Attributes
    ----------
    n_scored_ : int
        Number of (text, answer) pairs run through the model so far.

    Examples
    --------
    >>> from sklearn_cap import embedded
    >>> from sklearn_cap.scorers import CausalLMScorer, Task
    >>> scorer = CausalLMScorer(embedded.LLM)  # doctest: +SKIP
    >>> task = Task.from_labels(["card_arrival", "lost_card"])
    >>> scorer.score(["my card has not come"], ["card arrival"], task)  # doctest: +SKIP
    array([-3.2...])
    """

    def __init__(
        self,
        model,
        *,
        device="auto",
        dtype=None,
        batch_size=32,
        reuse_prefix=True,
        pack=True,
        use_chat_template=True,
        trust_remote_code=False,
    ):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.reuse_prefix = reuse_prefix
        self.pack = pack
        self.use_chat_template = use_chat_template
        self.trust_remote_code = trust_remote_code

    _parameter_constraints = {
        "model": [str, os.PathLike],
        "device": [str, torch.device],
        "dtype": [None, str, torch.dtype],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "reuse_prefix": ["boolean"],
        "pack": ["boolean"],
        "use_chat_template": ["boolean"],
        "trust_remote_code": ["boolean"],
    }

    @property
    def identity(self):
        """Weights fingerprint, resolved dtype and device type, prompt layout: what the scores depend on."""
        source = check_model_source(self.model, gguf=True)
        device = resolve_device(self.device)
        dtype = str(resolve_dtype(self.dtype, device)).replace("torch.", "")
        return f"causal_lm|{model_fingerprint(source)}|{dtype}|{device.type}|chat={self.use_chat_template}"

    def _load(self):
        return load_causal_lm(self.model, resolve_device(self.device), self.dtype, self.trust_remote_code)

    # -- prompt layout -------------------------------------------------------
    def _layout(self, tokenizer, task):
        """(prefix, suffix, answer_lead, chat) strings of the task's prompt."""
        chat = self.use_chat_template and getattr(tokenizer, "chat_template", None)
        if chat:
            messages = [{"role": "user", "content": task.layout.prefix + _SENTINEL}]
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if rendered.count(_SENTINEL) != 1:
                raise ValueError("The chat template did not keep the message text exactly once.")
            prefix, suffix = rendered.split(_SENTINEL)
            return prefix, suffix, "", True
        return (*task.layout, False)

    def _encode(self, tokenizer, text, special):
        return tokenizer(text, add_special_tokens=special)["input_ids"]

    def _encode_query(self, tokenizer, text, suffix, specials):
        """Token ids of ``text + suffix``: the text as plain characters, the template suffix with its specials.

        A text with no special-token string is encoded with its suffix in one
        call, as it always was (same ids, so cached scores stay valid).
        """
        if not any(s in text for s in specials):
            return self._encode(tokenizer, text + suffix, False)
        plain = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return plain + self._encode(tokenizer, suffix, False)

    def prompt_ids(self, texts, answers, task):
        """Token ids of the shared prefix and of each query and answer.

        The concatenation ``prefix + query + answer`` is exactly what the
        full-prompt path feeds the model, so both paths see the same ids.

        Parameters
        ----------
        texts : list of str
            The (masked) texts, one per query.
        answers : list of str
            The answer of each query, one of ``task.label_names``.
        task : Task
            The instruction and label space of the prompt.

        Returns
        -------
        prefix_ids : list of int
            The shared prompt prefix (with the tokenizer's BOS when no chat
            template is used).
        query_ids : list of list of int
            Per text, the text (special-token strings in it tokenised as
            plain characters) and the prompt suffix.
        answer_ids : list of list of int
            Per query, the answer (with its leading space when no chat
            template is used).
        """
        tokenizer, lm = self._load()
        prefix, suffix, lead, chat = self._layout(tokenizer, task)
        # A chat template writes its own BOS; a plain prompt gets the tokenizer's.
        prefix_ids = self._encode(tokenizer, prefix, special=not chat)
        specials = _special_strings(tokenizer)
        queries = [self._encode_query(tokenizer, t, suffix, specials) for t in texts]
        cache = {}
        for a in set(answers):
            cache[a] = self._encode(tokenizer, lead + a, False)
        answer_ids = [cache[a] for a in answers]
        limit = getattr(lm.config, "max_position_embeddings", None)
        if limit:
            for i, (q, a) in enumerate(zip(queries, answer_ids)):
                if len(prefix_ids) + len(q) + len(a) > limit:
                    raise ValueError(
                        f"Prompt for text {i} ({texts[i][:40]!r}...) has "
                        f"{len(prefix_ids) + len(q) + len(a)} tokens, over the model's "
                        f"limit of {limit}. Shorten the text or the instruction, or "
                        "use a model with a longer context."
                    )
        return prefix_ids, queries, answer_ids

    # -- scoring -------------------------------------------------------------
    def _prefix_cache(self, lm, prefix_ids, device):
        key = tuple(prefix_ids)
        cached = getattr(self, "_prefix", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.inference_mode():
            out = lm(torch.tensor([prefix_ids], device=device), use_cache=True)
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self._prefix = (key, kv)
        return kv

    def _score(self, texts, answers, task, progress_bar):
        tokenizer, lm = self._load()
        device = next(lm.parameters()).device
        prefix_ids, queries, answer_ids = self.prompt_ids(texts, answers, task)
        kv = self._prefix_cache(lm, prefix_ids, device) if self.reuse_prefix else None
        out = np.empty(len(texts))
        # Sorting by length keeps padding, and so wasted compute, small.
        order = np.argsort([len(q) + len(a) for q, a in zip(queries, answer_ids)], kind="stable")
        bs = int(self.batch_size)
        with progress(total=len(texts), enabled=progress_bar, desc="LLM scoring", unit="prompt") as bar:
            for start in range(0, len(order), bs):
                rows = order[start : start + bs]
                q, a = [queries[r] for r in rows], [answer_ids[r] for r in rows]
                if kv is None:
                    out[rows] = self._forward_padded(lm, prefix_ids, q, a, None, device)
                elif self.pack and self._packing_agrees(lm, prefix_ids, kv, q, a, device):
                    out[rows] = self._forward_packed(lm, len(prefix_ids), kv, q, a, device)
                else:
                    out[rows] = self._forward_padded(lm, prefix_ids, q, a, kv, device)
                bar.update(len(rows))
        return out

    @staticmethod
    def _answer_logprobs(logits, answers, starts):
        """Sum of the answer tokens' log-probabilities; ``starts[i]`` indexes query i's first answer logit."""
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        return np.array([float(logp[s + torch.arange(len(a)), torch.tensor(a)].sum()) for a, s in zip(answers, starts)])

    def _forward_padded(self, lm, prefix_ids, queries, answers, kv, device):
        """One right-padded batch, one row per query; behind the prefix's cached keys and values when given."""
        from transformers import DynamicCache

        head = [] if kv is not None else prefix_ids
        seqs = [head + q + a for q, a in zip(queries, answers)]
        width, b = max(map(len, seqs)), len(seqs)
        ids = torch.zeros((b, width), dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        # Only positions that predict an answer token need logits.
        first = min(len(head) + len(q) for q in queries) - 1
        kwargs = {}
        if kv is not None:
            n_prefix = len(prefix_ids)
            kwargs[_cache_arg(lm)] = DynamicCache(
                ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv], config=lm.config)
            mask = torch.cat([torch.ones((b, n_prefix), dtype=torch.long), mask], dim=1)
            kwargs["position_ids"] = torch.arange(n_prefix, n_prefix + width, device=device).expand(b, -1)
        with torch.inference_mode():
            logits = lm(input_ids=ids.to(device), attention_mask=mask.to(device),
                        logits_to_keep=torch.arange(first, width - 1, device=device), use_cache=kv is not None,
                        **kwargs).logits
        k = logits.shape[1]  # rows laid end to end: row i's logits start at i * k
        starts = [i * k + len(head) + len(q) - 1 - first for i, q in enumerate(queries)]
        return self._answer_logprobs(logits.reshape(b * k, -1), answers, starts)

    def _forward_packed(self, lm, n_prefix, kv, queries, answers, device):
        """All queries packed into one sequence behind one copy of the prefix's keys and values.

        A block-diagonal causal mask lets each query see the prefix and its own
        earlier tokens only, and its positions restart after the prefix, so
        each query's logits are those of its own full prompt. The prefix cache
        is not copied per query (as a padded batch must), and no pad token is
        computed.
        """
        from transformers import DynamicCache

        seqs = [q + a for q, a in zip(queries, answers)]
        lens = torch.tensor([len(s) for s in seqs])
        total = int(lens.sum())
        seg = torch.repeat_interleave(torch.arange(len(seqs)), lens)
        offsets = torch.cumsum(lens, 0) - lens
        local = torch.arange(total) - offsets[seg]
        visible = (seg[:, None] == seg[None, :]) & (local[:, None] >= local[None, :])
        visible = torch.cat([torch.ones((total, n_prefix), dtype=torch.bool), visible], dim=1)[None, None]
        if lm.config._attn_implementation == "eager":  # eager attention adds the mask to its scores
            dtype = next(lm.parameters()).dtype
            visible = torch.zeros(visible.shape, dtype=dtype).masked_fill(~visible, torch.finfo(dtype).min)
        starts = [int(o) + len(q) - 1 for o, q in zip(offsets, queries)]
        keep = torch.tensor([s + j for s, a in zip(starts, answers) for j in range(len(a))])
        cache = DynamicCache(ddp_cache_data=list(kv), config=lm.config)
        ids = torch.tensor([sum(seqs, [])], device=device)
        with torch.inference_mode():
            logits = lm(input_ids=ids, attention_mask=visible.to(device), position_ids=(n_prefix + local)[None].to(device),
                        logits_to_keep=keep.to(device), use_cache=True, **{_cache_arg(lm): cache}).logits
        firsts = np.cumsum([0] + [len(a) for a in answers])[:-1]
        return self._answer_logprobs(logits[0], answers, firsts)

    def _packing_agrees(self, lm, prefix_ids, kv, queries, answers, device):
        """Whether packed queries score as padded ones do for this model (checked once per prefix).

        Packing relies on the model honouring a custom 4D attention mask and
        per-token positions; a layer that ignores them (a recurrent or
        linear-attention layer, an attention kernel without custom masks)
        would let queries see each other. Two checks, both exact in any
        precision (a batch's rounding differs from a lone row's by ~0.3 nats
        in bfloat16, so packed and padded batches cannot be compared
        directly): a query packed alone scores as its own padded row, and a
        query's score does not move when the query packed before it is
        replaced by other tokens of the same length. On failure the padded
        path is used from then on, with a warning.
        """
        key = tuple(prefix_ids)
        known = getattr(self, "_packing", None)
        if known is not None and known[0] == key:
            return known[1]
        ok = lm.config._attn_implementation in ("sdpa", "eager")
        if ok:
            n = len(prefix_ids)
            q, a = (list(queries[:2]) * 2)[:2], (list(answers[:2]) * 2)[:2]
            alone = self._forward_packed(lm, n, kv, q[:1], a[:1], device)[0]
            row = self._forward_padded(lm, prefix_ids, q[:1], a[:1], kv, device)[0]
            other = [(t + 1) % lm.config.vocab_size for t in q[0]]
            after = self._forward_packed(lm, n, kv, q, a, device)[1]
            after_other = self._forward_packed(lm, n, kv, [other, q[1]], a, device)[1]
            ok = bool(np.isclose(alone, row, rtol=1e-4, atol=1e-3)
                      and np.isclose(after, after_other, rtol=1e-4, atol=1e-3))
        if not ok:
            warnings.warn(
                f"{type(lm).__name__} does not score packed queries as it scores padded ones (custom 4D "
                "attention masks unsupported); CausalLMScorer falls back to padded batches, which is slower.",
                RuntimeWarning, stacklevel=4,
            )
        self._packing = (key, ok)
        return ok

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_prefix", None)  # tensors of a loaded model: rebuilt on demand
        state.pop("_packing", None)
        return state
