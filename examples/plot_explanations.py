"""
Explanations of a vanilla and a CAP-guided classifier
=====================================================

Two MiniLM classifiers on six confusable BANKING77 intents, five training
texts per intent: one trained on cross-entropy alone, one also aligned
(``beta=1``) with CAP priors from the embedding scorer. We draw each model's
explanation (gradient x input, the attribution it was trained on) of a few
test texts, and the keyword overlap between intents under each model's
explanations of its training texts: a model that leans on words shared by
confusable intents has overlapping keywords.

One seed of a tiny setting: it shows what to look at, not whether CAP helps
(for that, see :doc:`/results`).
"""

# %%
# Data: six intents whose names are closest to ``card_arrival``.
import matplotlib.pyplot as plt
import numpy as np

from sklearn_cap import CAPPriorTransformer, ExplanationGuidedClassifier, embedded
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.experiment import confusable_classes
from sklearn_cap.metrics import class_keywords, keyword_overlap
from sklearn_cap.report import plot_attributions, plot_keyword_overlap

X, y = load_banking77("train", return_X_y=True)
X_test, y_test = load_banking77("test", return_X_y=True)
classes = confusable_classes(y, 6, seed_label="card_arrival")
keep = np.isin(y, classes)
X_few, y_few, _ = sample_few_shot(X[keep], y[keep], 5, random_state=0)
X_few = list(X_few)
test = np.isin(y_test, classes)
X_test, y_test = list(X_test[test]), y_test[test]
print(classes)

# %%
# The vanilla model and the CAP-guided one differ only in ``beta`` and the
# priors they are given.
params = dict(epochs=8, attribution="grad_input", random_state=0, progress_bar=False)
vanilla = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, **params).fit(X_few, y_few)
priors = CAPPriorTransformer("embedding", progress_bar=False).fit_transform(X_few, y_few)
guided = ExplanationGuidedClassifier(embedded.ENCODER, beta=1.0, **params).fit(X_few, y_few, priors=priors)
for name, model in [("vanilla", vanilla), ("CAP-guided", guided)]:
    print(f"{name}: accuracy {model.score(X_test, y_test):.3f} on {len(X_test)} test texts")

# %%
# Each model's explanation of three test texts (of three intents), for the gold intent.
shown = [int(np.flatnonzero(y_test == c)[0]) for c in classes[:3]]
texts = [X_test[i] for i in shown]
gold = [y_test[i] for i in shown]
explained = {name: model.explain(texts, gold, method="grad_input")
             for name, model in [("vanilla", vanilla), ("CAP-guided", guided)]}
fig, axes = plt.subplots(len(shown), 1, figsize=(9, 1.6 * len(shown)))
for i, ax in enumerate(axes):
    plot_attributions(explained, i, ax=ax, title=f"gold intent: {gold[i]}")
fig.tight_layout()

# %%
# Keyword overlap between intents, under each model's explanations of its
# own training texts (top 10 words per intent, Jaccard overlap).
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
for ax, (name, model) in zip(axes, [("vanilla", vanilla), ("CAP-guided", guided)]):
    overlap, names = keyword_overlap(class_keywords(model.explain(X_few, y_few, method="grad_input"), y_few))
    plot_keyword_overlap(overlap, names, ax=ax, title=f"{name}: mean off-diagonal "
                         f"{overlap[~np.eye(len(names), dtype=bool)].mean():.3f}")
fig.tight_layout()
