"""The persistent score cache.

LLM scores are the costly part of CAP and depend only on (scorer, task prompt,
masked text, label), not on the ridge penalty or the classifier. They go into
one SQLite file per folder, committed after every scored batch, so that

- changing ``lam`` (or anything downstream) re-scores nothing;
- an interrupted extraction resumes where it stopped;
- several processes (``GridSearchCV(n_jobs=...)``, Dask or Ray workers on one
  file system) can share the folder. Before scoring, a process *claims* the
  keys it will score (a row in a ``claims`` table, written in one locked
  transaction); the others skip those keys and wait for their scores, so no
  prompt is scored twice. A claim left by a process that died is taken over
  at once when that process ran on this host (its PID is gone), and after
  ``claim_ttl`` seconds otherwise.

The file is a plain file in the folder: a ``scores.sqlite`` that is a
symbolic link is refused (its target would be turned into a database), and a
folder or file that anyone on the machine may write to gets a warning, since
whoever can edit the scores decides the priors.
"""

import hashlib
import json
import math
import os
import random
import socket
import sqlite3
import stat
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

__all__ = ["ScoreCache", "MemoryCache", "get_cache_dir", "score_key", "claim_owner", "owner_is_dead"]

ENV_VAR = "SKLEARN_CAP_CACHE"


# SQLite caps the number of bound parameters of one statement.
_KEYS_PER_QUERY = 500


def _key_chunks(keys):
    """``(chunk, marks)`` pairs: ``keys`` in slices small enough for one ``IN (...)`` query, and its ``?`` list."""
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[i : i + _KEYS_PER_QUERY]
        yield chunk, ",".join("?" * len(chunk))


def get_cache_dir(cache_dir=None):
    """Cache folder: argument, then ``$SKLEARN_CAP_CACHE``, then ``~/.cache/sklearn_cap``.

    Parameters
    ----------
    cache_dir : str or path-like, default=None
        The folder; None falls back to ``$SKLEARN_CAP_CACHE``, then to
        ``~/.cache/sklearn_cap``. A leading ``~`` is expanded.

    Returns
    -------
    pathlib.Path
        The cache folder (not created here).
    """
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_VAR) or Path.home() / ".cache" / "sklearn_cap"
    return Path(cache_dir).expanduser()


def score_key(*parts):
    """Stable hex digest of JSON-serialisable parts.

    Parameters
    ----------
    *parts : JSON-serialisable objects
        What the key depends on, in order (e.g. scorer identity, task
        fingerprint, text, label).

    Returns
    -------
    str
        The SHA-256 hex digest of the parts' compact JSON encoding.
    """
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# How long a process waits for another's lock on the file before giving up.
_BUSY_S = 120.0
_jitter = random.Random()  # a private generator: retries must not move the user's global random state


def claim_owner():
    """A claim owner name for this process and call: ``host:pid:random``.

    The host and PID let another process on the same host see that the
    owner died (:func:`owner_is_dead`) and take its claims over at once.

    Returns
    -------
    str
        A new owner name.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(8).hex()}"


def owner_is_dead(owner):
    """Whether ``owner`` (from :func:`claim_owner`) was a process of this host that no longer runs.

    False when it cannot be told: another host, a name of another form, or
    Windows (where probing a PID means opening the process). A PID taken
    over by a new process reads as alive; the claim then expires with its
    ``claim_ttl``. Containers that share a host name but not a PID namespace
    (``--network host``) see each other's owners as dead: their claims are
    taken over and those prompts scored twice, with the same values.

    Parameters
    ----------
    owner : str
        An owner name, as stored with a claim.

    Returns
    -------
    bool
        True only for an owner of this host whose process is gone (or a zombie).

    Examples
    --------
    >>> owner_is_dead(claim_owner())
    False
    """
    host, sep, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if not sep or host != socket.gethostname() or not pid.isdigit() or os.name == "nt":
        return False
    pid = int(pid)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    try:  # a zombie (dead, not yet reaped by its parent) still answers signal 0
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _check_file_safety(folder, path):
    """Refuse a symlinked database; warn when anyone may write the scores."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.is_symlink():
            raise OSError(
                f"The score cache {p} is a symbolic link (to {os.readlink(p)}). The cache does not follow "
                "links, which would turn their target into a database: remove the link, or point cache_dir / "
                "$SKLEARN_CAP_CACHE at the folder that holds the real file."
            )
    for p in (folder, path):
        try:
            mode = p.stat().st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH:
            warnings.warn(
                f"The score cache {'folder' if p == folder else 'file'} {p} is writable by every user of this "
                "machine: anyone can edit its scores, and so the priors trained on them. Restrict it "
                f"(chmod o-w {p}) or use a private cache_dir.", UserWarning, stacklevel=4,
            )


