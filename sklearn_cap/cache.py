"""The persistent score cache.

LLM scores are the costly part of CAP and depend only on (scorer, task prompt,
masked text, label), not on the ridge penalty or the classifier. They go into
one SQLite file per folder, committed after every scored batch, so that

- changing ``lam`` (or anything downstream) re-scores nothing;
- an interrupted extraction resumes where it stopped;
- several processes (``GridSearchCV(n_jobs=...)``) can share the folder.
"""

import hashlib
import json
import os
import sqlite3
from pathlib import Path

__all__ = ["ScoreCache", "get_cache_dir", "score_key"]

ENV_VAR = "SKLEARN_CAP_CACHE"


def get_cache_dir(cache_dir=None):
    """Cache folder: argument, then ``$SKLEARN_CAP_CACHE``, then ``~/.cache/sklearn_cap``."""
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_VAR) or Path.home() / ".cache" / "sklearn_cap"
    return Path(cache_dir).expanduser()


def score_key(*parts):
    """Stable hex digest of JSON-serialisable parts."""
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ScoreCache:
    """A key -> float store in ``<folder>/scores.sqlite``.

    Parameters
    ----------
    folder : str or path-like
        Created if missing.

    Examples
    --------
    >>> import tempfile
    >>> cache = ScoreCache(tempfile.mkdtemp())
    >>> cache.put_many({"k": -1.5})
    >>> cache.get_many(["k", "other"])
    {'k': -1.5}
    """

    def __init__(self, folder):
        self.folder = Path(folder).expanduser()
        self._conn = None

    @property
    def path(self):
        return self.folder / "scores.sqlite"

    def _connect(self):
        if self._conn is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=120)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL)")
            conn.commit()
            self._conn = conn
        return self._conn

    def get_many(self, keys):
        """Cached values of those keys that are present."""
        conn = self._connect()
        found = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(conn.execute(f"SELECT key, value FROM scores WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, items):
        """Store ``{key: value}`` and commit at once (what makes runs resumable)."""
        conn = self._connect()
        conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", [(k, float(v)) for k, v in items.items()])
        conn.commit()

    def __len__(self):
        return self._connect().execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # A connection cannot be pickled or shared across processes: reopen lazily.
    def __getstate__(self):
        return {"folder": self.folder, "_conn": None}

    def __repr__(self):
        return f"ScoreCache({str(self.folder)!r})"
