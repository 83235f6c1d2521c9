"""Loading Hugging Face models: where a model comes from, the device, the registry, fingerprints.

- :func:`check_model_source` turns ``model`` (hub id, folder or ``.gguf``
  file) into something loadable, or fails at once with a message that names
  it: a missing folder, ``None`` or an unreachable hub never end in a minute of
  download retries.
- :func:`resolve_device` is called once per ``fit``.
- :data:`model_registry` memoises loaded scorer models per process;
  ``model_registry.clear()`` frees them.
- :func:`model_fingerprint` identifies the weights behind a source, so the
  score cache never serves scores of a model that was overwritten in place.
"""

import contextlib
import functools
import hashlib
import json
import os
import re
import socket
import threading
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch

__all__ = [
    "quiet_transformers",
    "resolve_device",
    "resolve_dtype",
    "check_model_source",
    "model_fingerprint",
    "ModelRegistry",
    "model_registry",
]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
_PROBE = {}


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings and weight-loading bars for the duration.

    Loading a checkpoint prints a bar per call and, for a new classification
    head, a warning that the head is untrained: both are expected here. The
    GGUF loader's de-quantising bar ignores transformers' own switch (it
    calls ``tqdm`` directly), so it is turned off here too: loading never
    draws a bar, whatever ``progress_bar`` says.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    _silence_gguf_bar(+1)
    try:
        yield
    finally:
        _silence_gguf_bar(-1)
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


_GGUF_BAR = {"depth": 0, "tqdm": None}
_GGUF_LOCK = threading.Lock()


def _silence_gguf_bar(step):
    """Swap the GGUF loader's ``tqdm`` for a disabled one while any load is in progress (nested, threads)."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf
    except ImportError:  # a transformers without GGUF support draws no such bar
        return
    with _GGUF_LOCK:
        if step > 0 and _GGUF_BAR["depth"] == 0:
            _GGUF_BAR["tqdm"] = gguf.tqdm
            gguf.tqdm = functools.partial(gguf.tqdm, disable=True)
        _GGUF_BAR["depth"] += step
        if step < 0 and _GGUF_BAR["depth"] == 0:
            gguf.tqdm = _GGUF_BAR["tqdm"]


def resolve_device(device):
    """``"auto"`` -> CUDA when a GPU is visible, else the CPU; a GPU asked for but absent -> CPU, with a warning.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r} ({exc}).") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device={device!r} but no GPU is visible; using the CPU.", stacklevel=3)
        return torch.device("cpu")
    return dev


def resolve_dtype(dtype, device):
    """None/"auto": float32 on a CPU, bfloat16 (or float16) on CUDA; a name or torch dtype as given."""
    device = torch.device(device)
    if dtype in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype must be None, 'auto', a torch dtype or its name ('float32'); got {dtype!r}.")
    return resolved


def _looks_like_path(model):
    return (os.path.isabs(model) or model.startswith((".", "~")) or model.endswith(".gguf")
            or model.count("/") > 1 or os.sep in model and not _HUB_ID.match(model))


def _hub_cached(repo_id):
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed id or an old huggingface_hub: treat as not cached
        return None
    return found if isinstance(found, str) else None


def _hub_reachable(timeout=3.0):
    """Whether the model hub's host accepts a TCP connection (memoised per process)."""
    from huggingface_hub import constants

    if getattr(constants, "HF_HUB_OFFLINE", False):
        return False
    url = urlparse(constants.ENDPOINT)
    key = (url.hostname, url.port)
    if key not in _PROBE:
        try:
            with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                          timeout=timeout):
                _PROBE[key] = True
        except OSError:
            _PROBE[key] = False
    return _PROBE[key]


