"""Serving an exported classifier with ONNX Runtime: a small predictor that needs neither torch nor sklearn-cap.

This module imports only ``numpy``, ``tokenizers`` and ``onnxruntime``, and
nothing from sklearn-cap, so a service can copy this one file beside the
folder that :meth:`sklearn_cap.ExplanationGuidedClassifier.export_onnx` wrote
(``model.onnx``, ``tokenizer.json``, optionally ``model_int8.onnx``).
Importing it as ``sklearn_cap.onnx_predictor`` also works, but runs
``sklearn_cap/__init__.py``, which imports torch.
"""

import json
from pathlib import Path

import numpy as np

__all__ = ["ONNXTextClassifier", "quantize_onnx"]

ONNX_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
_PREFIX = "sklearn_cap."


def quantize_onnx(path, *, per_channel=True):
    """Write ``model_int8.onnx`` beside ``model.onnx``: weights dynamically quantised to int8.

    Activations are quantised on the fly per batch
    (``onnxruntime.quantization.quantize_dynamic``); the graph's metadata
    (classes, ``max_length``) is kept.

    Parameters
    ----------
    path : str or path-like
        A folder written by ``export_onnx``.
    per_channel : bool, default=True
        One int8 scale per output column of each weight matrix instead of one
        per matrix. On 5-shot BANKING77 it kept the test accuracy within 0.1
        point of float32 where one scale per matrix lost 0.7, at the same
        speed (doc/benchmarks.rst, "Inference").

    Returns
    -------
    pathlib.Path
        The quantised model file.

    Examples
    --------
    >>> quantize_onnx("my_model_onnx")  # doctest: +SKIP
    PosixPath('my_model_onnx/model_int8.onnx')
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    source = path / ONNX_FILE
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; write it first with clf.export_onnx({str(path)!r}).")
    target = path / INT8_FILE
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=bool(per_channel))
    return target


def _session_metadata(session):
    meta = session.get_modelmeta().custom_metadata_map
    return {k[len(_PREFIX):]: v for k, v in meta.items() if k.startswith(_PREFIX)}


class ONNXTextClassifier:
    """Predict with an exported classifier on ONNX Runtime: ``predict``, ``predict_proba``, ``classes_``.

    Texts are tokenised by ``tokenizers`` exactly as the estimator does
    (truncated to its ``max_length``), sorted by length and run in batches
    padded to their longest text. The predictor is already trained: it has
    no ``fit``.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``model.onnx`` (and ``model_int8.onnx`` with
        ``quantized=True``) and ``tokenizer.json``.
    quantized : bool, default=False
        Run ``model_int8.onnx`` (see :func:`quantize_onnx`).
    batch_size : int, default=64
        Texts per run.
    n_threads : int, default=None
        Threads of ONNX Runtime's operators; None lets it choose (all
        cores).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, in the columns' order of ``predict_proba``.
    max_length_ : int
        Tokens per text.
    session_ : onnxruntime.InferenceSession

    Examples
    --------
    >>> clf = ONNXTextClassifier("my_model_onnx", quantized=True)  # doctest: +SKIP
    >>> clf.predict(["where is my card"])  # doctest: +SKIP
    array(['card_arrival'], dtype='<U12')
    """

    _estimator_type = "classifier"

    def __init__(self, path, *, quantized=False, batch_size=64, n_threads=None):
        import onnxruntime
        from tokenizers import Tokenizer

        self.path = path
        self.quantized = quantized
        self.batch_size = batch_size
        self.n_threads = n_threads
        folder = Path(path)
        file = folder / (INT8_FILE if quantized else ONNX_FILE)
        if not file.is_file():
            hint = "quantize_onnx(path) or export_onnx(path, quantize=True)" if quantized else "clf.export_onnx(path)"
            raise FileNotFoundError(f"{file} does not exist; write it with {hint}.")
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{folder / 'tokenizer.json'} does not exist; export_onnx writes it beside the model.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        options = onnxruntime.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = int(n_threads)
        self.session_ = onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        meta = _session_metadata(self.session_)
        if quantized and "classes" not in meta:  # a quantiser that dropped the metadata: read the float graph's
            meta = _session_metadata(onnxruntime.InferenceSession(str(folder / ONNX_FILE),
                                                                  providers=["CPUExecutionProvider"]))
        if "classes" not in meta:
            raise ValueError(f"{file} carries no sklearn-cap metadata (classes); export it with export_onnx.")
        classes = json.loads(meta["classes"])
        dtype = meta.get("classes_dtype", "object")
        self.classes_ = np.array(classes, dtype=object if dtype == "object" else np.dtype(dtype))
        self.max_length_ = int(meta["max_length"])
        self._pad = int(meta.get("pad_token_id", 0))
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length_, direction=meta.get("truncation_side", "right"))

    @staticmethod
    def _texts(X):
        if isinstance(X, (str, bytes)):
            raise TypeError(f"X must be a list of texts, got a single string. Wrap it in a list: [{X[:30]!r}].")
        texts = list(X)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"X[{i}] is {t!r} ({type(t).__name__}); every entry must be a str.")
        return texts

    def predict_proba(self, X):
        """Class probabilities, shape (n_texts, n_classes), columns in ``classes_`` order.

        Parameters
        ----------
        X : list of str
            Texts to classify.

        Returns
        -------
        ndarray of shape (n_texts, n_classes), dtype float32
            Each row sums to 1.
        """
        texts = self._texts(X)
        out = np.empty((len(texts), len(self.classes_)), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]
        lengths = np.array([len(r) for r in ids])
        order = np.argsort(lengths, kind="stable")
        bs = int(self.batch_size)
        for s in range(0, len(order), bs):
            rows = order[s : s + bs]
            t = max(1, int(lengths[rows].max()))
            input_ids = np.full((len(rows), t), self._pad, dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : lengths[r]] = ids[r]
            mask = (np.arange(t)[None, :] < lengths[rows][:, None]).astype(np.int64)
            out[rows] = self.session_.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return out

    def predict(self, X):
        """Predicted labels: the class of highest probability for each text.

        Parameters
        ----------
        X : list of str
            Texts to classify.

        Returns
        -------
        ndarray of shape (n_texts,)
            Labels from ``classes_``.
        """
        return self.classes_[self.predict_proba(X).argmax(1)]

    def score(self, X, y):
        """Accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : list of str
            Texts.
        y : array-like of shape (n_texts,)
            True labels.

        Returns
        -------
        float
            The fraction of texts predicted right.
        """
        return float(np.mean(self.predict(X) == np.asarray(y)))
