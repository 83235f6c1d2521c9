"""A fitted classifier as a folder: safetensors weights, the tokenizer, ``config.json`` and a model card.

:func:`save_pretrained` writes, and :func:`load_pretrained` reads back, a
folder that holds no pickle: the weights are a safetensors file (a JSON
header and raw tensor bytes, which cannot run code when read), the
tokenizer is ``tokenizer.json`` and the rest is JSON. With the model's own
head (``pooling="cls"``) the folder is also a Hugging Face model folder that
``transformers.pipeline("text-classification", model=folder)`` loads.

Loading checks the folder before it builds anything: a pickle-format file
anywhere in it (``pytorch_model.bin``, ``*.pt``, ``*.pkl`` ...) or a weights
file that is not safetensors is refused, as is a ``config.json`` whose
classes, ``id2label`` and head size disagree.

Parameters that are not JSON values (callbacks, stages, an optimizer
callable, a ``RandomState``, an attribution object of a class outside this
library) are written by ``repr`` for the record and are *not* restored:
the loaded estimator gets their defaults, with a warning naming each one.
They only shape training, except a custom attribution method, which is the
default method of :meth:`~sklearn_cap.ExplanationGuidedClassifier.explain`:
pass it to ``explain(method=...)`` after loading.
"""

import datetime
import json
import platform
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "save_pretrained", "load_pretrained", "check_folder"]

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
# Suffixes of formats that are (or usually wrap) Python pickles, which run code when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
_VERSIONED = ("sklearn-cap", "torch", "transformers", "tokenizers", "safetensors", "scikit-learn", "numpy")


class UnsafeFolderError(ValueError):
    """A saved folder that holds a pickle, or weights that are not safetensors: refused, nothing was run."""


