"""Runs whose predictions are pinned across refactors of the training loop.

``python -m tests._pinning`` (from the repository root) writes
``tests/data/pinned_predictions.json`` with the current code; the test
``tests/test_training.py::test_refactor_changed_no_prediction`` trains the
same runs and compares ``predict_proba`` to 1e-6. The file was written at
commit 9e6fb7b, before the training loop became callbacks and stages.
"""

import json
import sys
from pathlib import Path

import numpy as np

PINNED = Path(__file__).resolve().parent / "data" / "pinned_predictions.json"

# name -> classifier parameters; every run also gets COMMON. The recipe parameters name the only
# recipe there was when the file was written (the LP-FT recipe and its defaults came after it).
RECIPE = dict(head_init="random", normalize_features=False, head_learning_rate=None)
COMMON = dict(epochs=3, batch_size=16, learning_rate=2e-3, random_state=0, progress_bar=False, **RECIPE)
RUNS = {
    "ce": dict(beta=0),
    "grad_input": dict(beta=1.0, attribution="grad_input"),
    "ig": dict(beta=1.0, attribution="ig", n_steps=3),
    "ig_stochastic": dict(beta=1.0, attribution="ig_stochastic"),
    "ce_mean_early_stopping": dict(beta=0, pooling="mean", early_stopping=True, epochs=4),
}


def build_tiny_encoder(folder):
    """The tests' tiny random BERT (tests/conftest.py), written to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import build_tokenizer

    tok = build_tokenizer(folder, cls_sep=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def run_all(folder, extra=None):
    """``predict_proba`` of every pinned run on 24 texts, as nested lists."""
    from sklearn_cap import ExplanationGuidedClassifier, WordAttributions

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_classifier import planted_data

    X, y, P = planted_data(96)
    out = {}
    for name, params in RUNS.items():
        common = COMMON if "head_init" in ExplanationGuidedClassifier().get_params() else \
            {k: v for k, v in COMMON.items() if k not in RECIPE}
        clf = ExplanationGuidedClassifier(folder, **{**common, **params, **(extra or {})})
        clf.fit(WordAttributions(X, P), y)
        out[name] = clf.predict_proba(X[:24]).tolist()
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = run_all(build_tiny_encoder(tmp))
    PINNED.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {PINNED}: {', '.join(result)}")
