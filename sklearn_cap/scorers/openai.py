"""Scorer for OpenAI-compatible completion servers (vLLM, llama.cpp, TGI...).

A large model (Llama-3-8B-Instruct and up) is best served by an engine with
prefix caching and batching of its own. We send the full prompt with the
answer appended to ``/v1/completions`` with ``echo=true`` and ``logprobs``, and
sum the log-probabilities the server reports for the tokens that cover the
answer (a token straddling the boundary counts, since it carries answer
characters). Requests are batched, run with bounded concurrency, time out,
and are retried with exponential back-off; an unreachable server or one that
returns no prompt log-probabilities raises an error that says so.
"""

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from .base import BaseScorer

__all__ = ["OpenAIScorer", "ScoringServerError"]


class ScoringServerError(RuntimeError):
    """The scoring server could not be reached or gave an unusable answer."""


class OpenAIScorer(BaseScorer):
    """``log P(answer | prompt)`` from an OpenAI-compatible ``/v1/completions`` endpoint.

    Parameters
    ----------
    base_url : str
        Server root, e.g. ``"http://localhost:8000/v1"``.
    model : str
        Model name the server knows.
    api_key : str, default=None
        Bearer token; defaults to ``$OPENAI_API_KEY`` when set.
    batch_size : int, default=16
        Prompts per request.
    max_concurrency : int, default=4
        Requests in flight at once.
    timeout : float, default=60
        Seconds to wait for one response.
    max_retries : int, default=3
        Further attempts after a failed request (connection error, timeout,
        HTTP 429 or 5xx), waiting ``backoff * 2**attempt`` seconds in between.
    backoff : float, default=1.0

    Examples
    --------
    >>> scorer = OpenAIScorer("http://localhost:8000/v1", "meta-llama/Meta-Llama-3-8B-Instruct")
    >>> # CAPPriorTransformer(scorer=scorer).fit_transform(X, y)
    """

    def __init__(
        self,
        base_url,
        model,
        *,
        api_key=None,
        batch_size=16,
        max_concurrency=4,
        timeout=60.0,
        max_retries=3,
        backoff=1.0,
    ):
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff

    @property
    def identity(self):
        return f"openai|{self.base_url.rstrip('/')}|{self.model}"

    @staticmethod
    def layout(task):
        """(prefix, suffix, answer_lead): the prompt is ``prefix + text + suffix + lead + answer``."""
        return f"{task.instruction}\n\nMessage: ", "\nIntent:", " "

    def _post(self, payload):
        url = self.base_url.rstrip("/") + "/completions"
        headers = {"Content-Type": "application/json"}
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps(payload).encode("utf-8")
        last = None
        for attempt in range(int(self.max_retries) + 1):
            if attempt:
                time.sleep(float(self.backoff) * 2 ** (attempt - 1))
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=float(self.timeout)) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code != 429 and exc.code < 500:
                    detail = exc.read().decode("utf-8", "replace")[:300]
                    raise ScoringServerError(f"{url} rejected the request (HTTP {exc.code}): {detail}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = exc
        raise ScoringServerError(
            f"Scoring server at {url} did not answer after {int(self.max_retries) + 1} "
            f"attempts (timeout {self.timeout}s): {last}. Is the server running and "
            "is base_url right (it usually ends in /v1)?"
        ) from last

    def _score_batch(self, prompts, starts):
        payload = {
            "model": self.model, "prompt": prompts, "max_tokens": 1,
            "temperature": 0.0, "echo": True, "logprobs": 1,
        }
        data = self._post(payload)
        choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise ScoringServerError(f"Server returned {len(choices)} choices for {len(prompts)} prompts.")
        out = []
        for prompt, start, choice in zip(prompts, starts, choices):
            lp = choice.get("logprobs") or {}
            tokens, offsets, values = lp.get("tokens"), lp.get("text_offset"), lp.get("token_logprobs")
            if not tokens or offsets is None or values is None:
                raise ScoringServerError(
                    "The server returned no prompt log-probabilities. It must support "
                    "echo=true with logprobs on /v1/completions (vLLM does)."
                )
            total, covered = 0.0, False
            for tok, off, val in zip(tokens, offsets, values):
                # Tokens past the prompt are the generated one (max_tokens=1).
                if off >= len(prompt):
                    break
                if off + len(tok) > start:
                    if val is None:
                        raise ScoringServerError("The server gave no log-probability for an answer token.")
                    total += float(val)
                    covered = True
            if not covered:
                raise ScoringServerError("No returned token covers the answer; check the server's echo support.")
            out.append(total)
        return out

    def _score(self, texts, answers, task, progress_bar):
        prefix, suffix, lead = self.layout(task)
        heads = [prefix + t + suffix for t in texts]
        prompts = [h + lead + a for h, a in zip(heads, answers)]
        starts = [len(h) + len(lead) for h in heads]
        bs = int(self.batch_size)
        batches = [(prompts[i : i + bs], starts[i : i + bs]) for i in range(0, len(prompts), bs)]
        out = []
        with ThreadPoolExecutor(max_workers=max(1, int(self.max_concurrency))) as pool, \
                tqdm(total=len(prompts), disable=not progress_bar, desc="server scoring", unit="prompt") as bar:
            for scores in pool.map(lambda b: self._score_batch(*b), batches):
                out.extend(scores)
                bar.update(len(scores))
        return np.asarray(out)
