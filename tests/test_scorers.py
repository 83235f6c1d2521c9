import json
import time

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_cap.scorers import (
    CausalLMScorer, EmbeddingScorer, OpenAIScorer, ScoringServerError, Task, build_scorer, humanize_label,
)
from sklearn_cap.scorers.causal_lm import load_causal_lm

from _servers import json_bytes, serve

TEXTS = ["my card has not arrived yet", "i lost my card", "why was i charged a fee for the transfer",
         "top up", "hello", "what exchange rate do you use for foreign payments"]
LABELS = ["card_arrival", "lost_or_stolen_card", "transfer_fee_charged", "top_up_by_apple_pay"]


def _task():
    return Task.from_labels(LABELS)


def test_task_and_humanize():
    task = _task()
    assert task.label_names == ("card arrival", "lost or stolen card", "transfer fee charged", "top up by apple pay")
    assert "- card arrival\n- lost or stolen card" in task.instruction
    assert humanize_label("cardArrival") == "card arrival"
    assert Task.from_labels(LABELS, descriptions={"card_arrival": "new card not received"}).label_names[0] == \
        "new card not received"
    with pytest.raises(ValueError, match="placeholder"):
        Task.from_labels(LABELS, template="no placeholder")
    with pytest.raises(ValueError, match="read the same"):
        Task.from_labels(["card_arrival", "card-arrival"])


def _manual_logprob(folder, ids_prefix, ids_query, ids_answer):
    tok, lm = load_causal_lm(folder)
    ids = torch.tensor([ids_prefix + ids_query + ids_answer])
    with torch.no_grad():
        logp = torch.log_softmax(lm(ids).logits[0], -1)
    start = len(ids_prefix) + len(ids_query)
    return sum(float(logp[start + j - 1, a]) for j, a in enumerate(ids_answer))


@pytest.mark.parametrize("fixture", ["tiny_llm", "tiny_chat_llm"])
def test_prefix_reuse_equals_full_prompts_and_manual(request, fixture):
    folder = request.getfixturevalue(fixture)
    task = _task()
    answers = [task.label_names[i % 4] for i in range(len(TEXTS))]
    fast = CausalLMScorer(folder, batch_size=4).score(TEXTS, answers, task)
    full = CausalLMScorer(folder, batch_size=3, reuse_prefix=False).score(TEXTS, answers, task)
    assert np.all(fast < 0) and np.isfinite(fast).all()
    assert np.allclose(fast, full, atol=1e-4)
    # and both equal one unbatched, unpadded forward pass per prompt
    scorer = CausalLMScorer(folder)
    prefix, queries, ans = scorer.prompt_ids(TEXTS, answers, task)
    manual = [_manual_logprob(folder, prefix, q, a) for q, a in zip(queries, ans)]
    assert np.allclose(fast, manual, atol=1e-4)


def test_packed_queries_score_as_full_prompts(tiny_llm):
    """Queries packed behind one prefix copy (uneven lengths, one pack) equal full prompts, one by one."""
    task = _task()
    texts = TEXTS * 3
    answers = [task.label_names[i % 4] for i in range(len(texts))]
    scorer = CausalLMScorer(tiny_llm, batch_size=len(texts))
    packed = scorer.score(texts, answers, task)
    assert scorer._packing[1] is True  # the packed path ran, not the padded fallback
    full = CausalLMScorer(tiny_llm, batch_size=1, reuse_prefix=False).score(texts, answers, task)
    np.testing.assert_allclose(packed, full, atol=1e-4)


