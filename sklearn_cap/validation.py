"""Input checks shared by every estimator: texts, labels, seeds and scikit-learn tags.

Parameters are declared in each estimator's ``_parameter_constraints`` (the
scikit-learn mechanism) and checked once per public call: ``fit`` and
``fit_transform`` by scikit-learn's ``_fit_context``, other public methods by
:func:`validate_params`; the private paths behind them check nothing again.
What depends on the data (texts, labels, seeds) is checked here, once, with
messages that say what to do.
"""

import numbers
import re
from collections.abc import Mapping, MappingView, Set

import numpy as np
from sklearn import get_config
from sklearn.utils._param_validation import Interval

__all__ = [
    "check_texts",
    "check_labels",
    "check_known_labels",
    "check_label_space",
    "check_min_classes",
    "validate_params",
    "seed_from",
    "RANDOM_STATE",
    "text_input_tags",
]

# Every estimator accepts the same seeds: an int, None, a RandomState or a Generator.
RANDOM_STATE = [Interval(numbers.Integral, 0, 2**32 - 1, closed="both"), np.random.RandomState,
                np.random.Generator, None]

# Half of a UTF-16 surrogate pair alone: valid in a Python str, but not Unicode text that UTF-8 (and so
# every tokenizer) can encode. It comes from decoding bytes with errors="surrogateescape" or from a
# string cut between the two halves of a pair.
_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_params(estimator):
    """Check ``estimator``'s parameters, unless the caller has (scikit-learn's ``skip_parameter_validation``).

    What a public method that is not ``fit`` calls first; ``fit`` and
    ``fit_transform`` use scikit-learn's ``_fit_context``, which does the same.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator whose ``_parameter_constraints`` are checked.

    Examples
    --------
    >>> from sklearn import config_context
    >>> from sklearn_cap import CAPPriorTransformer
    >>> validate_params(CAPPriorTransformer(lam=0))
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'lam' parameter of CAPPriorTransformer must be ...
    >>> with config_context(skip_parameter_validation=True):
    ...     validate_params(CAPPriorTransformer(lam=0))  # checked by the caller
    """
    if not get_config()["skip_parameter_validation"]:
        estimator._validate_params()


def _refuse_unordered(X, name):
    """Sets and mappings have no order that pairs their items with labels: refuse them."""
    if isinstance(X, (Set, Mapping, MappingView)):
        kind = type(X).__name__
        raise TypeError(
            f"{name} is a {kind}, which has no fixed order: its items would pair with the labels in hash "
            f"order. Pass a list (or array or Series) in the same order as the labels, e.g. {name}=list(...) "
            "built from the same rows as y."
        )


def _missing(v):
    """None, NaN, pd.NA or pd.NaT (without importing pandas)."""
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(v, (float, np.floating)) and v != v


