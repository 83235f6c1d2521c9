"""PriorUnion: fuse several priors into one (CAP Hybrid), like FeatureUnion for priors."""

import os
from numbers import Real

import numpy as np
from joblib import Memory
from sklearn.base import _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import check_is_fitted

from ..attribution import NORMALIZATIONS, normalize_np
from ..text import WordAttributions
from ..validation import validate_params
from .base import BasePrior

__all__ = ["PriorUnion"]

AGGREGATES = ("mean", "max")


def _fit_member(member, texts, y, refs, transform):
    """Fit one member; return (fitted member, its training priors, or None without ``transform``).

    Used under joblib.Memory; ``refs``: shared reference models, or None.
    """
    if transform:
        out = member.fit_transform_with(refs, texts, y) if refs is not None else member.fit_transform(texts, y)
        return member, out
    if refs is not None:
        member.fit_with(refs, texts, y)
    else:
        member.fit(texts, y)
    return member, None


class PriorUnion(BasePrior, _BaseComposition):
    """Normalise several priors per text, then aggregate them word by word.

    With CAP, IG and LIME members this is the paper's CAP Hybrid. Members
    that need the same reference classifier (IG and LIME with equal
    reference settings, see :meth:`BasePrior.reference_key`) share one,
    trained once. A PriorUnion is itself a prior and follows the same
    contract (:class:`~sklearn_cap.priors.BasePrior`): its ``transform``,
    inherited, calls no member.

    Parameters
    ----------
    transformer_list : list of (str, transformer)
        Named prior transformers: :class:`~sklearn_cap.priors.BasePrior`
        subclasses, or any transformer whose ``fit_transform(X, y)``
        returns priors (those share no reference model). A member may be
        ``"drop"``. Nested parameters read as ``<name>__<param>``, e.g.
        ``cap__lam``.
    normalization : {"minmax", "l1", "softmax"}, default="minmax"
        Per-text normalisation of each prior before fusing (the paper
        normalises before fusing; min-max is its choice).
    aggregate : {"mean", "max"}, default="mean"
    weights : dict of str -> float, default=None
        Multiplies each normalised prior (``mean`` becomes a weighted mean).
        Weights are finite and > 0; leave a member out with ``"drop"``.
    memory : str, path-like or joblib.Memory, default=None
        Caches each member's fit (model and priors) by its parameters and
        the data, so a grid over one member's parameter (``cap__lam``)
        refits only that member.

    Notes
    -----
    A NaN in a member's prior means "no prior for this word" (for example
    a word cut off by the reference classifier's ``max_length``); the
    aggregate runs over the members that have a value. A word no member
    scores stays NaN and is left out of the attribution loss.

    Attributes
    ----------
    named_transformers_ : dict
        Fitted members by name.

    Examples
    --------
    >>> from sklearn_cap import CAPPriorTransformer, IGPriorTransformer, LIMEPriorTransformer, PriorUnion
    >>> hybrid = PriorUnion([("cap", CAPPriorTransformer()), ("ig", IGPriorTransformer(ref)),
    ...                      ("lime", LIMEPriorTransformer(ref))], aggregate="mean")  # doctest: +SKIP
    >>> priors = hybrid.fit_transform(X_train, y_train)  # doctest: +SKIP
    """

    _parameter_constraints = {
        "transformer_list": [list],
        "normalization": [StrOptions(set(NORMALIZATIONS))],
        "aggregate": [StrOptions(set(AGGREGATES))],
        "weights": [dict, None],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    }

    def __init__(self, transformer_list, *, normalization="minmax", aggregate="mean", weights=None, memory=None):
        self.transformer_list = transformer_list
        self.normalization = normalization
        self.aggregate = aggregate
        self.weights = weights
        self.memory = memory

    def get_params(self, deep=True):
        return self._get_params("transformer_list", deep=deep)

    def set_params(self, **params):
        self._set_params("transformer_list", **params)
        return self

    @property
    def _transformers(self):
        return self.transformer_list

    @_transformers.setter
    def _transformers(self, value):
        self.transformer_list = value

    def _check_members(self):
        """The active (name, member) pairs, after checking the list, the names and the weights."""
        pairs = self.transformer_list
        if not pairs:
            raise ValueError("PriorUnion needs at least one (name, prior transformer) in transformer_list.")
        if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise TypeError(
                "transformer_list must hold (name, transformer) pairs, as in "
                "PriorUnion([('cap', CAPPriorTransformer()), ('ig', IGPriorTransformer())]); "
                f"got {pairs!r:.200}."
            )
        names = [name for name, _ in pairs]
        self._validate_names(names)
        weights = self.weights or {}
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights name unknown members {sorted(unknown)}; members are {names}.")
        for name, w in weights.items():
            if not (isinstance(w, Real) and np.isfinite(w) and w > 0):
                raise ValueError(
                    f"weights[{name!r}] = {w!r}: weights must be finite numbers > 0. To leave a member out, "
                    f"set it to 'drop' (set_params({name}='drop'))."
                )
        active = [(n, t) for n, t in pairs if not (isinstance(t, str) and t == "drop")]
        if not active:
            raise ValueError("Every member of the PriorUnion is 'drop'.")
        for name, t in active:
            if not (hasattr(t, "fit_transform") and hasattr(t, "transform")):
                raise TypeError(
                    f"Member {name!r} is not a prior transformer (it needs fit_transform and transform); "
                    "subclass sklearn_cap.priors.BasePrior."
                )
        return active

    # Members are a user's objects: they check their own parameters when fitted.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit every member, computing no prior (see :meth:`fit_transform` for the priors).

        Members that share a reference key share one set of reference models,
        trained once.

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text.

        Returns
        -------
        self
            The fitted union, with ``named_transformers_`` set.
        """
        active = self._check_members()
        self._fit(active, *self.check_fit_data(X, y), transform=False)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None):
        """Fit every member on labelled texts and return the fused prior.

        Parameters
        ----------
        X : list of str
            Training texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Gold label of each text (required despite the default).

        Returns
        -------
        WordAttributions
            The members' priors, normalised per text and aggregated word by
            word (NaN where no member has a value); see :meth:`fuse`.
        """
        active = self._check_members()
        texts, y = self.check_fit_data(X, y)
        return self._fuse(texts, self._fit(active, texts, y, transform=True))

    def _fit(self, active, texts, y, transform):
        """Fit clones of the active members; return their training priors by name (with ``transform``)."""
        memory = self.memory if isinstance(self.memory, Memory) else Memory(self.memory, verbose=0)
        # The reference models are not part of the cache key: they follow from the member's params and data.
        fit_member = memory.cache(_fit_member, ignore=["refs"])

        def key_of(t):
            return t.reference_key() if isinstance(t, BasePrior) else None

        # Members with the same reference key share one set of reference models.
        groups = {}
        for name, t in active:
            if key_of(t) is not None:
                groups.setdefault(key_of(t), []).append(name)
        refs, fitted, priors = {}, {}, {}
        for name, t in active:
            # Fit clones: the members given stay unfitted (a prefit member's model survives
            # clone() when wrapped in sklearn.frozen.FrozenEstimator).
            member = clone(t)
            key = key_of(member)
            shared = key is not None and len(groups[key]) > 1
            if shared and key not in refs and not self._cached(fit_member, member, texts, y, transform):
                refs[key] = member.fit_reference(texts, y)
            fitted[name], priors[name] = fit_member(member, texts, y, refs.get(key) if shared else None, transform)
        self.named_transformers_ = fitted
        return priors

    @staticmethod
    def _cached(fit_member, member, texts, y, transform):
        # Without a memory folder, joblib returns a plain wrapper with no cache to check.
        check = getattr(fit_member, "check_call_in_cache", None)
        return bool(check and check(member, texts, y, None, transform))

    def compute_priors(self, X, y):
        """Fused priors of labelled texts from the fitted members.

        Parameters
        ----------
        X : list of str
            Texts, each with at least one word.
        y : array-like of shape (n_texts,)
            Label of each text, known to every member.

        Returns
        -------
        WordAttributions
            Each member's :meth:`~BasePrior.compute_priors`, fused by :meth:`fuse`.
        """
        check_is_fitted(self, "named_transformers_")
        validate_params(self)
        self._check_members()
        texts, y = self.check_fit_data(X, y)
        return self._fuse(texts, {n: t.compute_priors(texts, y) for n, t in self.named_transformers_.items()})

    def fuse(self, texts, priors):
        """Normalise each member's prior per text and aggregate them (what ``fit_transform`` returns).

        ``priors`` maps member names to WordAttributions or matrices of the same ``texts``.

        Parameters
        ----------
        texts : list of str
            The texts the priors are about.
        priors : dict of str -> WordAttributions or array-like of shape (n_texts, n_words)
            Each member's prior by name, one row per text and one column per
            word of :func:`~sklearn_cap.text.segment`; NaN: no prior. The
            names key ``weights``.

        Returns
        -------
        WordAttributions
            The priors normalised per text with ``normalization``, multiplied
            by their ``weights`` and aggregated word by word with
            ``aggregate`` over the members that have a value; NaN where none has.
        """
        validate_params(self)
        self._check_members()
        return self._fuse(texts, priors)

    def _fuse(self, texts, priors):
        wa = WordAttributions(texts)
        weights = self.weights or {}
        stack = []
        for name, p in priors.items():
            if isinstance(p, WordAttributions) and p.texts != texts:
                raise ValueError(f"Member {name!r} returned priors for other texts than it was given.")
            values = np.asarray(p, dtype=float)
            if values.shape != wa.shape:
                raise ValueError(
                    f"Priors of different widths: member {name!r} gave shape {values.shape}, "
                    f"expected {wa.shape} (texts x words of sklearn_cap.text.segment)."
                )
            values = np.where(wa.word_mask, values, np.nan)
            if np.isinf(values).any():
                raise ValueError(f"Member {name!r} returned infinite priors.")
            stack.append(normalize_np(values, self.normalization) * float(weights.get(name, 1.0)))
        stack = np.stack(stack)
        has = np.isfinite(stack).any(axis=0)
        filled = np.where(np.isfinite(stack), stack, 0.0 if self.aggregate == "mean" else -np.inf)
        if self.aggregate == "mean":
            w = np.array([float(weights.get(n, 1.0)) for n in priors])[:, None, None]
            denom = (np.isfinite(stack) * w).sum(axis=0)
            fused = filled.sum(axis=0) / np.where(denom > 0, denom, 1.0)
        else:
            fused = filled.max(axis=0)
        return wa.with_values(np.where(has, fused, np.nan))
