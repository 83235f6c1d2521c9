"""CAP scoring through a real OpenAI-compatible server against the in-process scorer, same weights.

Starts llama-cpp-python's server on loopback with the embedded SmolLM2 GGUF
(Q4_1), scores the same masked variants through ``OpenAIScorer`` and through
``CausalLMScorer`` (transformers, the GGUF dequantised to float32, plain
prompt layout), and prints, from one run:

- seconds per prompt on each path;
- agreement of the raw log-probabilities (absolute difference, Spearman);
- agreement of the CAP priors per text (Spearman of the word weights).

Needs ``llama-cpp-python[server]`` built for this CPU (see
``tests/test_real_server.py``) and the data sets (``$SKLEARN_CAP_DATA``)::

    python benchmarks/bench_server.py [--texts 10] [--n-samples 16]
"""

import argparse
import tempfile
import time

import numpy as np
from scipy.stats import spearmanr

from sklearn_cap import CAPPriorTransformer, embedded
from sklearn_cap.datasets import load_banking77
from sklearn_cap.experiment import confusable_classes
from sklearn_cap.scorers import DEFAULT_INSTRUCTION, CausalLMScorer, OpenAIScorer

from llama_server import llama_server


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--n-classes", type=int, default=5)
    args = parser.parse_args()

    X, y = load_banking77("train", return_X_y=True)
    classes = confusable_classes(y, args.n_classes, seed_label="card_arrival")
    keep = np.flatnonzero(np.isin(y, classes))
    idx = np.random.default_rng(0).choice(keep, args.texts, replace=False)
    texts, labels = list(X[idx]), list(y[idx])

    with llama_server() as base:
        remote = OpenAIScorer(base, "smollm2", batch_size=1, max_concurrency=1, timeout=300, max_retries=1)
        local = CausalLMScorer(embedded.LLM, use_chat_template=False)
        # llama-cpp-python reads echoed log-probabilities right only after a BOS token (#1983).
        kw = dict(labels=classes, instruction="<|im_start|>" + DEFAULT_INSTRUCTION, n_samples=args.n_samples,
                  random_state=0, progress_bar=False)
        results = {}
        for name, scorer in [("server", remote), ("in-process", local)]:
            cap = CAPPriorTransformer(scorer, cache_dir=tempfile.mkdtemp(), **kw)
            t = time.perf_counter()
            priors = cap.fit_transform(texts, labels)
            results[name] = (np.asarray(priors), time.perf_counter() - t, cap.n_scored_)
        task = cap.task_
        pairs_t = [t for t in texts for _ in task.label_names]
        pairs_a = list(task.label_names) * len(texts)
        raw = {name: scorer.score(pairs_t, pairs_a, task) for name, scorer in [("server", remote),
                                                                               ("in-process", local)]}

    (a, ta, na), (b, tb, nb) = results["server"], results["in-process"]
    print(f"CAP priors of {args.texts} BANKING77 texts, {len(classes)}-label prompt, n_samples={args.n_samples}, "
          f"embedded SmolLM2-135M (Q4_1 GGUF), 2 threads")
    print(f"  llama-cpp-python server via OpenAIScorer: {na} prompts, {ta:.1f} s, {ta / na:.3f} s per prompt")
    print(f"  transformers in process (CausalLMScorer):  {nb} prompts, {tb:.1f} s, {tb / nb:.3f} s per prompt")
    d = np.abs(raw["server"] - raw["in-process"])
    print(f"  log P(label | text), {len(d)} (text, label) pairs: |difference| median {np.median(d):.3f}, "
          f"max {d.max():.3f}; Spearman {spearmanr(raw['server'], raw['in-process']).statistic:.3f}")
    rhos = []
    for i in range(len(texts)):
        m = np.isfinite(a[i]) & np.isfinite(b[i])
        if m.sum() >= 3:
            rhos.append(spearmanr(a[i][m], b[i][m]).statistic)
    rhos = np.array(rhos)
    diff = np.abs(a - b)[np.isfinite(a) & np.isfinite(b)]
    print(f"  CAP prior agreement, Spearman per text: median {np.median(rhos):.3f}, min {rhos.min():.3f} "
          f"({len(rhos)} texts with 3+ words)")
    print(f"  |prior difference| (raw ridge weights): median {np.median(diff):.4f}, max {diff.max():.4f}")


if __name__ == "__main__":
    main()
