"""The embedded SmolLM2 behind llama-cpp-python's OpenAI-compatible server, on loopback.

Used by ``tests/test_real_server.py`` and ``benchmarks/bench_server.py``::

    with llama_server() as base_url:  # "http://127.0.0.1:<port>/v1"
        OpenAIScorer(base_url, "smollm2", ...)
"""

import contextlib
import socket
import subprocess
import sys
import time

import httpx

from sklearn_cap import embedded

MODEL_ALIAS = "smollm2"


class ServerCrashed(RuntimeError):
    """The server died from a signal: a llama.cpp build problem (native CPU flags), not the caller's."""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _crash_check(proc, when):
    if proc.poll() is None:
        return
    log = proc.stdout.read()[-2000:] if proc.stdout else ""
    if proc.returncode < 0:
        raise ServerCrashed(f"llama_cpp.server crashed {when} (signal {-proc.returncode}); a build with native CPU "
                            "flags does that on AVX-512/AMX CPUs: rebuild it with -DGGML_NATIVE=OFF")
    raise RuntimeError(f"llama_cpp.server exited {when} with code {proc.returncode}:\n{log}")


@contextlib.contextmanager
def llama_server(n_threads=2, n_ctx=1024, timeout=180):
    """Start the server, wait until it has answered one completion, yield its base URL, stop it.

    Raises
    ------
    ServerCrashed
        The process died from a signal (while starting or on its first evaluation).
    RuntimeError
        It exited with an error, or did not answer within ``timeout`` seconds.
    """
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", embedded.LLM, "--model_alias", MODEL_ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--logits_all", "true",
           "--n_threads", str(n_threads), "--verbose", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    try:
        while True:
            _crash_check(proc, "while starting")
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer within {timeout} s")
            time.sleep(0.5)
        # One evaluation: a wheel built with native CPU flags dies here on AVX-512/AMX CPUs.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(base + "/completions", json={"model": MODEL_ALIAS, "prompt": "Hello", "max_tokens": 1},
                       timeout=120)
        _crash_check(proc, "on its first evaluation")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