def _enter_wal(conn):
    """Put the file in write-ahead-log mode, retrying while other processes open it too.

    SQLite refuses a journal-mode change that meets another connection's lock
    with "database is locked" at once, without waiting out its busy timeout;
    so workers that open a new cache together (a grid search's first jobs)
    would fail at random. The mode is stored in the file: once set, the first
    query below sees it and nothing is changed.
    """
    deadline = time.monotonic() + _BUSY_S
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + _jitter.random()))
            delay = min(2 * delay, 0.5)


class ScoreCache:
    """A key -> float store in ``<folder>/scores.sqlite``.

    Parameters
    ----------
    folder : str or path-like
        Created if missing.
    read_only : bool or None, default=None
        None: detect (a cache that cannot be written is opened read-only).
        A read-only cache serves the scores it holds; new scores are kept in
        memory for the life of this object, with one warning.
    claim_ttl : float, default=600
        Seconds a claim on keys being scored holds (see :meth:`claim`). It
        must exceed the time one chunk of prompts takes to score; it is also
        how long others wait for the keys of a process that died on another
        host (the claims of a dead process of this host are taken over at
        once).

    Examples
    --------
    >>> import tempfile
    >>> cache = ScoreCache(tempfile.mkdtemp())
    >>> cache.put_many({"k": -1.5})
    >>> cache.get_many(["k", "other"])
    {'k': -1.5}
    """

    def __init__(self, folder, read_only=None, claim_ttl=600.0):
        self.folder = Path(folder).expanduser()
        self.read_only = read_only
        self.claim_ttl = claim_ttl
        self._conn = None
        self._memory = {}

    @property
    def path(self):
        return self.folder / "scores.sqlite"

    @contextmanager
    def _sqlite_errors(self, conn=None):
        """Turn a SQLite error inside into an OSError that names the file and what to do.

        ``conn``: roll its open transaction back first.
        """
        try:
            yield
        except sqlite3.Error as exc:
            if conn is not None:
                conn.rollback()
            raise OSError(
                f"The score cache {self.path} cannot be used ({type(exc).__name__}: {exc}). If it is corrupt, "
                "move or delete it (its scores will be recomputed); or point cache_dir / $SKLEARN_CAP_CACHE at "
                "another folder, or use cache_dir=False."
            ) from exc

    def _uri(self):
        return "file:" + quote(str(self.path.absolute()))

    def _writable(self):
        if self.read_only is not None:
            return not self.read_only
        if self.path.exists():
            return os.access(self.path, os.W_OK) and os.access(self.folder, os.W_OK)
        return True

    def _connect(self):
        if self._conn is not None:
            return self._conn
        with self._sqlite_errors():
            if self._writable():
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise PermissionError(
                        f"Cannot create the score cache folder {self.folder} ({exc}). Set cache_dir or "
                        "$SKLEARN_CAP_CACHE to a writable folder, or use cache_dir=False."
                    ) from exc
                _check_file_safety(self.folder, self.path)
                # nofollow: SQLite itself refuses a link created after the check above.
                conn = sqlite3.connect(f"{self._uri()}?nofollow=1", uri=True, timeout=_BUSY_S)
                _enter_wal(conn)
                conn.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                             "expires REAL NOT NULL)")
                conn.commit()
                self.read_only = False
            else:
                if not self.path.exists():
                    raise FileNotFoundError(f"No score cache at {self.path} to read.")
                _check_file_safety(self.folder, self.path)
                try:
                    conn = sqlite3.connect(f"{self._uri()}?mode=ro&nofollow=1", uri=True)
                    conn.execute("SELECT COUNT(*) FROM scores").fetchone()
                except sqlite3.OperationalError:
                    # A folder we cannot write to cannot hold SQLite's lock files: read as immutable.
                    conn = sqlite3.connect(f"{self._uri()}?mode=ro&immutable=1&nofollow=1", uri=True)
                    conn.execute("SELECT COUNT(*) FROM scores").fetchone()
                self.read_only = True
                warnings.warn(f"The score cache {self.path} is read-only: its scores are used, new scores are kept "
                              "in memory only.", stacklevel=3)
        self._conn = conn
        return conn

    def get_many(self, keys):
        """Cached values of those keys that are present.

        Parameters
        ----------
        keys : iterable of str
            The keys to look up.

        Returns
        -------
        dict of str -> float
            The keys found, with their values; missing keys are left out.
        """
        conn = self._connect()
        keys = list(keys)
        found = {k: self._memory[k] for k in keys if k in self._memory}
        with self._sqlite_errors():
            for chunk, marks in _key_chunks(keys):
                found.update(conn.execute(f"SELECT key, value FROM scores WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, items):
        """Store ``{key: value}`` and commit at once (what makes runs resumable).

        Parameters
        ----------
        items : dict of str -> float
            Scores to store; every value must be finite. Their keys' claims
            are cleared. A read-only cache keeps them in memory.
        """
        rows = [(k, float(v)) for k, v in items.items()]
        bad = [k for k, v in rows if not math.isfinite(v)]
        if bad:
            raise ValueError(f"Refusing to cache {len(bad)} non-finite scores (first key {bad[0][:16]}...).")
        conn = self._connect()
        if self.read_only:
            self._memory.update(rows)
            return
        with self._sqlite_errors():
            conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", rows)
            conn.executemany("DELETE FROM claims WHERE key = ?", [(k,) for k, _ in rows])
            conn.commit()

    def claim(self, keys, owner, limit):
        """Claim up to ``limit`` of ``keys`` for ``owner`` to score; the claimed keys, in order.

        Keys already scored, or claimed by another live owner, are skipped.
        Claims whose ``claim_ttl`` ran out, and those of an owner of this
        host whose process is gone (:func:`owner_is_dead`), are dropped first.
        The check and the claim happen in one locked transaction, so two
        processes never claim the same key. :meth:`put_many` clears the
        claims of the keys it stores; :meth:`release` clears the rest.
        An empty answer while keys are still missing means that others are
        scoring them: wait and read them with :meth:`get_many`.

        Parameters
        ----------
        keys : iterable of str
            The keys the caller wants to score, in order.
        owner : str
            Identifies the claiming process (unique per caller and run).
        limit : int
            Most keys to claim.

        Returns
        -------
        list of str
            The keys now claimed by ``owner``, at most ``limit``, in the
            order of ``keys``. A read-only cache claims nothing and returns
            the first ``limit`` keys.
        """
        keys = list(keys)
        conn = self._connect()
        if self.read_only:
            return keys[:limit]
        now = time.time()
        mine = []
        with self._sqlite_errors(conn):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM claims WHERE expires < ?", (now,))
            dead = [(o,) for (o,) in conn.execute("SELECT DISTINCT owner FROM claims WHERE owner != ?", (owner,))
                    if owner_is_dead(o)]
            conn.executemany("DELETE FROM claims WHERE owner = ?", dead)
            for chunk, marks in _key_chunks(keys):
                taken = {k for (k,) in conn.execute(f"SELECT key FROM scores WHERE key IN ({marks})", chunk)}
                taken.update(k for (k,) in conn.execute(
                    f"SELECT key FROM claims WHERE key IN ({marks}) AND owner != ?", [*chunk, owner]))
                mine.extend(k for k in chunk if k not in taken)
                if len(mine) >= limit:
                    break
            mine = mine[:limit]
            expires = now + float(self.claim_ttl)
            conn.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", [(k, owner, expires) for k in mine])
            conn.commit()
        return mine

    def claim_holders(self, keys):
        """Who holds claims on ``keys``: ``{owner: (n_keys, seconds until the last expires)}``.

        What a process waiting for others' scores reports in the log.

        Parameters
        ----------
        keys : iterable of str
            The keys waited for.

        Returns
        -------
        dict of str -> (int, float)
            Per owner, how many of ``keys`` it holds and the longest time
            left on those claims.
        """
        conn = self._connect()
        if self.read_only:
            return {}
        keys, now, out = list(keys), time.time(), {}
        with self._sqlite_errors():
            for chunk, marks in _key_chunks(keys):
                for owner, n, last in conn.execute(
                        f"SELECT owner, COUNT(*), MAX(expires) FROM claims WHERE key IN ({marks}) GROUP BY owner",
                        chunk):
                    m, t = out.get(owner, (0, 0.0))
                    out[owner] = (m + n, max(t, last - now))
        return out

    def release(self, owner):
        """Drop the claims ``owner`` still holds (after a failure, so others need not wait them out).

        Parameters
        ----------
        owner : str
            The owner given to :meth:`claim`.
        """
        conn = self._connect()
        if self.read_only:
            return
        with self._sqlite_errors():
            conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))
            conn.commit()

    def __len__(self):
        return self._connect().execute("SELECT COUNT(*) FROM scores").fetchone()[0] + len(self._memory)

    def close(self):
        if self._conn is not None:
            if not self.read_only:
                try:  # fold the write-ahead log into the file, so a copy of the file alone is complete
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass
            self._conn.close()
            self._conn = None

    # A connection cannot be pickled or shared across processes: reopen lazily.
    def __getstate__(self):
        return {"folder": self.folder, "read_only": self.read_only, "claim_ttl": self.claim_ttl, "_conn": None,
                "_memory": {}}

    def __repr__(self):
        return f"ScoreCache({str(self.folder)!r})"


class MemoryCache:
    """The :class:`ScoreCache` interface in memory (``cache_dir=False``): scores live as long as the object."""

    def __init__(self):
        self._items = {}

    def get_many(self, keys):
        return {k: self._items[k] for k in keys if k in self._items}

    def put_many(self, items):
        self._items.update({k: float(v) for k, v in items.items()})

    def claim(self, keys, owner, limit):
        return list(keys)[:limit]

    def claim_holders(self, keys):
        return {}

    def release(self, owner):
        pass

    def close(self):
        pass

    def __len__(self):
        return len(self._items)
