"""The paper's evaluation as reusable steps: confusable subsets, a small method zoo, one scored run.

The main job (``python -m sklearn_cap demo``) is built from these steps.
:func:`evaluate` is also how ``benchmarks/reproduce.py`` scores every cell of
the results page, and :func:`adversarial_sets` with the method-free keywords
and partners of :mod:`sklearn_cap.keywords` builds its sets the way the
page's stored ones were built (``benchmarks/make_adversarial.py``, from the
full training split). The *methods* differ: the results page's
are defined in ``benchmarks/registry.py`` (IG and LIME priors from reference
models cross-fitted over 3 folds, among others), while :func:`make_methods`
gives the demo's, whose IG and LIME priors explain the fitted vanilla model;
its ``"cap_hybrid_mean"`` is built as the page's "CAP Hybrid mean, in-sample
reference" row is, at the library's default precision. On one's own data::

    from sklearn_cap.keywords import confusable_partners, logodds_keywords

    parts = make_methods(encoder, scorer="embedding")
    vanilla, _, _ = fit_method("vanilla", parts, X_train, y_train)
    clf, priors, seconds = fit_method("cap_hybrid_mean", parts, X_train, y_train, vanilla=vanilla)
    keywords = logodds_keywords(X_train, y_train)
    adversarial = adversarial_sets(X_test, y_test, keywords, partners=confusable_partners(X_train, y_train))
    result = evaluate(clf, {"test": (X_test, y_test), **adversarial})
    result["metrics"]  # accuracy per set, faithfulness per attribution
"""

import time

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator

from .adversarial import AdversarialSet, make_adversarial
from .classifier import ExplanationGuidedClassifier
from .metrics import DEFAULT_K, class_keywords, faithfulness
from .priors import CAPPriorTransformer, IGPriorTransformer, LIMEPriorTransformer, PriorUnion
from .scorers import EmbeddingScorer, Task

__all__ = ["confusable_classes", "make_methods", "METHODS", "fit_method", "evaluate", "adversarial_sets"]

METHODS = ("vanilla", "ig", "lime", "cap", "cap_hybrid_mean", "cap_hybrid_max")


def confusable_classes(labels, n, *, seed_label=None, encoder=None):
    """``n`` labels whose names are closest to ``seed_label`` (itself included) in embedding space.

    A stand-in for "fine-grained, confusable intents" that needs no model
    training: label names are embedded with the sentence encoder (the
    embedded MiniLM by default) and the ``n - 1`` nearest to the seed are
    taken. Without a seed, the label whose ``n - 1`` nearest neighbours are
    closest on average.

    Parameters
    ----------
    labels : iterable of str
        The label space; duplicates are dropped.
    n : int
        Size of the subset, at least 2.
    seed_label : str, default=None
        The label the subset is built around (one of ``labels``); None picks
        the label whose nearest neighbours are closest on average.
    encoder : str or path-like, default=None
        Sentence encoder for the label names (see
        :class:`~sklearn_cap.scorers.EmbeddingScorer`); None: the embedded MiniLM.

    Returns
    -------
    list of str
        ``n`` labels, sorted; every label, sorted, when there are at most ``n``.
    """
    labels = sorted(set(labels))
    if n < 2:
        raise ValueError(f"A confusable subset needs at least 2 labels, got n={n}.")
    if n >= len(labels):
        return labels
    emb = EmbeddingScorer(encoder).embed(Task.from_labels(labels).label_names).numpy()
    sim = emb @ emb.T
    if seed_label is None:
        nearest = -np.sort(-sim, axis=1)[:, 1:n]
        seed = int(np.argmax(nearest.mean(1)))
    else:
        seed = labels.index(seed_label)
    order = np.argsort(-sim[seed], kind="stable")[:n]
    return sorted(labels[i] for i in order)


