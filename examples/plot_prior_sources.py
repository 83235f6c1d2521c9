"""
Priors from each source, side by side
=====================================

The same three BANKING77 training texts under every prior the library has:
CAP from the embedding scorer and from the embedded SmolLM2 LLM, the global
(LAAT-style) prior, the IG and LIME explanations of a reference classifier,
and CAP Hybrid, their per-text min-max normalised mean. Each row is scaled on
its own; the numbers are the raw values.

Settings are small so that the page builds in minutes on a CPU: 16 masked
variants per text for the LLM (the paper uses 100), a reference classifier
trained on 30 texts.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, GlobalPriorTransformer,
                         IGPriorTransformer, LIMEPriorTransformer, PriorUnion, embedded)
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.experiment import confusable_classes
from sklearn_cap.report import plot_attributions

X, y = load_banking77("train", return_X_y=True)
classes = confusable_classes(y, 6, seed_label="card_arrival")
keep = np.isin(y, classes)
X_few, y_few, _ = sample_few_shot(X[keep], y[keep], 5, random_state=0)
X_few = list(X_few)
rows = [0, 5, 10]
texts, gold = [X_few[i] for i in rows], [y_few[i] for i in rows]

# %%
# The reference classifier whose explanations the IG and LIME priors are; it
# is trained once and passed as ``prefit``.
reference = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=8,
                                        random_state=0, progress_bar=False).fit(X_few, y_few)

# %%
# Every prior of the three texts, for their gold intents, over the label space
# of all six intents.
quiet = dict(progress_bar=False)
priors = {
    "CAP (embedding)": CAPPriorTransformer("embedding", labels=classes, **quiet).fit_transform(texts, gold),
    "CAP (SmolLM2)": CAPPriorTransformer(embedded.LLM, labels=classes, n_samples=16, **quiet)
    .fit_transform(texts, gold),
    "global": GlobalPriorTransformer("embedding", labels=classes, **quiet).fit(X_few, y_few)
    .compute_priors(texts, gold),
    "IG": IGPriorTransformer(reference, prefit=True, n_steps=20, **quiet).fit_transform(texts, gold),
    "LIME": LIMEPriorTransformer(reference, prefit=True, num_samples=500, **quiet).fit_transform(texts, gold),
}
# CAP Hybrid: what a PriorUnion of CAP, IG and LIME returns for these texts.
hybrid = PriorUnion([("cap", CAPPriorTransformer()), ("ig", IGPriorTransformer()), ("lime", LIMEPriorTransformer())],
                    aggregate="mean")
priors["CAP Hybrid (mean)"] = hybrid.fuse(texts, {"cap": priors["CAP (embedding)"], "ig": priors["IG"],
                                                  "lime": priors["LIME"]})

# %%
fig, axes = plt.subplots(len(texts), 1, figsize=(10, 2.6 * len(texts)))
for i, ax in enumerate(axes):
    plot_attributions(priors, i, ax=ax, title=f"gold intent: {gold[i]}")
fig.tight_layout()