# -- parameters as JSON -------------------------------------------------------
def _json_value(value):
    """``value`` as a JSON value that reads back equal, or raise TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if hasattr(value, "__fspath__"):
        value = str(value)
    if type(value).__module__ == "torch" and type(value).__name__ == "device":
        value = str(value)
    text = json.dumps(value, allow_nan=False)
    if json.loads(text) != value:
        raise TypeError(f"{value!r} does not read back from JSON as itself")
    return value


def _attribution_entry(value):
    from .attribution import ATTRIBUTIONS

    # Only the library's own classes are rebuilt on loading: a class name read from a file picks one of
    # these, never an arbitrary import.
    if type(value) in ATTRIBUTIONS.values():
        return {"attribution_class": type(value).__name__,
                "params": {k: _json_value(v) for k, v in value.get_params(deep=False).items()}}
    raise TypeError(f"{type(value).__name__} is not one of the library's attribution classes")


def split_params(estimator):
    """The estimator's parameters as ``(JSON-able dict, {name: repr} of the rest)``.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier

    Returns
    -------
    params : dict
        Parameters that read back from JSON as themselves; a library
        attribution object as ``{"attribution_class", "params"}``.
    dropped : dict of str -> str
        The ``repr`` of each parameter that is not restored on loading.
    """
    from .attribution import AttributionMethod

    params, dropped = {}, {}
    for name, value in estimator.get_params(deep=False).items():
        try:
            params[name] = _attribution_entry(value) if isinstance(value, AttributionMethod) else _json_value(value)
        except (TypeError, ValueError):
            dropped[name] = repr(value)
    return params, dropped


def _restore_param(name, value):
    from .attribution import ATTRIBUTIONS

    if isinstance(value, dict) and "attribution_class" in value:
        by_name = {c.__name__: c for c in ATTRIBUTIONS.values()}
        if value["attribution_class"] not in by_name:
            raise ValueError(f"config.json names attribution class {value['attribution_class']!r}, which is not one "
                             f"of {sorted(by_name)}; fix or remove the 'attribution' parameter in config.json.")
        return by_name[value["attribution_class"]](**value.get("params", {}))
    return value


def describe(obj, depth=0):
    """A JSON description of ``obj`` for the record (estimators by class and parameters, the rest by repr).

    Parameters
    ----------
    obj : object
        A prior transformer, a list of them, a dict or a plain value.
    depth : int, default=0
        Nesting level (deeper than 4 levels is written by ``repr``).

    Returns
    -------
    JSON value
        Never read back as objects: a description, not a serialisation.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> describe(StandardScaler(with_mean=False))["class"]
    'StandardScaler'
    """
    if hasattr(obj, "get_params") and depth < 4:
        return {"class": type(obj).__name__, "module": type(obj).__module__,
                "params": {k: describe(v, depth + 1) for k, v in obj.get_params(deep=False).items()}}
    if isinstance(obj, (list, tuple)) and depth < 4:
        return [describe(v, depth + 1) for v in obj]
    if isinstance(obj, dict) and depth < 4:
        return {str(k): describe(v, depth + 1) for k, v in obj.items()}
    try:
        return _json_value(obj)
    except (TypeError, ValueError):
        return repr(obj)


def _versions():
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# -- saving -------------------------------------------------------------------
def _final_classifier(estimator):
    """The classifier and the steps before it when ``estimator`` is a Pipeline."""
    from sklearn.pipeline import Pipeline

    from .classifier import ExplanationGuidedClassifier

    before = []
    if isinstance(estimator, Pipeline):
        before = [step for _, step in estimator.steps[:-1] if step not in (None, "passthrough")]
        estimator = estimator.steps[-1][1]
    if not isinstance(estimator, ExplanationGuidedClassifier):
        raise TypeError(f"save_pretrained needs a fitted ExplanationGuidedClassifier or a Pipeline ending in one, "
                        f"got {type(estimator).__name__}.")
    return estimator, before


def save_pretrained(estimator, path, *, metrics=None, priors=None, dataset=None):
    """Write a fitted classifier to a folder: weights, tokenizer, ``config.json`` and ``README.md``.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier or Pipeline
        Fitted; a Pipeline ending in the classifier saves the classifier
        and records the steps before it (the prior transformers) as
        ``priors`` unless ``priors`` is given.
    path : str or path-like
        Folder to write (created; files of the same names are overwritten).
    metrics : dict of str -> float, default=None
        Scores to state in the model card and ``config.json`` (for
        example ``{"accuracy (BANKING77 test)": 0.81}``).
    priors : estimator, list or str, default=None
        The prior transformers the training priors came from (or a
        description): their class and settings go into the card. The
        classifier sees only the prior values, so it cannot tell them.
    dataset : str, default=None
        What the texts were, e.g. ``"BANKING77 train, 5 per class, seed 0"``.

    Returns
    -------
    path : pathlib.Path
        The folder written.

    Examples
    --------
    >>> clf.save_pretrained("my_model", metrics={"accuracy": 0.9})  # doctest: +SKIP
    PosixPath('my_model')
    """
    import safetensors.torch
    from sklearn.utils.validation import check_is_fitted

    clf, before = _final_classifier(estimator)
    check_is_fitted(clf, "model_")
    if priors is None and before:
        priors = before
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    stale = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if stale:
        raise UnsafeFolderError(f"{path} already holds {stale}, pickle-format files that from_pretrained refuses; "
                                "save into an empty folder.")
    classes = []
    for c in clf.classes_.tolist():
        try:
            classes.append(_json_value(c))
        except (TypeError, ValueError):
            raise TypeError(f"class label {c!r} is not a JSON value (str, int, float or bool), so it cannot be saved; "
                            "fit on string or integer labels.") from None
    if metrics is not None:
        metrics = {str(k): _json_value(float(v) if isinstance(v, (int, float, np.number)) else v)
                   for k, v in dict(metrics).items()}
    params, dropped = split_params(clf)
    counts = getattr(clf, "class_counts_", None)
    model = clf.model_
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__] if clf.pooling_ == "cls" else [type(model.encoder).__name__]
    config["id2label"] = {str(i): str(c) for i, c in enumerate(classes)}
    config["label2id"] = {str(c): i for i, c in enumerate(classes)}
    config["sklearn_cap"] = {
        "format_version": FORMAT_VERSION,
        "estimator": type(clf).__name__,
        "classes": classes,
        "classes_dtype": clf.classes_.dtype.str if clf.classes_.dtype != object else "object",
        "pooling": clf.pooling_,
        "max_length": int(clf.max_length),
        "head_options": clf._head_options(),
        "params": params,
        "params_not_saved": dropped,
        "class_counts": None if counts is None else [int(n) for n in counts],
        "history": describe(getattr(clf, "history_", [])),
        "n_epochs": int(getattr(clf, "n_epochs_", 0)),
        "n_train_steps": int(getattr(clf, "n_train_steps_", 0)),
        "priors": describe(priors),
        "dataset": dataset,
        "metrics": metrics,
        "versions": _versions(),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    safetensors.torch.save_model(model.to("cpu"), str(path / WEIGHTS), metadata={"format": "pt"})
    model.to(clf.device_)
    clf.tokenizer_.save_pretrained(path)
    (path / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / "README.md").write_text(model_card(config))
    return path


def _table(rows):
    return "\n".join(f"| {a} | {b} |" for a, b in rows)


def model_card(config):
    """The README.md of a saved folder: what the model is, what it was trained on, and how to load it.

    Parameters
    ----------
    config : dict
        The folder's ``config.json`` content.

    Returns
    -------
    str
        Markdown with a YAML header (library, pipeline tag).
    """
    meta = config["sklearn_cap"]
    p = meta["params"]
    classes, counts = meta["classes"], meta["class_counts"]
    n_texts = "unknown" if counts is None else str(sum(counts))
    pooling = meta["pooling"]
    lines = ["---", "library_name: sklearn-cap", "pipeline_tag: text-classification",
             "tags:", "- sklearn-cap", "- text-classification", "- explanation-guided-training", "---", "",
             f"# {meta['estimator']} ({len(classes)} classes)", "",
             "An encoder fine-tuned with cross-entropy plus `beta` times an attribution loss that pulls its "
             "word attributions towards attribution priors (sklearn-cap). Weights are safetensors; the folder "
             "holds no pickle.", "", "## Training data", "",
             f"- texts: {n_texts}", f"- classes: {len(classes)}"]
    if meta.get("dataset"):
        lines.append(f"- data set: {meta['dataset']}")
    lines += ["", "| class | training texts |", "| --- | --- |"]
    lines.append(_table((c, "?" if counts is None else counts[i]) for i, c in enumerate(classes)))
    lines += ["", "## Priors", ""]
    if float(p.get("beta", 0) or 0) == 0:
        lines.append("None: `beta=0`, plain cross-entropy.")
    elif meta.get("priors") is None:
        lines.append("Trained with prior values whose source was not recorded (pass `priors=` to `save_pretrained`).")
    else:
        lines += ["```json", json.dumps(meta["priors"], indent=2, sort_keys=True), "```"]
    lines += ["", "## Training settings", "", "| setting | value |", "| --- | --- |",
              _table((k, f"`{p[k]!r}`" if not isinstance(p[k], str) else f"`{p[k]}`") for k in sorted(p)),
              f"| pooling (resolved) | `{pooling}` |"]
    if meta["params_not_saved"]:
        lines += ["", "Not restored on loading (not JSON values; the loaded estimator has their defaults):", ""]
        lines += [f"- `{k}`: `{v}`" for k, v in sorted(meta["params_not_saved"].items())]
    lines += ["", "## Metrics", ""]
    if meta.get("metrics"):
        lines += ["| metric | value |", "| --- | --- |", _table(sorted(meta["metrics"].items()))]
    else:
        lines.append("None given.")
    lines += ["", "## Versions", "", "| package | version |", "| --- | --- |",
              _table(sorted(meta["versions"].items())), "", "## Loading", "", "```python",
              "from sklearn_cap import ExplanationGuidedClassifier",
              'clf = ExplanationGuidedClassifier.from_pretrained("path/to/this/folder")', "```"]
    if pooling == "cls":
        lines += ["", "Without sklearn-cap (the model's own head):", "", "```python", "from transformers import pipeline",
                  'pipe = pipeline("text-classification", model="path/to/this/folder")', "```"]
    lines += ["", "Saved at " + meta["saved_at"] + ".", ""]
    return "\n".join(lines)


# -- loading ------------------------------------------------------------------
def _safetensors_header(file):
    """The tensor names and shapes of a safetensors file, read without loading it; refuses other formats."""
    with open(file, "rb") as fh:
        head = fh.read(8)
        if head.startswith(_PICKLE_MAGIC):
            raise UnsafeFolderError(
                f"{file} is a pickle or zip (torch.save) file, not safetensors. It was not loaded: such files "
                "run code when read. Re-save the model with save_pretrained from a trusted copy."
            )
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        total = Path(file).stat().st_size
        if size <= 0 or size > total - 8 or size > 100_000_000:
            raise UnsafeFolderError(f"{file} is not a safetensors file (bad header). Re-save the model with "
                                    "save_pretrained from a trusted copy.")
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            raise UnsafeFolderError(f"{file} is not a safetensors file (its header is not JSON).") from None
    header.pop("__metadata__", None)
    return {k: tuple(v["shape"]) for k, v in header.items()}


def check_folder(path):
    """Check a saved folder without running anything from it; return its ``config.json``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    config : dict
        The parsed ``config.json``, its ``sklearn_cap`` section checked.

    Raises
    ------
    UnsafeFolderError
        A pickle-format file in the folder, or weights that are not safetensors.
    ValueError
        A config that is not a sklearn-cap one, or whose classes,
        ``id2label`` and weights disagree.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; pass the folder save_pretrained wrote.")
    pickles = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeFolderError(
            f"{path} holds {pickles}: pickle-format files, which can run arbitrary code when loaded. Nothing was "
            "loaded. A folder from save_pretrained has none; remove them only if you know where they came from."
        )
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path} has no {WEIGHTS}; is it a folder written by save_pretrained?")
    try:
        config = json.loads((path / CONFIG).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} has no {CONFIG}; is it a folder written by save_pretrained?") from None
    except ValueError as e:
        raise ValueError(f"{path / CONFIG} is not valid JSON ({e}).") from None
    meta = config.get("sklearn_cap") if isinstance(config, dict) else None
    if not isinstance(meta, dict):
        raise ValueError(f"{path / CONFIG} has no 'sklearn_cap' section: not a folder from save_pretrained. For a "
                         "plain Hugging Face model, fit ExplanationGuidedClassifier(model=folder) instead.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is saved in format version {meta.get('format_version')!r}; this sklearn-cap reads "
                         f"version {FORMAT_VERSION}. Load it with the sklearn-cap version that wrote it "
                         f"({meta.get('versions', {}).get('sklearn-cap')}).")
    if "auto_map" in config:
        raise UnsafeFolderError(f"{path / CONFIG} names custom code (auto_map); sklearn-cap never runs code from a "
                                "saved folder. Remove auto_map.")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or len({json.dumps(c) for c in classes}) != len(classes):
        raise ValueError(f"{path / CONFIG}: sklearn_cap.classes must list two or more distinct labels, got {classes!r}.")
    expected = {str(i): str(c) for i, c in enumerate(classes)}
    id2label = {str(k): v for k, v in (config.get("id2label") or {}).items()}
    if id2label != expected:
        unknown = sorted(set(id2label.values()) - set(expected.values()))
        raise ValueError(
            f"{path / CONFIG}: id2label {id2label} does not match the saved classes {classes}"
            + (f" (it names unknown classes {unknown})" if unknown else "")
            + ". The folder was edited or mixed with another model's files; re-save it with save_pretrained."
        )
    if meta.get("pooling") not in ("cls", "mean"):
        raise ValueError(f"{path / CONFIG}: sklearn_cap.pooling must be 'cls' or 'mean', got {meta.get('pooling')!r}.")
    if not isinstance(meta.get("max_length"), int) or meta["max_length"] < 2:
        raise ValueError(f"{path / CONFIG}: sklearn_cap.max_length must be an int >= 2, got {meta.get('max_length')!r}.")
    meta["_shapes"] = _safetensors_header(path / WEIGHTS)
    return config