def make_methods(encoder, *, scorer="embedding", n_samples=100, lam=0.1, epochs=8, learning_rate=3e-5,
                 batch_size=16, beta=1.0, attribution="grad_input", lime_samples=500, ig_steps=20,
                 random_state=0, cache_dir=None, progress_bar=False):
    """The classifier and the prior of every method of the paper's table, unfitted.

    Every method trains a clone of the classifier with its prior; IG and
    LIME priors explain the fitted vanilla model (``prefit``), which is what
    a plain fine-tuned reference classifier is. :func:`fit_method` puts the
    parts together.

    Parameters
    ----------
    encoder : str or path-like
        The classifier's encoder (``model`` of
        :class:`~sklearn_cap.ExplanationGuidedClassifier`).
    scorer : BaseScorer or str, default="embedding"
        The CAP prior's scorer.
    n_samples : int, default=100
        Masks per text of the CAP prior.
    lam : float, default=0.1
        Ridge penalty of the CAP prior.
    epochs : int, default=8
        Training epochs of the classifier (the LP-FT recipe's at 5 shots).
    learning_rate : float, default=3e-5
        The classifier's learning rate (its head's is ten times it, from
        the linear probe it starts from).
    batch_size : int, default=16
        The classifier's training batch size.
    beta : float, default=1.0
        Weight of the classifier's attribution loss (the vanilla model is
        trained with ``beta=0`` by :func:`fit_method`).
    attribution : {"ig", "ig_stochastic", "grad_input"}, default="grad_input"
        The classifier's self-attribution in the loss.
    lime_samples : int, default=500
        Perturbations per text of the LIME prior.
    ig_steps : int, default=20
        Riemann steps of the IG prior.
    random_state : int, RandomState instance or None, default=0
        Seeds the classifier (the CAP masks are seeded with 0).
    cache_dir : str, path-like or False, default=None
        The CAP prior's score cache folder.
    progress_bar : bool or "auto", default=False
        Progress bars of the classifier and the priors.

    Returns
    -------
    dict
        ``"classifier"``: the :class:`~sklearn_cap.ExplanationGuidedClassifier`;
        ``"cap"``, ``"ig"``, ``"lime"``: the
        :class:`~sklearn_cap.CAPPriorTransformer`, and the prefit
        :class:`~sklearn_cap.IGPriorTransformer` and
        :class:`~sklearn_cap.LIMEPriorTransformer` (with no estimator yet).
    """
    clf = ExplanationGuidedClassifier(
        encoder, beta=beta, attribution=attribution, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, random_state=random_state, progress_bar=progress_bar,
    )
    cap = CAPPriorTransformer(scorer, n_samples=n_samples, lam=lam, random_state=0, cache_dir=cache_dir,
                              progress_bar=progress_bar)
    return {
        "classifier": clf,
        "cap": cap,
        "ig": IGPriorTransformer(prefit=True, n_steps=ig_steps, progress_bar=progress_bar),
        "lime": LIMEPriorTransformer(prefit=True, num_samples=lime_samples, progress_bar=progress_bar),
    }


def _prior(method, parts, vanilla):
    frozen = FrozenEstimator(vanilla)  # survives clone(): the prefit reference stays fitted
    ig = clone(parts["ig"]).set_params(estimator=frozen)
    lime = clone(parts["lime"]).set_params(estimator=frozen)
    cap = clone(parts["cap"])
    if method == "ig":
        return ig
    if method == "lime":
        return lime
    if method == "cap":
        return cap
    if method in ("cap_hybrid_mean", "cap_hybrid_max"):
        return PriorUnion([("cap", cap), ("ig", ig), ("lime", lime)], aggregate=method.rsplit("_", 1)[1])
    raise ValueError(f"Unknown method {method!r}; choose from {METHODS}.")


def fit_method(method, parts, X, y, *, vanilla=None):
    """Fit one method; returns (classifier, training priors or None, seconds).

    ``vanilla`` (a fitted vanilla classifier) is the reference model of the
    IG and LIME priors; it is trained here when not given.

    Parameters
    ----------
    method : {"vanilla", "ig", "lime", "cap", "cap_hybrid_mean", "cap_hybrid_max"}
        The method (one of ``METHODS``).
    parts : dict
        The classifier and priors from :func:`make_methods`.
    X : list of str
        Training texts.
    y : array-like of shape (n_texts,)
        Training labels.
    vanilla : ExplanationGuidedClassifier, default=None
        A vanilla classifier (``beta=0``) fitted on ``X, y``; None trains one.

    Returns
    -------
    clf : ExplanationGuidedClassifier
        The fitted classifier (``vanilla`` itself for ``"vanilla"``).
    priors : WordAttributions or None
        The training priors; None for ``"vanilla"``.
    seconds : float
        Wall-clock time of the fit, the vanilla model's training included
        when it was trained here.
    """
    start = time.perf_counter()
    if vanilla is None:
        vanilla = clone(parts["classifier"]).set_params(beta=0).fit(X, y)
    if method == "vanilla":
        return vanilla, None, time.perf_counter() - start
    priors = _prior(method, parts, vanilla).fit_transform(X, y)
    clf = clone(parts["classifier"]).fit(priors, y)
    return clf, priors, time.perf_counter() - start