def check_model_source(model, *, what="model", gguf=False):
    """Check that ``model`` can be loaded, before any download is attempted.

    Parameters
    ----------
    model : str or path-like
        A local folder, a ``.gguf`` file, or a hub id (``"roberta-base"``,
        ``"org/name"``).
    what : str
        The parameter's name, for the message.
    gguf : bool, default=False
        Whether a ``.gguf`` file is accepted. transformers loads GGUF files
        as causal LMs only (the CAP scorer); an encoder (the classifier, the
        embedding scorer) needs a folder with ``config.json``.

    Returns
    -------
    str
        The source as a string (``~`` expanded for local paths).

    Raises
    ------
    TypeError
        ``model`` is None or not a string or path.
    FileNotFoundError
        A path that does not exist, a string that is neither a path nor a
        hub id, or a folder without ``config.json`` (a README-only download,
        a folder holding a ``.gguf`` file).
    ValueError
        A ``.gguf`` file where ``gguf=False``.
    OSError
        A hub id that is not in the local Hugging Face cache while the hub
        cannot be reached (offline mode or no network).

    Examples
    --------
    >>> from sklearn_cap import embedded
    >>> check_model_source(embedded.ENCODER) == embedded.ENCODER
    True
    >>> check_model_source(embedded.LLM, what="scorer", gguf=True) == embedded.LLM
    True
    """
    if model is None or not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"{what} must be a hub id, a local folder or a .gguf file (for example "
            f"sklearn_cap.embedded.ENCODER); got {model!r}."
        )
    model = os.fspath(model)
    local = Path(model).expanduser()
    if local.exists():
        _check_local(local, model, what, gguf)
        return str(local)
    if _looks_like_path(model) or not _HUB_ID.match(model):
        raise FileNotFoundError(
            f"{what}={model!r} is not an existing folder or file, and not a hub id. Check the path "
            "(a .gguf file or a folder with config.json), or give a hub id such as 'roberta-base'."
        )
    if _hub_cached(model) is None and not _hub_reachable():
        raise OSError(
            f"{what}={model!r} is not a local folder, is not in the Hugging Face cache, and the model hub "
            "cannot be reached (offline, or HF_HUB_OFFLINE is set). Download it where there is a network "
            "and pass its folder, or use an embedded model (sklearn_cap.embedded.ENCODER / LLM)."
        )
    return model


def _check_local(local, model, what, gguf):
    """A local model is a folder with config.json, or (where accepted) a .gguf file."""
    if local.is_file():
        if local.suffix != ".gguf":
            raise FileNotFoundError(
                f"{what}={model!r} is a file, not a model: pass the folder that holds config.json and the "
                "weights" + (", or a .gguf file." if gguf else ".")
            )
        if not gguf:
            raise ValueError(
                f"{what}={model!r} is a GGUF file: transformers reads GGUF as a causal LM only, which scores "
                "CAP priors (CausalLMScorer) but cannot be this encoder. Pass an encoder's folder (config.json "
                "and weights) or hub id, e.g. sklearn_cap.embedded.ENCODER or 'roberta-base'."
            )
        return
    if not (local / "config.json").is_file():
        held = sorted(p.name for p in local.iterdir())
        ggufs = [n for n in held if n.endswith(".gguf")]
        hint = (f" It holds {ggufs[0]!r}: pass that file's path instead." if ggufs and gguf else
                " Download the whole model (config, tokenizer and weight files), not only its README.")
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "") if held else "nothing"
        raise FileNotFoundError(
            f"{what}={model!r} is a folder without config.json (it holds {shown}), so transformers "
            f"cannot load a model from it.{hint}"
        )


# Digests of whole files, by what identifies a file's version without reading it. A file rewritten in
# place changes its size or mtime_ns, and one replaced by another (os.replace, a fresh download) its
# inode, so each version is read once per process; the on-disk memo makes that once per machine.
_DIGESTS = {}
_DIGESTS_LOCK = threading.Lock()
_MEMO_FILE = "file_digests.json"
_MEMO_MIN_BYTES = 1 << 24  # smaller files hash in milliseconds: not worth a write to the memo


