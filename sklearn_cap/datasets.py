"""Loaders for the intent-classification benchmarks and a few-shot sampler.

Each data set lives in ``<data_home>/<name>/<split>.csv`` as UTF-8 ``text,label``
CSV. ``data_home`` is, in order: the ``data_home`` argument, the environment
variable ``SKLEARN_CAP_DATA``, then ``~/sklearn_cap_data``. When a file is
missing and ``download_if_missing`` is True, BANKING77 and CLINC150 are fetched
from their upstream repositories at a pinned commit, converted to ``text,label``
and checked against a SHA-256 of the converted file, as
``sklearn.datasets.fetch_*`` do. HWU64's standard split is assembled from 128
upstream files plus a published split membership; it is not rebuilt here, so a
missing HWU64 raises an error that says where to put the files.
"""

import csv
import hashlib
import io
import json
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = [
    "get_data_home",
    "load_banking77",
    "load_clinc150",
    "load_hwu64",
    "sample_few_shot",
]

ENV_VAR = "SKLEARN_CAP_DATA"

# SHA-256 of the converted ``text,label`` files (the byte layout of
# ``csv.writer(lineterminator="\n")``).
_SHA256 = {
    "banking77/train.csv": "0a3ecb72a9ca5f1ed4fcf06031f7a7d0dcf7e0adb484eff722c6025e0c761209",
    "banking77/test.csv": "e25cc6653cadb19296804ecb1c7c4e3248d7c9f641157486831ecef2733db01a",
    "clinc150/train.csv": "8de4c000e4024b9778bb1238e5cfa47bb916f948b93c31226aaac74d611796d0",
    "clinc150/validation.csv": "07255be49fafe97979804ce7a339acecbe18c7bb1681d29b12db2caff6412e88",
    "clinc150/test.csv": "9998ce647eb338c578c90ca21d803e55221b2877deedfd3f67a9988fb858af40",
    "clinc150/oos_train.csv": "f8eaf8749bb74c831315980ba2ef84acda91e45adb794fe022b8587ed0d722e8",
    "clinc150/oos_validation.csv": "f14b2b7975770da4c82e55a62b88204447bef97450dcde08b49fb59cd0256acd",
    "clinc150/oos_test.csv": "db1e6b5f1f87481c24c75b35f843b03ea098dd95a205784cf96cf3098dfa0b68",
    "hwu64/train.csv": "20363a1700be98c3f4610552219f9a2268ce35a3fe5a995157d8ae7081bbf25b",
    "hwu64/validation.csv": "d62fa27995b629f38bdb41d8b0ff6b21b26ab90288968af3565d1ef37877101d",
    "hwu64/test.csv": "809b9c3fcf088dcfdae38c1f1a430940f203e5df6d6402283a8256a0cbaeb061",
    "hwu64/train_full.csv": "7025548e6416f271cde66249666d611c0fc7c04f6ce05780c8e952001f8dedbd",
}

_GITHUB = "https://raw.githubusercontent.com"
_BANKING_URL = _GITHUB + "/PolyAI-LDN/task-specific-datasets/57ec275d8078af65b7731c2a98be812d844a6d6b/banking_data/{split}.csv"
_CLINC_URL = _GITHUB + "/clinc/oos-eval/828f8093932c8fe6ca7936c3d2e52903b1c523de/data/data_full.json"
_CLINC_KEYS = {
    "train": "train", "validation": "val", "test": "test",
    "oos_train": "oos_train", "oos_validation": "oos_val", "oos_test": "oos_test",
}

_DESCR = {
    "banking77": (
        "BANKING77 (Casanueva et al. 2020): 13,083 online-banking customer "
        "queries in 77 fine-grained intents; splits train (10,003) and test "
        "(3,080). CC BY 4.0."
    ),
    "clinc150": (
        "CLINC150 (Larson et al. 2019), full version: 150 in-scope intents over "
        "10 domains, train 15,000 / validation 3,000 / test 4,500, plus "
        "out-of-scope rows (label 'oos') in oos_train/oos_validation/oos_test. "
        "CC BY 3.0."
    ),
    "hwu64": (
        "HWU64 (Liu et al. 2019), DialoGLUE split: 64 intents over 21 home "
        "assistant scenarios, train 8,954 / validation 1,076 / test 1,076; "
        "train_full (9,960) is the PolyAI KFold_1 training set. CC BY 4.0."
    ),
}


