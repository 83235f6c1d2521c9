"""The paper's evaluation as reusable steps: confusable subsets, the method zoo, one scored run.

Used by the main job (``python -m sklearn_cap demo``) and by
``benchmarks/reproduce.py``; usable on one's own data::

    methods = make_methods(encoder, scorer="embedding")
    result = run_method("cap_hybrid_mean", methods, X_train, y_train, X_test, y_test, adversarial)
"""

import time

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator

from .adversarial import make_adversarial
from .classifier import ExplanationGuidedClassifier
from .metrics import class_keywords, faithfulness
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


def make_methods(encoder, *, scorer="embedding", n_samples=100, lam=0.1, epochs=15, learning_rate=1e-4,
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
    epochs : int, default=15
        Training epochs of the classifier.
    learning_rate : float, default=1e-4
        The classifier's learning rate.
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


def adversarial_sets(X_test, y_test, keywords, random_state=0):
    """Keyword-addition and keyword-replacement versions of a test set.

    Parameters
    ----------
    X_test : list of str
        Test texts.
    y_test : array-like of shape (n_texts,)
        Their gold labels; every label needs an entry in ``keywords``.
    keywords : dict of label -> list of (word, score)
        Class keywords, e.g. from :func:`sklearn_cap.keywords.logodds_keywords`.
    random_state : int, RandomState instance or None, default=0
        Seeds where the keywords go (see :func:`~sklearn_cap.adversarial.make_adversarial`).

    Returns
    -------
    dict of str -> AdversarialSet
        ``"addition"`` and ``"replacement"`` sets.
    """
    return {kind: make_adversarial(X_test, y_test, keywords, kind=kind, random_state=random_state)
            for kind in ("addition", "replacement")}


def evaluate(clf, X_test, y_test, adversarial, *, explain_steps=16):
    """Accuracy, adversarial accuracies, comprehensiveness and sufficiency of the model's own IG explanations.

    Parameters
    ----------
    clf : ExplanationGuidedClassifier
        The fitted classifier.
    X_test : list of str
        Test texts.
    y_test : array-like of shape (n_texts,)
        Their gold labels.
    adversarial : dict of str -> AdversarialSet
        Adversarial test sets by kind, from :func:`adversarial_sets`.
    explain_steps : int, default=16
        IG steps of the explanations the faithfulness metrics score.

    Returns
    -------
    dict
        ``"accuracy"``, ``"adv_<kind>"`` per adversarial set (NaN for an
        empty one), ``"comprehensiveness"``, ``"sufficiency"``, and
        ``"explanations"``: the explanations of ``X_test`` for the predicted
        classes (a WordAttributions).
    """
    out = {"accuracy": float(clf.score(X_test, y_test))}
    for kind, adv in adversarial.items():
        out[f"adv_{kind}"] = float(clf.score(adv.texts, adv.labels)) if len(adv) else float("nan")
    ex = clf.explain(X_test, method="ig", n_steps=explain_steps)
    out.update({k: v for k, v in faithfulness(clf, ex).items() if k != "per_k"})
    out["explanations"] = ex
    return out


def keywords_from(priors, labels, top_k=10):
    """Class keywords (for the adversarial sets) from training priors."""
    return class_keywords(priors, labels, top_k=top_k)