def _stat_key(path):
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _memo_path():
    from .cache import get_cache_dir  # the score cache's folder: $SKLEARN_CAP_CACHE or ~/.cache/sklearn_cap

    return get_cache_dir() / _MEMO_FILE


def _read_memo():
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_memo(entries):
    """Add entries to the on-disk memo; best effort (a read-only home only costs a re-read next time)."""
    path = _memo_path()
    try:
        memo = _read_memo()
        memo.update(entries)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, path)
    except OSError:
        pass


def _file_digest(path, memo):
    """SHA-256 of a file's whole content, streamed; remembered per (path, size, mtime_ns, inode)."""
    key = _stat_key(path)
    with _DIGESTS_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key], False
    flat = "|".join(map(str, key))
    if flat in memo:
        digest, new = memo[flat], False
    else:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest, new = h.hexdigest(), key[1] >= _MEMO_MIN_BYTES
        if _stat_key(path) != key:  # written while we read it: do not remember a digest of a torn file
            return digest, False
    with _DIGESTS_LOCK:
        _DIGESTS[key] = digest
    return digest, new


def _model_files(root):
    """Every file under ``root``, subfolders included, as sorted (relative name, path); symlinks followed."""
    out, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            if path.is_file():
                out.append((path.relative_to(root).as_posix(), path))
    return sorted(out)


def model_fingerprint(model):
    """A short digest that changes when the weights, config or tokenizer behind ``model`` change.

    A local source is read whole: every file of the folder, subfolders
    included (a sentence-transformers ``1_Pooling/``), by a streamed SHA-256
    of its content, so a change anywhere in a weights file gives a new
    fingerprint. Each file's digest is remembered per (path, size,
    ``mtime_ns``, inode), in the process and, for files of 16 MiB or more,
    in ``file_digests.json`` of the default cache folder
    (:func:`~sklearn_cap.cache.get_cache_dir`: ``$SKLEARN_CAP_CACHE`` or
    ``~/.cache/sklearn_cap``), so a model is read once, not at every ``fit``
    or in every worker.
    A hub id gives the commit of its cached snapshot, or the id itself when
    it is not cached yet.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> a = model_fingerprint(d); _ = (d / "config.json").write_text('{"x": 1}')
    >>> a == model_fingerprint(d)
    False
    """
    local = Path(os.fspath(model)).expanduser()
    if not local.exists():
        cached = _hub_cached(str(model))
        if cached is not None:  # .../snapshots/<commit>/config.json
            return "hub:" + Path(cached).parent.name[:16]
        return "hub:" + str(model)
    h = hashlib.sha256()
    files = [(local.name, local)] if local.is_file() else _model_files(local)
    memo, fresh = None, {}
    for name, path in files:
        if memo is None and _stat_key(path) not in _DIGESTS:
            memo = _read_memo()  # read lazily: a warm process never touches the file
        digest, new = _file_digest(path, memo or {})
        if new:
            fresh["|".join(map(str, _stat_key(path)))] = digest
        h.update(f"{name}\x00{digest}\x00".encode())
    if fresh:
        _write_memo(fresh)
    return h.hexdigest()[:16]


class ModelRegistry:
    """Loaded models shared within a process, keyed by what determines them.

    Scorers load their model on first use and keep it here, so many scorer
    objects (clones in a grid search, pickled copies) share one copy in
    memory. :meth:`clear` frees them all; the next use loads again.

    Examples
    --------
    >>> from sklearn_cap.loading import model_registry
    >>> model_registry.clear()
    >>> len(model_registry)
    0
    """

    def __init__(self):
        self._items = {}
        self._lock = threading.Lock()

    def get(self, key, load):
        """The object stored under ``key``, created by ``load()`` the first time."""
        with self._lock:
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]

    def clear(self):
        """Drop every loaded model (and free GPU memory they held)."""
        with self._lock:
            self._items.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return f"ModelRegistry({len(self)} loaded: {sorted(str(k[1]) for k in self._items)})"


model_registry = ModelRegistry()
