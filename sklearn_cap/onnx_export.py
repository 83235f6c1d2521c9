"""A fitted classifier as one ONNX graph: token ids and attention mask in, class probabilities out.

The graph holds the encoder, the pooling (first token or masked mean) and
the head, then a softmax; the tokenizer is written beside it as
``tokenizer.json``, and the classes, ``max_length`` and padding id travel
in the graph's metadata. :class:`sklearn_cap.onnx_predictor.ONNXTextClassifier`
runs the folder with only ``numpy``, ``tokenizers`` and ``onnxruntime``.
Exporting needs torch and ``onnx`` (the ``[onnx]`` extra).
"""

import json
import warnings
from pathlib import Path

import torch

__all__ = ["export_onnx", "ONNX_FILE", "METADATA_PREFIX"]

ONNX_FILE = "model.onnx"
METADATA_PREFIX = "sklearn_cap."


class _ProbabilityGraph(torch.nn.Module):
    """The classifier with a softmax on its logits: what the exported graph computes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)


def export_onnx(estimator, path, *, quantize=False, opset_version=17):
    """Write ``model.onnx`` and ``tokenizer.json`` of a fitted classifier into the folder ``path``.

    Parameters
    ----------
    estimator : ExplanationGuidedClassifier
        Fitted, any pooling.
    path : str or path-like
        Folder to write (created); may be a folder of ``save_pretrained``.
    quantize : bool, default=False
        Also write ``model_int8.onnx``, dynamically quantised to int8
        weights with one scale per weight column
        (:func:`sklearn_cap.onnx_predictor.quantize_onnx`; call it yourself
        for one scale per matrix).
    opset_version : int, default=17
        ONNX operator set of the graph.

    Returns
    -------
    path : pathlib.Path
        The folder written.

    Examples
    --------
    >>> clf.export_onnx("my_model_onnx")  # doctest: +SKIP
    PosixPath('my_model_onnx')
    """
    import onnx
    from sklearn.utils.validation import check_is_fitted

    from .serialization import _json_value

    check_is_fitted(estimator, "model_")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = estimator.tokenizer_
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    # An example with padding, so the traced graph keeps the attention mask (an all-ones mask may be skipped).
    example = tok(["a b c d e f", "a"], padding=True, truncation=True, max_length=int(estimator.max_length),
                  return_tensors="pt")
    model = estimator.model_
    was_training = model.training
    model.eval().to("cpu")
    try:
        # The tracer's notes (Python bools taken as constants, the exporter's deprecation) hold for this graph:
        # shapes vary only along the dynamic axes, and the tests compare it with the estimator.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index")
            torch.onnx.export(
                _ProbabilityGraph(model), (example["input_ids"], example["attention_mask"]), str(path / ONNX_FILE),
                dynamo=False, input_names=["input_ids", "attention_mask"], output_names=["probabilities"],
                dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                              "probabilities": {0: "batch"}},
                opset_version=int(opset_version),
            )
    finally:
        model.train(was_training).to(estimator.device_)
    classes = [_json_value(c) for c in estimator.classes_.tolist()]
    meta = {
        "classes": json.dumps(classes),
        "classes_dtype": estimator.classes_.dtype.str if estimator.classes_.dtype != object else "object",
        "max_length": str(int(estimator.max_length)),
        "pad_token_id": str(int(pad)),
        "truncation_side": str(getattr(tok, "truncation_side", "right")),
        "pooling": estimator.pooling_,
    }
    graph = onnx.load(str(path / ONNX_FILE))
    for k, v in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + k, v
    onnx.save(graph, str(path / ONNX_FILE))
    tok.backend_tokenizer.save(str(path / "tokenizer.json"))
    if quantize:
        from .onnx_predictor import quantize_onnx

        quantize_onnx(path)
    return path