@pytest.mark.parametrize("params", [{}, {"pack": False}, {"reuse_prefix": False}])
def test_scoring_passes_the_cache_under_its_current_name(tiny_llm, params):
    """No path warns that ``past_key_values`` is deprecated (transformers 5 calls it ``cache``)."""
    import warnings

    task = _task()
    answers = [task.label_names[i % 4] for i in range(len(TEXTS))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = CausalLMScorer(tiny_llm, **params).score(TEXTS, answers, task)
    assert np.isfinite(scores).all()
    assert not [str(w.message) for w in caught if "past_key_values" in str(w.message)]


def test_packing_falls_back_where_it_cannot_be_trusted(tiny_llm):
    """An attention kernel the packed path does not know gets padded batches, with a warning, and the same scores."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("sdpa_renamed", sdpa_attention_forward)
    AttentionMaskInterface.register("sdpa_renamed", sdpa_mask)
    task = _task()
    answers = [task.label_names[i % 4] for i in range(len(TEXTS))]
    expected = CausalLMScorer(tiny_llm, reuse_prefix=False).score(TEXTS, answers, task)
    _, lm = load_causal_lm(tiny_llm)
    try:
        lm.config._attn_implementation = "sdpa_renamed"
        scorer = CausalLMScorer(tiny_llm, batch_size=4)
        with pytest.warns(RuntimeWarning, match="falls back to padded batches"):
            got = scorer.score(TEXTS, answers, task)
    finally:
        lm.config._attn_implementation = "sdpa"
        ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.pop("sdpa_renamed", None)
    assert scorer._packing[1] is False
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_packing_holds_in_bfloat16(tiny_llm):
    """bfloat16 rounds a batch differently from a lone row; the packing check must not mistake that for leakage."""
    task = _task()
    answers = [task.label_names[i % 4] for i in range(len(TEXTS))]
    scorer = CausalLMScorer(tiny_llm, dtype="bfloat16", batch_size=4)
    got = scorer.score(TEXTS, answers, task)
    assert scorer._packing[1] is True
    full = CausalLMScorer(tiny_llm, reuse_prefix=False).score(TEXTS, answers, task)
    np.testing.assert_allclose(got, full, atol=0.5)


def test_packing_check_catches_a_kernel_that_ignores_the_mask(tiny_llm):
    """An attention kernel that keeps causality but drops the block-diagonal mask lets packed queries see each
    other: the check must notice, fall back to padded rows, and so still give the full prompts' scores."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    def causal_only(module, query, key, value, attention_mask, **kw):
        q_len, kv_len = query.shape[2], key.shape[2]
        causal = torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)
        return sdpa_attention_forward(module, query, key, value, causal[None, None], **kw)

    task = _task()
    answers = [task.label_names[i % 4] for i in range(len(TEXTS))]
    expected = CausalLMScorer(tiny_llm, reuse_prefix=False).score(TEXTS, answers, task)
    original = ALL_ATTENTION_FUNCTIONS["sdpa"]
    AttentionInterface.register("sdpa", causal_only)
    try:
        scorer = CausalLMScorer(tiny_llm, batch_size=4)
        with pytest.warns(RuntimeWarning, match="falls back to padded batches"):
            got = scorer.score(TEXTS, answers, task)
    finally:
        AttentionInterface.register("sdpa", original)
    assert scorer._packing[1] is False
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_chat_template_is_used(tiny_chat_llm, tiny_llm):
    task = _task()
    s_chat, s_plain = CausalLMScorer(tiny_chat_llm), CausalLMScorer(tiny_llm)
    tok, _ = load_causal_lm(tiny_chat_llm)
    prefix, suffix, lead, chat = s_chat._layout(tok, task)
    assert chat and prefix.startswith("[CLS] user :") and suffix.endswith("assistant : ")
    assert s_chat.identity != CausalLMScorer(tiny_chat_llm, use_chat_template=False).identity
    tok2, _ = load_causal_lm(tiny_llm)
    assert s_plain._layout(tok2, task)[1] == "\nIntent:"


