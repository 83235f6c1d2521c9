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
import hashlib
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
    head, a warning that the head is untrained: both are expected here.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


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


def check_model_source(model, *, what="model"):
    """Check that ``model`` can be loaded, before any download is attempted.

    Parameters
    ----------
    model : str or path-like
        A local folder, a ``.gguf`` file, or a hub id (``"roberta-base"``,
        ``"org/name"``).
    what : str
        The parameter's name, for the message.

    Returns
    -------
    str
        The source as a string (``~`` expanded for local paths).

    Raises
    ------
    TypeError
        ``model`` is None or not a string or path.
    FileNotFoundError
        A path that does not exist, or a string that is neither a path nor a
        hub id.
    OSError
        A hub id that is not in the local Hugging Face cache while the hub
        cannot be reached (offline mode or no network).
    """
    if model is None or not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"{what} must be a hub id, a local folder or a .gguf file (for example "
            f"sklearn_cap.embedded.ENCODER); got {model!r}."
        )
    model = os.fspath(model)
    local = Path(model).expanduser()
    if local.exists():
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


def _file_digest(path, h, chunk=1 << 20):
    """Add a file's size and its first and last MiB to hash ``h`` (cheap, and changes with the weights)."""
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > 2 * chunk:
            f.seek(size - chunk)
            h.update(f.read(chunk))
        elif size > chunk:
            h.update(f.read())


def model_fingerprint(model):
    """A short digest that changes when the weights, config or tokenizer behind ``model`` change.

    Local sources are read (each top-level file's size plus its first and last
    MiB: a few milliseconds even for large weights); a hub id gives the commit
    of its cached snapshot, or the id itself when it is not cached yet.

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
    files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.is_file())
    for p in files:
        _file_digest(p, h)
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
