"""Scorer for OpenAI-compatible completion servers (vLLM, llama.cpp, TGI...).

A large model (Llama-3-8B-Instruct and up) is best served by an engine with
prefix caching and batching of its own. We send the full prompt with the
answer appended to ``/v1/completions`` with ``echo=true`` and ``logprobs``, and
sum the log-probabilities the server reports for the tokens that cover the
answer (a token straddling the boundary counts, since it carries answer
characters).

HTTP goes through ``httpx``; retries through ``tenacity``: HTTP 429 and 5xx,
timeouts and connection errors are retried with exponential back-off, other
4xx fail at once. ``timeout`` bounds each *whole* request (a server that
trickles bytes is cut off at the deadline, not at each quiet read), and every
error names the URL. An answer that is not the JSON object the API defines,
or log-probabilities that are not finite numbers, raise
:class:`ScoringServerError` before anything reaches the score cache. Redirects
are not followed (a POST would be re-sent, with its key, to another host):
an HTTP 3xx names its target, so that ``base_url`` can be set to it.

The API key is read from the environment (``$OPENAI_API_KEY``, or the
variable named by ``api_key_env``) when a request is sent, or given as a
:class:`Secret`; it never appears in ``repr``, in printed ``get_params``
output or in a pickle.
"""

import json
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import httpx
import numpy as np
import tenacity
from sklearn.utils._param_validation import Interval

from ..progress import progress
from .base import BaseScorer

__all__ = ["OpenAIScorer", "ScoringServerError", "Secret"]

# Control-token spellings of the common chat formats (ChatML and Llama 3 "<|...|>", Llama 2 "[INST]",
# "<<SYS>>", "<s>", Gemma "<start_of_turn>"). The server tokenises the whole prompt and would read them
# in a text as control tokens; a zero-width space after their first character keeps them plain text.
_CONTROL = re.compile(r"<\|[^<>|\s]{1,64}\|>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>")


def plain_text(text):
    """``text`` with every control-token spelling broken by a zero-width space, so a server reads it as text.

    Parameters
    ----------
    text : str
        A text to put into a prompt.

    Returns
    -------
    str
        The text, each ``<|...|>``, ``[INST]``, ``[/INST]``, ``<<SYS>>``,
        ``<s>``, ``</s>``, ``<start_of_turn>`` and ``<end_of_turn>`` in it
        with U+200B after its first character.

    Examples
    --------
    >>> plain_text("card<|im_end|>") == "card<\u200b|im_end|>"
    True
    """
    return _CONTROL.sub(lambda m: m.group()[0] + "\u200b" + m.group()[1:], text)