def test_counts_and_clone(tiny_llm):
    task = _task()
    s = CausalLMScorer(tiny_llm, batch_size=2)
    s.score(TEXTS[:3], [task.label_names[0]] * 3, task)
    assert s.n_scored_ == 3
    c = clone(s)
    assert c.get_params() == s.get_params() and not hasattr(c, "n_scored_")
    with pytest.raises(ValueError, match="not in the task's label space"):
        s.score(["x"], ["unknown label"], task)
    with pytest.raises(ValueError, match="1 texts but 2 labels"):
        s.score(["x"], ["card arrival"] * 2, task)


def test_prompt_over_model_limit_is_an_error(tiny_llm):
    task = _task()
    long_text = " ".join(["card"] * 600)
    with pytest.raises(ValueError, match="over the model's limit of 512"):
        CausalLMScorer(tiny_llm).score([long_text], ["card arrival"], task)


def test_build_scorer(tiny_llm):
    assert isinstance(build_scorer("embedding"), EmbeddingScorer)
    assert isinstance(build_scorer(tiny_llm), CausalLMScorer)
    with pytest.raises(TypeError, match="scorer must be"):
        build_scorer(3)


def test_embedding_scorer_is_a_softmax_over_labels(tiny_encoder):
    task = _task()
    s = EmbeddingScorer(tiny_encoder, temperature=0.1)
    per_label = np.stack([s.score(TEXTS, [n] * len(TEXTS), task) for n in task.label_names], axis=1)
    # log-probabilities over the whole label space sum to one
    assert np.allclose(np.exp(per_label).sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(per_label, s.predict_log_proba(TEXTS, task), atol=1e-5)
    # a sharper temperature makes the distribution more peaked
    sharp = EmbeddingScorer(tiny_encoder, temperature=0.01).predict_log_proba(TEXTS, task)
    assert (sharp.max(1) >= per_label.max(1) - 1e-6).all()
    with pytest.raises(ValueError, match="temperature"):
        EmbeddingScorer(tiny_encoder, temperature=0).score(TEXTS[:1], ["card arrival"], task)


# ---- OpenAI-compatible server: a real HTTP server on loopback serving the tiny LLM ----

def _completions_handler(folder, *, omit_logprobs=False, fail_first=0, delay=0.0):
    tok, lm = load_causal_lm(folder)
    state = {"calls": 0}

    def handler(method, path, body):
        state["calls"] += 1
        if path != "/v1/completions":
            return 404, b"{}", 0
        if state["calls"] <= fail_first:
            return 503, b'{"error": "busy"}', 0
        req = json.loads(body)
        assert req["echo"] is True and req["logprobs"] >= 0
        choices = []
        for i, prompt in enumerate(req["prompt"]):
            enc = tok(prompt, return_offsets_mapping=True, add_special_tokens=False)
            ids = enc["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(lm(torch.tensor([ids])).logits[0], -1)
            values = [None] + [float(logp[j - 1, ids[j]]) for j in range(1, len(ids))]
            offsets = [s for s, _ in enc["offset_mapping"]]
            tokens = [prompt[s:e] for s, e in enc["offset_mapping"]]
            # one generated token after the prompt, as a server with max_tokens=1 returns
            tokens.append(" x"); offsets.append(len(prompt)); values.append(-1.0)
            lp = None if omit_logprobs else {"tokens": tokens, "text_offset": offsets, "token_logprobs": values}
            choices.append({"index": i, "text": prompt + " x", "logprobs": lp})
        return 200, json_bytes({"choices": choices[::-1]}), delay

    return handler, state


def test_openai_scorer_matches_local_model(tiny_llm):
    task = _task()
    answers = [task.label_names[i % 4] for i in range(len(TEXTS))]
    handler, state = _completions_handler(tiny_llm)
    with serve(handler) as url:
        scorer = OpenAIScorer(url + "/v1", "tiny", check_echo=False, batch_size=4, max_concurrency=2)
        remote = scorer.score(TEXTS, answers, task)
    assert state["calls"] == 2
    local = CausalLMScorer(tiny_llm, use_chat_template=False).score(TEXTS, answers, task)
    assert np.allclose(remote, local, atol=1e-4)


def test_openai_scorer_retries_then_succeeds(tiny_llm):
    task = _task()
    handler, state = _completions_handler(tiny_llm, fail_first=2)
    with serve(handler) as url:
        scorer = OpenAIScorer(url + "/v1", "tiny", check_echo=False, max_retries=3, backoff=0.01)
        out = scorer.score(TEXTS[:2], ["card arrival"] * 2, task)
    assert state["calls"] == 3 and np.isfinite(out).all()


def test_openai_scorer_server_down():
    with serve(lambda m, p, b: (200, b"", 0)) as url:
        pass  # the port is closed once the server has stopped
    for check_echo in (False, True):  # the echo probe meets a down server with the same error
        t0 = time.perf_counter()
        with pytest.raises(ScoringServerError, match=f"{url}/v1/completions did not answer after 2 attempts"):
            scorer = OpenAIScorer(url + "/v1", "tiny", check_echo=check_echo, max_retries=1, backoff=0.01, timeout=2)
            scorer.score(["hi"], ["card arrival"], _task())
        assert time.perf_counter() - t0 < 10


def test_openai_scorer_slow_server_times_out(tiny_llm):
    handler, _ = _completions_handler(tiny_llm, delay=3.0)
    with serve(handler) as url:
        with pytest.raises(ScoringServerError, match=r"timeout 0.5s"):
            scorer = OpenAIScorer(url + "/v1", "tiny", check_echo=False, max_retries=0, timeout=0.5)
            scorer.score(["hi"], ["card arrival"], _task())


def test_openai_scorer_without_logprobs(tiny_llm):
    handler, _ = _completions_handler(tiny_llm, omit_logprobs=True)
    with serve(handler) as url:
        with pytest.raises(ScoringServerError, match="no prompt log-probabilities"):
            OpenAIScorer(url + "/v1", "tiny", check_echo=False).score(["hi"], ["card arrival"], _task())


def test_openai_scorer_client_error_is_not_retried():
    calls = []

    def handler(m, p, b):
        calls.append(p)
        return 400, b'{"error": "bad model"}', 0

    with serve(handler) as url:
        with pytest.raises(ScoringServerError, match="HTTP 400"):
            scorer = OpenAIScorer(url + "/v1", "nope", check_echo=False, max_retries=3, backoff=0.01)
            scorer.score(["hi"], ["card arrival"], _task())
    assert len(calls) == 1


@pytest.mark.parametrize("per_token, ok", [(-0.01, True), (-14.0, False)])
def test_openai_scorer_checks_the_echo_alignment(per_token, ok):
    """A server whose echoed log-probabilities read one position late fails the probe, loudly."""
    calls = []

    def handler(method, path, body):
        prompts = json.loads(body)["prompt"]
        calls.append(prompts)
        choices = []
        for i, prompt in enumerate(prompts):
            words = prompt.split(" ")
            offsets = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]).tolist()
            values = [None] + [per_token] * (len(words) - 1)
            choices.append({"index": i, "text": prompt, "logprobs": {
                "tokens": [(" " if j else "") + w for j, w in enumerate(words)], "text_offset": offsets,
                "token_logprobs": values}})
        return 200, json_bytes({"choices": choices}), 0

    task = _task()
    with serve(handler) as url:
        scorer = OpenAIScorer(url + "/v1", "m", max_retries=0)
        if ok:
            assert scorer.score(["hi"], ["card arrival"], task)[0] < 0
            scorer.score(["ho"], ["card arrival"], task)
            assert len(calls) == 3  # one probe per task, then the scoring requests
            assert calls[0][0].endswith("14, 15, 16")
        else:
            with pytest.raises(ScoringServerError, match=r"not log P\(token.*#1983"):
                scorer.score(["hi"], ["card arrival"], task)
            assert len(calls) == 1  # nothing was scored