def _check_weights(model, shapes, n_classes, folder):
    """Every tensor of the file belongs to the model with the model's shape; else a ValueError naming it."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    unknown = sorted(set(shapes) - set(expected))
    wrong = {k: (shapes[k], expected[k]) for k in shapes if k in expected and shapes[k] != expected[k]}
    if wrong:
        name, (got, want) = next(iter(wrong.items()))
        head = [g[0] for g, w in wrong.values() if g and w and w[0] == n_classes != g[0]]
        hint = f" config.json names {n_classes} classes but the weights' head has {head[0]} outputs." if head else ""
        raise ValueError(f"{folder}/{WEIGHTS}: tensor {name} has shape {got}, the model built from config.json needs "
                         f"{want}.{hint} The weights and config.json do not belong together; re-save the model.")
    if unknown:
        raise ValueError(f"{folder}/{WEIGHTS} holds tensors the model does not have ({unknown[:5]}); the weights and "
                         "config.json do not belong together.")


def load_pretrained(path, *, estimator_class=None, device=None):
    """Read a folder written by :func:`save_pretrained` into a fitted classifier; runs no pickle.

    Parameters
    ----------
    path : str or path-like
        The folder.
    estimator_class : type, default=None
        The class to build; :class:`~sklearn_cap.ExplanationGuidedClassifier`
        when None.
    device : str, default=None
        Overrides the saved ``device`` parameter (e.g. ``"cpu"``).

    Returns
    -------
    ExplanationGuidedClassifier
        Fitted: ``predict``, ``predict_proba`` and ``explain`` work as before
        saving. Parameters that were not saved (see ``params_not_saved`` in
        ``config.json``) have their defaults, with a warning.

    Examples
    --------
    >>> clf = load_pretrained("my_model")  # doctest: +SKIP
    """
    import safetensors.torch
    from transformers import AutoConfig, AutoTokenizer

    from .loading import quiet_transformers, resolve_device
    from .modeling import build_classifier

    if estimator_class is None:
        from .classifier import ExplanationGuidedClassifier as estimator_class
    path = Path(path)
    config = check_folder(path)
    meta = config.pop("sklearn_cap")
    shapes = meta.pop("_shapes")
    known = estimator_class().get_params(deep=False)
    params = {k: _restore_param(k, v) for k, v in meta.get("params", {}).items() if k in known}
    if device is not None:
        params["device"] = device
    clf = estimator_class(**params)
    if meta.get("params_not_saved"):
        warnings.warn(
            "These parameters were not saved (they are not JSON values) and have their defaults in the loaded "
            f"estimator: {meta['params_not_saved']}. They shape training only, except a custom attribution "
            "method: pass it to explain(method=...).", UserWarning, stacklevel=3)
    raw = meta["classes"]
    dtype = meta.get("classes_dtype", "object")
    clf.classes_ = np.array(raw, dtype=object) if dtype == "object" else np.array(raw, dtype=np.dtype(dtype))
    clf.pooling_ = meta["pooling"]
    n_classes = len(raw)
    with quiet_transformers():
        model_config = AutoConfig.for_model(**{k: v for k, v in config.items() if k not in ("architectures",)})
        model_config.architectures = config.get("architectures")
        _, model = build_classifier(None, clf.pooling_, n_classes, config=model_config,
                                    head_options=clf._head_options())
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{path} has no fast tokenizer (tokenizer.json); re-save the model with save_pretrained.")
    _check_weights(model, shapes, n_classes, path)
    try:
        safetensors.torch.load_model(model, str(path / WEIGHTS), strict=True, device="cpu")
    except RuntimeError as e:
        raise ValueError(f"{path / WEIGHTS} does not fit the model built from config.json: {e}") from None
    clf.model_ = model.eval()
    clf.tokenizer_ = tokenizer
    clf.device_ = resolve_device(clf.device)
    clf.model_.to(clf.device_)
    clf.history_ = meta.get("history") or []
    clf.n_epochs_ = meta.get("n_epochs", 0)
    clf.n_train_steps_ = meta.get("n_train_steps", 0)
    clf.callbacks_ = {}
    if meta.get("class_counts") is not None:
        clf.class_counts_ = np.asarray(meta["class_counts"], dtype=np.int64)
    return clf