def seed_from(random_state):
    """An int seed from ``random_state`` (int, None, RandomState or Generator).

    None draws from NumPy's global generator, as scikit-learn does.

    Examples
    --------
    >>> seed_from(3)
    3
    >>> seed_from(np.random.default_rng(0)) == seed_from(np.random.default_rng(0))
    True
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    if random_state is None:
        return int(np.random.randint(2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    raise TypeError(f"random_state must be an int, None, a RandomState or a Generator; got {random_state!r}.")


def check_texts(X, *, allow_empty=True, allow_no_texts=False, name="X"):
    """Validate a collection of texts and return it as a list of str.

    Raises early, with a message that says what to do, for a bare string (a
    common slip for a list of one text), a set or dict (no order to pair
    texts with labels), ``None`` or non-string entries, texts holding a lone
    UTF-16 surrogate (not encodable text), an empty collection (unless
    ``allow_no_texts``) and, unless ``allow_empty``, texts with no word at
    all.

    Examples
    --------
    >>> check_texts(np.array(["a b", "c"], dtype=object))
    ['a b', 'c']
    """
    from .text import WORD_PATTERN, WordAttributions

    if isinstance(X, WordAttributions):
        X = X.texts
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a list of texts, got a single string. Wrap it in a list: [{X[:30]!r}...].")
    _refuse_unordered(X, name)
    if hasattr(X, "ndim") and getattr(X, "ndim") == 2:
        if X.shape[1] != 1:
            raise ValueError(f"{name} must be one text per row; got an array of shape {X.shape}.")
        X = np.asarray(X).ravel()
    try:
        texts = list(X)
    except TypeError:
        raise TypeError(
            f"{name} must be an iterable of texts (list, array or Series of str); got {type(X).__name__}."
        ) from None
    if not texts and not allow_no_texts:
        raise ValueError(f"{name} is empty: 0 texts. Pass at least one text.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(
                f"{name}[{i}] is {t!r} ({type(t).__name__}); every entry must be a str. "
                "Drop or fill missing texts before fitting."
            )
        bad = _SURROGATE.search(t)
        if bad:
            raise ValueError(
                f"{name}[{i}] holds a lone surrogate {bad.group()!r} at character {bad.start()} "
                f"({t[max(0, bad.start() - 20) : bad.start() + 5]!r}): not Unicode text, so no tokenizer can "
                "read it. It comes from bytes decoded with errors='surrogateescape' or a string cut inside a "
                "UTF-16 pair. Decode the source as UTF-8, or clean the text, e.g. "
                "t.encode('utf-8', 'replace').decode('utf-8')."
            )
        if not allow_empty and not WORD_PATTERN.search(t):
            raise ValueError(
                f"{name}[{i}] = {t!r} has no word (empty, whitespace or punctuation only). "
                "Remove such texts; they have nothing to attribute."
            )
    return texts


def check_labels(y, n_texts, *, owner=None):
    """``y`` as a 1-D array with one label per text.

    ``owner`` names the estimator in the message when ``y`` is missing (a prior
    explains each text's gold label, so it cannot do without one). Refused,
    with what to do: a set or dict, missing labels (None, NaN, ``pd.NA``),
    and labels of mixed types (``["a", 1]``), which NumPy would silently turn
    into strings (``1`` becoming ``"1"``).

    Examples
    --------
    >>> check_labels(["a", "b"], 2)
    array(['a', 'b'], dtype='<U1')
    """
    if y is None:
        who = f"{owner} needs" if owner else "This estimator needs"
        raise ValueError(f"{who} the labels y: priors are computed for each text's gold label.")
    _refuse_unordered(y, "y")
    if not (isinstance(y, np.ndarray) and y.dtype != object):
        _check_label_values(y, "y")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one label per text (1-D), got shape {y.shape}.")
    if len(y) != n_texts:
        raise ValueError(f"X and y have different lengths: {n_texts} texts and {len(y)} labels.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinite labels; drop those rows first.")
    return y


def _check_label_values(y, name):
    """No missing labels and one kind of label (strings or numbers), before NumPy coerces them."""
    values = y.tolist() if hasattr(y, "tolist") else list(y)
    if values and isinstance(values[0], list):  # a 2-D input: the shape check names it
        return
    missing = [i for i, v in enumerate(values) if _missing(v)]
    if missing:
        raise ValueError(
            f"{name} has {len(missing)} missing labels (None, NaN or pd.NA), first at row {missing[0]}. "
            "Drop those rows from X and y first (for a DataFrame: df.dropna(subset=[label_column]))."
        )
    kinds = {}
    for v in values:
        kind = "str" if isinstance(v, (str, np.str_)) else "number" if isinstance(v, numbers.Number) else \
            type(v).__name__
        kinds.setdefault(kind, v)
    if len(kinds) > 1:
        shown = ", ".join(f"{v!r} ({k})" for k, v in kinds.items())
        raise TypeError(
            f"{name} mixes label types: {shown}. They would be turned into strings without a word, so 1 "
            "and '1' would merge. Give every label one type, e.g. y = [str(v) for v in y]."
        )


def check_known_labels(y, classes, *, what="fit"):
    """Raise, naming them, if labels of ``y`` are not among ``classes``."""
    classes = np.asarray(classes).tolist()
    known = set(classes)
    unknown = sorted({v for v in np.asarray(y).tolist() if v not in known}, key=str)
    if unknown:
        shown = ", ".join(map(repr, classes[:5]))
        raise ValueError(
            f"Labels {unknown[:5]} were not seen in {what} ({len(known)} known labels: {shown}, ...). "
            "Refit with data that contains them, or pass the full label space."
        )


def check_label_space(labels):
    """The label space as an array: no duplicates, at least two labels, one type, none missing."""
    labels = list(labels)
    _check_label_values(labels, "labels")
    classes = np.asarray(labels)
    if len(np.unique(classes)) != len(classes):
        raise ValueError("labels contains duplicates; each label must appear once.")
    check_min_classes(classes)
    return classes


def check_min_classes(classes):
    """At least two classes: with one, every probability is 1 and every attribution 0."""
    if len(classes) < 2:
        shown = repr(np.asarray(classes).tolist()[0]) if len(classes) else "none"
        raise ValueError(
            f"Only one class ({shown}) in the label space. A classifier and a class-aware prior need at "
            "least two: with one label every probability is 1 and every prior would be 0."
        )


def text_input_tags(tags, *, y_required=False):
    """Declare in scikit-learn tags that an estimator takes texts, not a 2-D numeric array.

    scikit-learn then skips its numeric-array checks with that reason;
    ``tests/test_estimator_checks.py`` runs the checks that apply to texts.
    Prior transformers also need ``y`` (they explain each text's gold label).
    """
    tags.input_tags.string = True
    tags.input_tags.two_d_array = False
    if y_required:
        tags.target_tags.required = True
    return tags