def adversarial_sets(X_test, y_test, keywords, random_state=0, *, partners=None):
    """Keyword-addition and keyword-replacement versions of a test set.

    Parameters
    ----------
    X_test : list of str
        Test texts.
    y_test : array-like of shape (n_texts,)
        Their gold labels; every label needs an entry in ``keywords``.
    keywords : dict of label -> list of (word, score)
        Class keywords: :func:`sklearn_cap.keywords.logodds_keywords` of the
        training texts for keywords that no prior under test chose (as the
        results page's stored sets), or :func:`keywords_from` training priors.
    random_state : int, RandomState instance or None, default=0
        Seeds where the keywords go (see :func:`~sklearn_cap.adversarial.make_adversarial`).
    partners : dict of label -> label, default=None
        Each class's confusable class, e.g. from
        :func:`sklearn_cap.keywords.confusable_partners`; None: the class whose
        keywords overlap most.

    Returns
    -------
    dict of str -> AdversarialSet
        ``"adv_addition"`` and ``"adv_replacement"`` sets (the names of the
        results page's cells).

    Examples
    --------
    >>> from sklearn_cap.keywords import confusable_partners, logodds_keywords
    >>> X = ["my card is late", "card not arrived", "a fee was charged", "why this fee"]
    >>> y = ["card_arrival", "card_arrival", "fee", "fee"]
    >>> kw = logodds_keywords(X, y, top_k=2, min_count=1)
    >>> sets = adversarial_sets(["card still late"], ["card_arrival"], kw, partners=confusable_partners(X, y))
    >>> sorted(sets), sets["adv_addition"].edits[0].keyword
    (['adv_addition', 'adv_replacement'], 'fee')
    """
    return {f"adv_{kind}": make_adversarial(X_test, y_test, keywords, kind=kind, partners=partners,
                                            random_state=random_state)
            for kind in ("addition", "replacement")}


def evaluate(clf, sets, *, explain=None, attributions=None, k=DEFAULT_K, ig_steps=16, batch_size=16):
    """Accuracy on each test set and the faithfulness (AOPC) of the model's own explanations.

    The one scoring of a fitted model: the main job's and that of every cell
    of ``benchmarks/reproduce.py``.

    Parameters
    ----------
    clf : ExplanationGuidedClassifier
        The fitted classifier (any fitted classifier with ``predict`` when
        ``attributions`` is empty).
    sets : dict of str -> AdversarialSet or (texts, labels)
        The test sets by name, e.g. ``{"test": (X_test, y_test)}`` and those of
        :func:`adversarial_sets`.
    explain : list of str, default=None
        The texts whose explanations the faithfulness metrics score; None:
        the texts of the first set.
    attributions : sequence of {"grad_input", "ig"}, default=None
        The attributions whose faithfulness is measured; None: the one the
        model was trained to align (its ``attribution``; exact IG for
        stochastic IG), then IG. Metrics are named after them (an
        attribution object after its ``name``, else its class).
    k : tuple of float, default=DEFAULT_K
        Fractions of the top-attributed words the AOPC metrics remove or keep.
    ig_steps : int, default=16
        IG steps of the explanations.
    batch_size : int, default=16
        Texts per explanation pass.

    Returns
    -------
    dict
        ``"metrics"``: each set's accuracy by its name (NaN for an empty
        set), then ``"comprehensiveness_<attribution>"`` and
        ``"sufficiency_<attribution>"``; ``"correct"``: each set's per-text
        correctness (bool arrays); ``"explanations"``: the WordAttributions of
        ``explain`` for the predicted classes, by attribution.
    """
    sets = {name: (s.texts, s.labels) if isinstance(s, AdversarialSet) else s for name, s in sets.items()}
    metrics, correct, explanations = {}, {}, {}
    for name, (texts, labels) in sets.items():
        correct[name] = np.asarray(clf.predict(texts)) == np.asarray(labels) if len(texts) else np.zeros(0, bool)
        metrics[name] = float(correct[name].mean()) if len(texts) else float("nan")
    if attributions is None:
        # explain() reads a model trained with stochastic IG with exact IG
        trained = "ig" if clf.attribution == "ig_stochastic" else clf.attribution
        attributions = list(dict.fromkeys([trained, "ig"]))
    if explain is None:
        explain = list(next(iter(sets.values()))[0])
    for method in attributions:
        name = method if isinstance(method, str) else getattr(method, "name", type(method).__name__)
        ex = clf.explain(explain, method=method, n_steps=ig_steps, batch_size=batch_size)
        f = faithfulness(clf, ex, k=tuple(k))
        metrics[f"comprehensiveness_{name}"] = f["comprehensiveness"]
        metrics[f"sufficiency_{name}"] = f["sufficiency"]
        explanations[name] = ex
    return {"metrics": metrics, "correct": correct, "explanations": explanations}


def keywords_from(priors, labels, top_k=10):
    """Class keywords from training priors (the keyword overlap of a prior; see :func:`adversarial_sets`).

    Parameters
    ----------
    priors : WordAttributions
        Training priors, one row per text.
    labels : array-like of shape (n_texts,)
        The label of each text.
    top_k : int, default=10
        Keywords per class.

    Returns
    -------
    dict of label -> list of (word, score)
        See :func:`sklearn_cap.metrics.class_keywords`.
    """
    return class_keywords(priors, labels, top_k=top_k)