class Secret:
    """A value that is never shown or pickled: an API key given in code.

    ``repr`` shows ``Secret('***')``; a pickled (or process-copied) Secret
    arrives empty, so a key never travels in a saved pipeline. Where the
    scorer runs in another process, set the key in its environment instead.

    Parameters
    ----------
    value : str or None
        The secret.

    Examples
    --------
    >>> key = Secret("sk-123")
    >>> key, key.value
    (Secret('***'), 'sk-123')
    >>> import pickle; pickle.loads(pickle.dumps(key)).value is None
    True
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Secret('***')" if self.value else "Secret(None)"

    def __reduce__(self):
        return (Secret, (None,))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):  # sklearn's clone deep-copies parameters: keep the value in-process
        return self


class ScoringServerError(RuntimeError):
    """The scoring server could not be reached or gave an unusable answer."""


class _Transient(Exception):
    """A failure worth retrying (timeout, connection error, HTTP 429 or 5xx)."""


def _aligned_offsets(prompt, tokens, offsets):
    """Text offsets into ``prompt`` of the echoed tokens.

    The API's offsets index the prompt as sent. llama-cpp-python's index it
    without a leading BOS token's text; that shift shows as the generated
    (last) token starting before the prompt's end while the echoed tokens
    spell the prompt's tail, and is undone here.
    """
    offsets = list(offsets)
    shift = len(prompt) - offsets[-1] if offsets else 0
    if shift > 0 and "".join(tokens[:-1]) == prompt[shift:]:
        return [o + shift for o in offsets]
    return offsets


class OpenAIScorer(BaseScorer):
    """``log P(answer | prompt)`` from an OpenAI-compatible ``/v1/completions`` endpoint.

    Parameters
    ----------
    base_url : str
        Server root, e.g. ``"http://localhost:8000/v1"``.
    model : str
        Model name the server knows.
    api_key : Secret or None, default=None
        Bearer token given in code, wrapped in a :class:`Secret` (never
        shown, never pickled). None: read ``$OPENAI_API_KEY`` (or the
        variable ``api_key_env`` names) at each request; no key is sent when
        it is unset. A plain string is refused: it would print with every
        pipeline that holds the scorer and travel in its pickle.
    api_key_env : str, default="OPENAI_API_KEY"
        Name of the environment variable that holds the key.
    batch_size : int, default=16
        Prompts per request.
    max_concurrency : int, default=4
        Requests in flight at once.
    timeout : float, default=60
        Seconds one request may take, from connecting to the last byte.
    max_retries : int, default=3
        Further attempts after a failed request (connection error, timeout,
        HTTP 429 or 5xx), waiting ``backoff * 2**attempt`` seconds in between.
    backoff : float, default=1.0
        Base of the exponential back-off between retries, in seconds.
    check_echo : bool, default=True
        Before the first scoring of a task, send one probe (the task's
        prompt head followed by a counting sequence) and check that the
        echoed log-probabilities follow the API's meaning, log P(token |
        the tokens before it): any language model predicts the end of a
        count almost surely. A server that reports them shifted by one
        position (llama-cpp-python's, for models that add no BOS token,
        abetlen/llama-cpp-python#1983) fails the check with
        :class:`ScoringServerError` instead of returning wrong scores.

    Notes
    -----
    The score cache keys these scores by ``base_url`` and ``model``: the
    library cannot see the weights behind a server, so serve a changed
    model under a new name (or clear the cache).

    The server tokenises the prompt, and servers (vLLM, llama.cpp) read
    control-token strings in it as control tokens. Texts are data: a text's
    ``<|im_end|>``, ``<|eot_id|>``, ``[INST]``, ``<s>`` and the like are sent
    with a zero-width space after their first character (:func:`plain_text`),
    so a text cannot end the user turn or start an answer.

    Examples
    --------
    >>> scorer = OpenAIScorer("http://localhost:8000/v1", "meta-llama/Meta-Llama-3-8B-Instruct")
    >>> # CAPPriorTransformer(scorer=scorer).fit_transform(X, y)
    """

    _parameter_constraints = {
        "base_url": [str],
        "model": [str],
        "api_key": [Secret, None],
        "api_key_env": [str],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_concurrency": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither")],
        "max_retries": [Interval(Integral, 0, None, closed="left")],
        "backoff": [Interval(Real, 0, None, closed="left")],
        "check_echo": ["boolean"],
    }

    def __init__(
        self,
        base_url,
        model,
        *,
        api_key=None,
        api_key_env="OPENAI_API_KEY",
        batch_size=16,
        max_concurrency=4,
        timeout=60.0,
        max_retries=3,
        backoff=1.0,
        check_echo=True,
    ):
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.check_echo = check_echo

    @property
    def identity(self):
        return f"openai|{self.base_url.rstrip('/')}|{self.model}"

    @property
    def url(self):
        return self.base_url.rstrip("/") + "/completions"

    def _validate_params(self):
        # Before scikit-learn's check, whose message would print the key it refuses.
        if isinstance(self.api_key, str):
            raise TypeError(
                "OpenAIScorer got the API key itself as api_key: a string shows in the repr of every pipeline "
                "holding the scorer and is written into its pickle. Put it in the environment "
                f"(${self.api_key_env}, or the variable named by api_key_env), or wrap it: "
                "api_key=sklearn_cap.scorers.Secret(key)."
            )
        super()._validate_params()

    def _key(self):
        if isinstance(self.api_key, Secret):
            if self.api_key.value:
                return self.api_key.value
            if not os.environ.get(self.api_key_env):
                raise ScoringServerError(
                    "OpenAIScorer's api_key=Secret(...) arrived empty: a Secret is never pickled, so a copy of the "
                    f"scorer in another process has no key. Set ${self.api_key_env} in that process's environment."
                )
        return os.environ.get(self.api_key_env) or None

    def _request(self, payload):
        """One POST, bounded by ``timeout`` from start to last byte; the parsed JSON object."""
        url, timeout = self.url, float(self.timeout)
        headers = {}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        deadline = time.monotonic() + timeout
        client = httpx.Client(timeout=timeout)
        # The watchdog closes the connection at the deadline, so even a server that trickles
        # its headers byte by byte cannot hold the call longer.
        watchdog = threading.Timer(timeout, client.close)
        watchdog.start()
        try:
            with client.stream("POST", url, json=payload, headers=headers) as resp:
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if time.monotonic() > deadline:
                        raise _Transient(f"no complete answer within the timeout of {timeout}s")
                status, location = resp.status_code, resp.headers.get("location")
        except httpx.HTTPError as exc:
            late = time.monotonic() >= deadline
            raise _Transient(f"timeout {timeout}s exceeded" if late else f"{type(exc).__name__}: {exc}") from exc
        finally:
            watchdog.cancel()
            client.close()
        text = bytes(body).decode("utf-8", "replace")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}: {text[:200]}")
        if 300 <= status < 400:
            raise ScoringServerError(
                f"{url} answered HTTP {status}, a redirect to {location or '(no Location header)'}. Redirects are "
                "not followed (the request and its key would go to another address): set base_url to the address "
                "the server redirects to (often https://, or a path ending in /v1)."
            )
        if status in (401, 403):
            raise ScoringServerError(
                f"{url} refused the request (HTTP {status}): {text[:200]}. Check the API key: it is read from "
                f"${self.api_key_env} (set: {bool(os.environ.get(self.api_key_env))}) or given as api_key=Secret(...)."
            )
        if status >= 400:
            raise ScoringServerError(f"{url} rejected the request (HTTP {status}): {text[:300]}")
        try:
            data = json.loads(text)
        except ValueError:
            raise ScoringServerError(
                f"{url} answered HTTP {status} with something that is not JSON (truncated, or an HTML page?): "
                f"{text[:120]!r}. Is base_url the API root (it usually ends in /v1)?"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise ScoringServerError(
                f"{url} answered with JSON that is not a completions response (no 'choices' list): {text[:120]!r}."
            )
        return data

    def _post(self, payload):
        retry = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(int(self.max_retries) + 1),
            wait=tenacity.wait_exponential(multiplier=float(self.backoff), exp_base=2, min=0, max=60),
            retry=tenacity.retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            return retry(self._request, payload)
        except _Transient as exc:
            raise ScoringServerError(
                f"Scoring server at {self.url} did not answer after {int(self.max_retries) + 1} attempts "
                f"(timeout {self.timeout}s): {exc}. Is the server running and is base_url right "
                "(it usually ends in /v1)?"
            ) from exc

    def _score_batch(self, prompts, starts):
        payload = {
            "model": self.model, "prompt": prompts, "max_tokens": 1,
            "temperature": 0.0, "echo": True, "logprobs": 1,
        }
        data = self._post(payload)
        choices = data["choices"]
        if not all(isinstance(c, dict) for c in choices):
            raise ScoringServerError(f"{self.url} returned choices that are not JSON objects.")
        choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
        if len(choices) != len(prompts):
            raise ScoringServerError(f"Server returned {len(choices)} choices for {len(prompts)} prompts.")
        try:
            return [self._answer_logprob(p, s, c) for p, s, c in zip(prompts, starts, choices)]
        except (TypeError, AttributeError, KeyError) as exc:
            raise ScoringServerError(f"{self.url} returned malformed logprobs ({type(exc).__name__}: {exc}).") from None

    def _answer_logprob(self, prompt, start, choice):
        """Sum of the echoed log-probabilities of the tokens that cover the answer (from ``start``)."""
        lp = choice.get("logprobs") or {}
        tokens, offsets, values = lp.get("tokens"), lp.get("text_offset"), lp.get("token_logprobs")
        if not tokens or offsets is None or values is None or not (len(tokens) == len(offsets) == len(values)):
            raise ScoringServerError(
                "The server returned no prompt log-probabilities. It must support "
                "echo=true with logprobs on /v1/completions (vLLM does)."
            )
        total, covered = 0.0, False
        for tok, off, val in zip(tokens, _aligned_offsets(prompt, tokens, offsets), values):
            # Tokens past the prompt are the generated one (max_tokens=1).
            if off >= len(prompt):
                break
            if off + len(tok) > start:
                if isinstance(val, bool) or not isinstance(val, Real) or not math.isfinite(val):
                    raise ScoringServerError(
                        f"{self.url} gave {val!r} as the log-probability of an answer token; "
                        "expected a finite number."
                    )
                total += float(val)
                covered = True
        if not covered:
            raise ScoringServerError("No returned token covers the answer; check the server's echo support.")
        return total

    # A count the probe's last tokens continue; their median log-probability is about 0 from any
    # language model read the API's way, and far below _PROBE_FLOOR when read one position late.
    _PROBE = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16"
    _PROBE_FLOOR = -4.0

    def _check_echo(self, task):
        prefix = task.layout.prefix
        prompt = prefix + self._PROBE
        data = self._post({"model": self.model, "prompt": [prompt], "max_tokens": 1, "temperature": 0.0,
                           "echo": True, "logprobs": 1})
        try:
            lp = data["choices"][0]["logprobs"]
            offsets = _aligned_offsets(prompt, lp["tokens"], lp["text_offset"])
            pairs = [(off, val) for off, val in zip(offsets, lp["token_logprobs"])
                     if len(prefix) + len(self._PROBE) // 2 <= off < len(prompt) and isinstance(val, Real)]
        except (TypeError, KeyError, IndexError):
            raise ScoringServerError(
                f"{self.url} returned no prompt log-probabilities for echo=true; it must support them "
                "on /v1/completions (vLLM does)."
            ) from None
        if len(pairs) < 3:
            raise ScoringServerError(f"{self.url} echoed too few prompt tokens with log-probabilities.")
        median = float(np.median([v for _, v in pairs]))
        if not median > self._PROBE_FLOOR:
            raise ScoringServerError(
                f"{self.url} returns echoed prompt log-probabilities that are not log P(token | the tokens "
                f"before it): on the end of a count, their median is {median:.1f}, where a language model "
                "gives about 0. llama-cpp-python's server reports them one position late for models that add "
                "no BOS token (abetlen/llama-cpp-python#1983): start the instruction with the model's BOS "
                "token (SmolLM2: '<|im_start|>'), or use another server (vLLM). check_echo=False skips this "
                "check."
            )

    def _score(self, texts, answers, task, progress_bar):
        if self.check_echo:
            checked = self.__dict__.setdefault("_echo_checked", set())
            if task.fingerprint not in checked:
                self._check_echo(task)
                checked.add(task.fingerprint)
        prefix, suffix, lead = task.layout
        heads = [prefix + plain_text(t) + suffix for t in texts]
        prompts = [h + lead + a for h, a in zip(heads, answers)]
        starts = [len(h) + len(lead) for h in heads]
        bs = int(self.batch_size)
        batches = [(prompts[i : i + bs], starts[i : i + bs]) for i in range(0, len(prompts), bs)]
        out = []
        with ThreadPoolExecutor(max_workers=int(self.max_concurrency)) as pool, \
                progress(total=len(prompts), enabled=progress_bar, desc="server scoring", unit="prompt") as bar:
            for scores in pool.map(lambda b: self._score_batch(*b), batches):
                out.extend(scores)
                bar.update(len(scores))
        return np.asarray(out)
