"""Inference speed and accuracy of one trained classifier on four paths, against a measured FLOP floor.

One run prints, for torch float32, torch bfloat16 (autocast), ONNX Runtime
float32 and ONNX Runtime int8 (dynamic quantisation, one scale per weight column, the
default, and one per matrix):

- batch-1 latency, p50 and p95 over ``--n-latency`` BANKING77 test texts
  (each text alone, as a chat service sees them);
- batch-64 throughput over the full test split (length-sorted batches of 64),
  and the accuracy of the same predictions;

plus torch float32 with the word alignment that ``predict`` did before issue 30
(``forward(encode(X))``), and a FLOP floor: the model's matrix products
(attention projections, scores, feed-forward, at the test texts' median token
count) timed as plain ``torch.matmul`` calls on this CPU, i.e. what the
arithmetic alone costs here.

The model is the embedded MiniLM trained with the default recipe (``beta=0``)
on a 5-shot sample of the training split (``--seed``), or a folder of
``save_pretrained`` (``--model-folder``). ``--quick`` is a smoke test (4
classes, 3 texts each, one epoch, 24 test texts): its numbers mean nothing.

Run::

    python benchmarks/bench_inference.py [--threads 2] [--n-latency 200] [--model-folder FOLDER]
    python benchmarks/bench_inference.py --quick
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_cap import ExplanationGuidedClassifier, embedded
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.onnx_predictor import ONNXTextClassifier, quantize_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry  # noqa: E402


def train(args, X, y):
    if args.quick:
        keep = np.isin(y, np.unique(y)[:4])
        X, y, _ = sample_few_shot(np.asarray(X, dtype=object)[keep], y[keep], 3, random_state=args.seed)
    else:
        X, y, _ = sample_few_shot(X, y, 5, random_state=args.seed)
    clf = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, random_state=args.seed, progress_bar=False,
                                      epochs=1 if args.quick else 3)
    t = time.perf_counter()
    clf.fit(list(X), y)
    print(f"trained on {len(X)} texts ({len(np.unique(y))} classes) in {time.perf_counter() - t:.0f} s")
    return clf


def cpu_description():
    """The CPU's model name and the matrix instructions int8 and bfloat16 kernels use."""
    fields = registry.cpu_fields()
    if not fields:
        return "unknown CPU"
    flags = set(fields.get("flags", "").split())
    units = [f for f in ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    return f"{fields.get('model name', 'unknown CPU')} ({', '.join(units) or 'no int8/bf16 matrix instructions'})"


def latency(predict, texts, warmup=10):
    for text in texts[:warmup]:
        predict([text])
    times = []
    for text in texts:
        t = time.perf_counter()
        predict([text])
        times.append(time.perf_counter() - t)
    return 1000 * np.percentile(times, 50), 1000 * np.percentile(times, 95)


def throughput(predict, texts):
    predict(texts[:64])  # warm-up
    t = time.perf_counter()
    labels = predict(texts)
    return len(texts) / (time.perf_counter() - t), labels


def matmul_shapes(config, n_tokens, batch):
    """(group, m, k, n, count) of each matrix product of one forward pass (embeddings and head are negligible)."""
    h, f, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    d, rows = h // heads, batch * n_tokens
    return [(1, rows, h, h, 3 * L),  # query, key, value projections
            (batch * heads, n_tokens, d, n_tokens, L),  # attention scores
            (batch * heads, n_tokens, n_tokens, d, L),  # scores times values
            (1, rows, h, h, L),  # attention output
            (1, rows, h, f, L), (1, rows, f, h, L)]  # feed-forward


def flop_floor(config, n_tokens, batch, repeats):
    """GFLOP of one forward pass and the seconds its matmuls alone take here (median of ``repeats``)."""
    shapes = matmul_shapes(config, n_tokens, batch)
    flops = sum(2 * g * m * k * n * c for g, m, k, n, c in shapes)
    ops = [(torch.randn(g, m, k), torch.randn(g, k, n), c) for g, m, k, n, c in shapes]
    times = []
    with torch.inference_mode():
        for r in range(repeats + 3):  # 3 warm-up rounds
            t = time.perf_counter()
            for a, b, count in ops:
                for _ in range(count):
                    torch.matmul(a, b)
            if r >= 3:
                times.append(time.perf_counter() - t)
    return flops / 1e9, float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test on a handful of texts")
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: all)")
    parser.add_argument("--n-latency", type=int, default=200, help="test texts timed one at a time (>= 200)")
    parser.add_argument("--model-folder", default=None, help="a save_pretrained folder instead of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="where the saved and ONNX folders go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    X_test, y_test = load_banking77("test", return_X_y=True)
    X_test = list(X_test)
    n_latency = args.n_latency
    if args.quick:
        X_train, y_train = load_banking77("train", return_X_y=True)
        keep = np.isin(y_test, np.unique(y_train)[:4])
        X_test, y_test, n_latency = [x for x, k in zip(X_test, keep) if k][:24], y_test[keep][:24], 12
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_inference_"))

    if args.model_folder:
        folder = Path(args.model_folder)
    else:
        clf = train(args, *load_banking77("train", return_X_y=True))
        shots = "4 classes, 3 per class (--quick)" if args.quick else "5 per class"
        folder = clf.save_pretrained(work / "model", dataset=f"BANKING77 train, {shots}, seed {args.seed}")
    torch_fp32 = ExplanationGuidedClassifier.from_pretrained(folder, device="cpu")
    torch_bf16 = ExplanationGuidedClassifier.from_pretrained(folder, device="cpu").set_params(precision="bfloat16")
    onnx_folder = torch_fp32.export_onnx(work / "onnx", quantize=True)
    ort_fp32 = ONNXTextClassifier(onnx_folder, n_threads=threads)
    ort_int8 = ONNXTextClassifier(onnx_folder, quantized=True, n_threads=threads)
    # The same graph quantised with one scale per weight matrix (quantize_onnx's per_channel=False), for comparison.
    per_tensor = work / "onnx_per_tensor"
    shutil.copytree(onnx_folder, per_tensor, dirs_exist_ok=True)
    quantize_onnx(per_tensor, per_channel=False)
    ort_int8_tensor = ONNXTextClassifier(per_tensor, quantized=True, n_threads=threads)

    def before(texts):  # predict as it was before issue 30: the word alignment computed and not used
        return torch_fp32.classes_[torch_fp32.forward(torch_fp32.encode(texts)).argmax(1)]

    paths = [("torch float32", torch_fp32.predict), ("torch float32, predict before #30", before),
             ("torch bfloat16", torch_bf16.predict), ("ONNX Runtime float32", ort_fp32.predict),
             ("ONNX Runtime int8", ort_int8.predict), ("ONNX Runtime int8, one scale per matrix", ort_int8_tensor.predict)]
    lengths = torch_fp32.encode(X_test).lengths
    n_tokens = int(np.median(lengths))
    print(f"\nBANKING77 test: {len(X_test)} texts, median {n_tokens} tokens; batch-1 latency over the first "
          f"{n_latency}; {threads} threads; model: {folder}")
    print(f"CPU: {cpu_description()}")
    rows = []
    for name, predict in paths:
        p50, p95 = latency(predict, X_test[:n_latency])
        tput, labels = throughput(predict, X_test)
        rows.append((name, p50, p95, tput, float(np.mean(np.asarray(labels) == np.asarray(y_test)))))
    config = torch_fp32.model_.config
    gflop1, sec1 = flop_floor(config, n_tokens, 1, repeats=20 if not args.quick else 3)
    gflop64, sec64 = flop_floor(config, n_tokens, 64, repeats=5 if not args.quick else 1)
    print(f"\n    {'path':<42}{'p50 ms':>8}{'p95 ms':>8}{'texts/s @64':>13}{'accuracy':>10}")
    for name, p50, p95, tput, acc in rows:
        print(f"    {name:<42}{p50:>8.2f}{p95:>8.2f}{tput:>13.0f}{acc:>10.4f}")
    print(f"    {'FLOP floor (timed matmuls)':<42}{1000 * sec1:>8.2f}{'':>8}{64 / sec64:>13.0f}{'':>10}")
    print(f"\n    FLOP floor: {gflop1:.3f} GFLOP per text at {n_tokens} tokens; the model's matmuls run at "
          f"{gflop1 / sec1:.1f} GFLOP/s at batch 1 and {gflop64 / sec64:.1f} GFLOP/s at batch 64 on this CPU")
    base = rows[1][3]
    print("    throughput over predict before #30: " + ", ".join(f"{n} {t / base:.2f}x" for n, _, _, t, _ in rows))
    print("    accuracy against torch float32: " + ", ".join(f"{n} {100 * (a - rows[0][4]):+.2f} pt"
                                                            for n, _, _, _, a in rows[2:]))


if __name__ == "__main__":
    main()