def get_data_home(data_home=None):
    """The folder the loaders read: argument, then ``$SKLEARN_CAP_DATA``, then ``~/sklearn_cap_data``.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder; None falls back to ``$SKLEARN_CAP_DATA``, then to
        ``~/sklearn_cap_data``. A leading ``~`` is expanded.

    Returns
    -------
    pathlib.Path
        The data folder (not created here).
    """
    if data_home is None:
        data_home = os.environ.get(ENV_VAR) or Path.home() / "sklearn_cap_data"
    return Path(data_home).expanduser()


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _write_checked(rows, target, expected_sha256):
    """Write ``text,label`` rows next to ``target``, check the digest, then move in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    digest = _sha256(tmp)
    if expected_sha256 is not None and digest != expected_sha256:
        os.unlink(tmp)
        raise OSError(
            f"Checksum mismatch for the downloaded {target.name}: expected "
            f"{expected_sha256}, got {digest}. The upstream file changed or the "
            "download was corrupted; nothing was written."
        )
    os.replace(tmp, target)


def _fetch_banking77(split, target, sha256=None):
    raw = _download(_BANKING_URL.format(split=split)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    rows = [(r["text"], r["category"]) for r in reader]
    _write_checked(rows, target, sha256)


def _fetch_clinc150(split, target, sha256=None):
    data = json.loads(_download(_CLINC_URL).decode("utf-8"))
    rows = [(text, label) for text, label in data[_CLINC_KEYS[split]]]
    _write_checked(rows, target, sha256)


_FETCHERS = {"banking77": _fetch_banking77, "clinc150": _fetch_clinc150}


def _load(name, split, splits, data_home, download_if_missing, return_X_y):
    if split not in splits:
        raise ValueError(f"Unknown split {split!r} for {name}; choose one of {sorted(splits)}.")
    folder = get_data_home(data_home) / name
    path = folder / f"{split}.csv"
    if not path.exists():
        fetcher = _FETCHERS.get(name)
        if not download_if_missing or fetcher is None:
            hint = (
                "Pass download_if_missing=True to fetch it."
                if fetcher is not None
                else "Automatic download is not available for this data set: copy its "
                "text,label CSV files (train.csv, validation.csv, test.csv, "
                "train_full.csv) into that folder."
            )
            raise FileNotFoundError(
                f"{name} split {split!r} not found: looked for {path} (data folder "
                f"from the data_home argument, ${ENV_VAR} or ~/sklearn_cap_data). {hint}"
            )
        try:
            fetcher(split, path, sha256=_SHA256[f"{name}/{split}.csv"])
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            if "Checksum mismatch" in str(exc):
                raise
            raise OSError(
                f"{name} split {split!r} is not in {folder} and could not be downloaded ({exc}). Put the "
                f"text,label CSV files in {folder}, or point data_home / ${ENV_VAR} at a folder holding "
                f"{name}/{split}.csv."
            ) from exc
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path} must be a CSV with the header 'text,label'.")
        rows = [(r["text"], r["label"]) for r in reader]
    texts = np.array([t.strip() for t, _ in rows], dtype=object)
    labels = np.array([lab for _, lab in rows], dtype=object)
    if return_X_y:
        return texts, labels
    return Bunch(
        data=texts,
        target=labels,
        target_names=sorted(set(labels)),
        DESCR=_DESCR[name],
        filename=str(path),
    )


_LOADER_DOC = """Load the {title} {what} split.

    Texts are stripped of surrounding whitespace (a few upstream rows start or
    end with a newline); labels are the data set's own intent names.

    Parameters
    ----------
    split : {{{splits}}}, default="train"
    data_home : str or path-like, default=None
        Folder holding ``{name}/<split>.csv``. Defaults to ``$SKLEARN_CAP_DATA``,
        then ``~/sklearn_cap_data``.
    download_if_missing : bool, default=True
        Fetch the split from upstream when it is not there{download_note}.
    return_X_y : bool, default=False
        Return ``(texts, labels)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (object array of str), ``target`` (object array of str),
        ``target_names`` (sorted labels), ``DESCR``, ``filename``.
    (X, y) : tuple of ndarray
        When ``return_X_y`` is True.

    Examples
    --------
    >>> from sklearn_cap.datasets import {func}
    >>> X, y = {func}(split="test", return_X_y=True)  # doctest: +SKIP
    """


def load_banking77(split="train", *, data_home=None, download_if_missing=True, return_X_y=False):
    return _load("banking77", split, {"train", "test"}, data_home, download_if_missing, return_X_y)


def load_clinc150(split="train", *, data_home=None, download_if_missing=True, return_X_y=False):
    return _load("clinc150", split, set(_CLINC_KEYS), data_home, download_if_missing, return_X_y)


def load_hwu64(split="train", *, data_home=None, download_if_missing=True, return_X_y=False):
    splits = {"train", "validation", "test", "train_full"}
    return _load("hwu64", split, splits, data_home, download_if_missing, return_X_y)


load_banking77.__doc__ = _LOADER_DOC.format(
    title="BANKING77", what="train or test", splits='"train", "test"', name="banking77",
    download_note=" (PolyAI-LDN/task-specific-datasets, checksum-verified)", func="load_banking77",
)
load_clinc150.__doc__ = _LOADER_DOC.format(
    title="CLINC150 (full)", what="in-scope or out-of-scope",
    splits='"train", "validation", "test", "oos_train", "oos_validation", "oos_test"',
    name="clinc150", download_note=" (clinc/oos-eval, checksum-verified)", func="load_clinc150",
)
load_hwu64.__doc__ = _LOADER_DOC.format(
    title="HWU64 (DialoGLUE)", what="train, validation, test or train_full",
    splits='"train", "validation", "test", "train_full"', name="hwu64",
    download_note="; not available for HWU64, whose split is assembled from 128 "
    "upstream files (an error says where to put the CSVs)", func="load_hwu64",
)


def sample_few_shot(X, y, n_per_class=5, *, random_state=None):
    """Draw ``n_per_class`` examples of every class, without replacement.

    Classes with fewer examples contribute all they have. The result is
    ordered by class, then by draw, and is the same for the same
    ``random_state``.

    Parameters
    ----------
    X : array-like of str
    y : array-like
    n_per_class : int, default=5
    random_state : int, RandomState instance or None

    Returns
    -------
    X_few, y_few : ndarray
    indices : ndarray of int
        Positions of the sampled rows in ``X``.

    Examples
    --------
    >>> X = ["a", "b", "c", "d"]; y = [0, 0, 1, 1]
    >>> Xs, ys, idx = sample_few_shot(X, y, 1, random_state=0)
    >>> ys.tolist()
    [0, 1]
    """
    X = np.asarray(X, dtype=object)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths: {len(X)} and {len(y)}.")
    if int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class}.")
    rng = check_random_state(random_state)
    picked = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        picked.extend(rng.choice(rows, size=min(int(n_per_class), len(rows)), replace=False))
    idx = np.asarray(picked, dtype=int)
    return X[idx], y[idx], idx
