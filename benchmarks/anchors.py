"""Anchors of the results page: what a user would try before an explanation-guided classifier.

- ``frozen_lr`` (in ``registry.py``): the frozen encoder's mean-pooled,
  L2-normalised features and a logistic regression whose ``C`` is chosen by
  3-fold CV on the training sample (``LinearProbe(C="cv")``, no fine-tuning).
- ``zero_shot``: :class:`LabelNameHead`, the nearest label-name embedding;
  the training texts only give the label space.
- ``setfit``: :class:`SetFitClassifier`, the ``setfit`` package (a
  benchmark-only extra: ``pip install setfit``) on the same MiniLM body,
  with its defaults.

The first two are :class:`~sklearn_cap.ExplanationGuidedClassifier` objects
whose training is one stage, so they predict, explain and are scored like
every other row.
"""

import tempfile

import numpy as np
import torch

from sklearn_cap.encoding import EncodedTexts
from sklearn_cap.stages import Stage
from sklearn_cap.text import WordAttributions


def label_text(label):
    """A label as words: ``"card_arrival"`` -> ``"card arrival"``."""
    return str(label).replace("_", " ").replace("-", " ").strip()


class LabelNameHead(Stage):
    """Set the head to the encoder's normalised embedding of each label's name (zero-shot; trains nothing).

    With normalised features the logits are ``scale`` times the cosine of
    a text and each label name.

    Parameters
    ----------
    scale : float, default=20.0
        Logit scale (a temperature of 0.05), so that probabilities are not flat.
    """

    def __init__(self, scale=20.0):
        self.scale = scale

    def run(self, clf, data):
        if not hasattr(clf.model_, "features"):
            raise ValueError("LabelNameHead reads pooled features: use pooling='mean'.")
        names = WordAttributions([label_text(c) for c in clf.classes_])
        feats = clf.features(EncodedTexts(clf.tokenizer_, names, clf.max_length))
        weight = feats / np.linalg.norm(feats, axis=1, keepdims=True) * float(self.scale)
        head = clf.model_.classifier
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
            if head.bias is not None:
                head.bias.zero_()


class SetFitClassifier:
    """SetFit (Tunstall et al. 2022) with its defaults on the embedded MiniLM body: ``fit`` and ``predict``.

    Parameters
    ----------
    num_iterations : int, default=20
        Pairs drawn per training text for the contrastive body stage.
    num_epochs : int, default=1
    random_state : int, default=0
    """

    def __init__(self, num_iterations=20, num_epochs=1, random_state=0):
        self.num_iterations = num_iterations
        self.num_epochs = num_epochs
        self.random_state = random_state

    def fit(self, X, y):
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        from sklearn_cap import embedded

        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        self.model_ = SetFitModel.from_pretrained(str(embedded.ENCODER))
        # SetFit saves checkpoints (about 90 MB each) under ./checkpoints by default: keep them out of the checkout.
        with tempfile.TemporaryDirectory(prefix="setfit_") as out:
            args = TrainingArguments(output_dir=out, num_iterations=self.num_iterations, num_epochs=self.num_epochs,
                                     seed=int(self.random_state), show_progress_bar=False)
            Trainer(model=self.model_, args=args,
                    train_dataset=Dataset.from_dict({"text": list(X), "label": y_idx.tolist()})).train()
        return self

    def predict_proba(self, X):
        return np.asarray(self.model_.predict_proba(list(X)))

    def predict(self, X):
        return self.classes_[np.asarray(self.model_.predict(list(X))).astype(int)]
