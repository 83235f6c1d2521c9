"""Deploying a fitted classifier: the safetensors folder, transformers' pipeline, ONNX and its predictor.

Everything runs on the tiny random BERT of conftest.py; the tampered-folder
tests check that loading refuses before anything from the folder is run.
"""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sklearn_cap import ExplanationGuidedClassifier
from sklearn_cap.attribution import IntegratedGradients
from sklearn_cap.callbacks import Callback
from sklearn_cap.serialization import UnsafeFolderError

TEXTS = [
    "my card has not arrived yet", "where is my card", "how fast can you deliver a new card",
    "why was i charged a fee for the transfer", "my transfer is pending", "transfer fee charged",
    "can i top up with apple pay", "top up by google pay", "what exchange rate do you use",
    "i lost my card yesterday", "the atm swallowed my card", "exchange rate for foreign payments",
]
LABELS = ["card", "card", "card", "transfer", "transfer", "transfer", "top_up", "top_up", "top_up",
          "card", "card", "top_up"]
NEW = ["my card is late", "pending transfer fee", "apple pay top up please", "hello world", ""]


def _fit(folder, pooling, **kw):
    rng = np.random.default_rng(0)
    priors = [rng.random(len(t.split())) for t in TEXTS]
    params = dict(pooling=pooling, beta=0.5, attribution="grad_input", epochs=2, batch_size=4, learning_rate=1e-3,
                  random_state=0, progress_bar=False, max_length=16)
    params.update(kw)
    return ExplanationGuidedClassifier(folder, **params).fit(TEXTS, LABELS, priors=priors)


@pytest.fixture(scope="module")
def fitted(tiny_encoder):
    return {"cls": _fit(tiny_encoder, "cls"),
            "mean": _fit(tiny_encoder, "mean", head_init="random", attribution=IntegratedGradients(baseline="zeros"))}


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    out = {}
    for pooling, clf in fitted.items():
        out[pooling] = clf.save_pretrained(tmp_path_factory.mktemp(f"saved_{pooling}"), metrics={"accuracy": 0.75},
                                           dataset="twelve banking texts")
    return out


def _copy(folder, tmp_path):
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


# -- 1. save_pretrained / from_pretrained ------------------------------------------
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_round_trip_same_proba_and_explain(fitted, saved, pooling):
    clf = fitted[pooling]
    loaded = ExplanationGuidedClassifier.from_pretrained(saved[pooling])
    np.testing.assert_allclose(loaded.predict_proba(NEW), clf.predict_proba(NEW), atol=1e-6)
    assert loaded.predict(NEW).tolist() == clf.predict(NEW).tolist()
    assert loaded.classes_.tolist() == clf.classes_.tolist() and loaded.classes_.dtype == clf.classes_.dtype
    a, b = clf.explain(NEW[:3], n_steps=4), loaded.explain(NEW[:3], n_steps=4)
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)
    assert b.targets.tolist() == a.targets.tolist()
    assert loaded.get_params() == clf.get_params()  # every parameter here is a JSON value or a library object
    assert loaded.pooling_ == pooling and loaded.history_ == clf.history_
    assert loaded.class_counts_.tolist() == [5, 4, 3]


def test_integer_labels_round_trip(tiny_encoder, tmp_path):
    clf = ExplanationGuidedClassifier(tiny_encoder, beta=0, epochs=1, progress_bar=False, random_state=0,
                                      max_length=16).fit(TEXTS, [len(t) % 2 + 3 for t in TEXTS])
    loaded = ExplanationGuidedClassifier.from_pretrained(clf.save_pretrained(tmp_path / "m"))
    assert loaded.classes_.tolist() == [3, 4] and loaded.predict(NEW).dtype.kind == "i"


def test_folder_holds_safetensors_json_and_a_model_card(saved, fitted):
    folder = saved["mean"]
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "card", "1": "top_up", "2": "transfer"}
    meta = config["sklearn_cap"]
    assert meta["pooling"] == "mean" and meta["max_length"] == 16 and meta["class_counts"] == [5, 4, 3]
    assert meta["params"]["attribution"] == {"attribution_class": "IntegratedGradients",
                                             "params": {"baseline": "zeros", "n_steps": None}}
    card = (folder / "README.md").read_text()
    for needle in ("texts: 12", "classes: 3", "| accuracy | 0.75 |", "twelve banking texts", "| beta | `0.5` |",
                   "| torch |", "| transformers |", "| sklearn-cap |", "| random_state | `0` |",
                   "source was not recorded"):
        assert needle in card, needle


def test_model_card_records_the_priors_of_a_pipeline(fitted, tmp_path):
    from sklearn.pipeline import make_pipeline

    from sklearn_cap import GlobalPriorTransformer
    from sklearn_cap.serialization import save_pretrained

    pipe = make_pipeline(GlobalPriorTransformer(), fitted["cls"])
    folder = save_pretrained(pipe, tmp_path / "p")
    meta = json.loads((folder / "config.json").read_text())["sklearn_cap"]
    assert meta["priors"][0]["class"] == "GlobalPriorTransformer"
    assert '"class": "GlobalPriorTransformer"' in (folder / "README.md").read_text()


class _Recorder(Callback):
    def on_epoch_end(self, clf, record=None, **kwargs):
        return False


def test_parameters_that_are_not_json_are_recorded_and_not_pretended(tiny_encoder, tmp_path):
    import torch

    clf = _fit(tiny_encoder, "cls", epochs=1, callbacks=[_Recorder()], optimizer=torch.optim.SGD)
    folder = clf.save_pretrained(tmp_path / "m")
    dropped = json.loads((folder / "config.json").read_text())["sklearn_cap"]["params_not_saved"]
    assert set(dropped) == {"callbacks", "optimizer"} and "_Recorder" in dropped["callbacks"]
    with pytest.warns(UserWarning, match="callbacks.*optimizer|optimizer.*callbacks"):
        loaded = ExplanationGuidedClassifier.from_pretrained(folder)
    assert loaded.callbacks is None and loaded.optimizer == "adamw"
    np.testing.assert_allclose(loaded.predict_proba(NEW), clf.predict_proba(NEW), atol=1e-6)


def test_save_needs_a_fitted_estimator(tiny_encoder, tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ExplanationGuidedClassifier(tiny_encoder).save_pretrained(tmp_path / "m")


# -- tampered folders ---------------------------------------------------------------
class _Payload:
    """A pickle that, if ever unpickled, writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickle_in_place_of_the_weights_is_refused_and_never_run(saved, tmp_path):
    folder = _copy(saved["cls"], tmp_path)
    marker = tmp_path / "ran"
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UnsafeFolderError, match="pickle.*not safetensors"):
        ExplanationGuidedClassifier.from_pretrained(folder)
    assert not marker.exists()


def test_torch_save_zip_in_place_of_the_weights_is_refused(saved, tmp_path):
    import torch

    folder = _copy(saved["cls"], tmp_path)
    torch.save({"x": torch.zeros(2)}, folder / "model.safetensors")
    with pytest.raises(UnsafeFolderError, match="not safetensors"):
        ExplanationGuidedClassifier.from_pretrained(folder)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "extra/weights.pkl"])
def test_a_pickle_file_in_the_folder_is_refused(saved, tmp_path, name):
    folder = _copy(saved["mean"], tmp_path)
    marker = tmp_path / "ran"
    (folder / name).parent.mkdir(exist_ok=True)
    (folder / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UnsafeFolderError, match="pickle-format files"):
        ExplanationGuidedClassifier.from_pretrained(folder)
    assert not marker.exists()


def test_garbage_weights_are_refused(saved, tmp_path):
    folder = _copy(saved["mean"], tmp_path)
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(UnsafeFolderError, match="bad header"):
        ExplanationGuidedClassifier.from_pretrained(folder)


def _edit_config(folder, edit):
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_config_naming_unknown_classes_is_refused(saved, tmp_path):
    folder = _copy(saved["cls"], tmp_path)
    _edit_config(folder, lambda c: c["id2label"].update({"1": "refund"}))
    with pytest.raises(ValueError, match=r"id2label .* does not match .*unknown classes \['refund'\]"):
        ExplanationGuidedClassifier.from_pretrained(folder)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classes_not_matching_the_head_size_are_refused(saved, tmp_path, pooling):
    folder = _copy(saved[pooling], tmp_path)

    def add_class(c):
        c["sklearn_cap"]["classes"].append("refund")
        c["id2label"]["3"] = "refund"
        c["label2id"]["refund"] = 3

    _edit_config(folder, add_class)
    with pytest.raises(ValueError, match="names 4 classes but the weights' head has 3 outputs"):
        ExplanationGuidedClassifier.from_pretrained(folder)


def test_a_plain_or_custom_code_config_is_refused(saved, tmp_path):
    folder = _copy(saved["cls"], tmp_path)
    _edit_config(folder, lambda c: c.update(auto_map={"AutoModel": "evil.Model"}))
    with pytest.raises(UnsafeFolderError, match="custom code"):
        ExplanationGuidedClassifier.from_pretrained(folder)
    _edit_config(folder, lambda c: c.pop("sklearn_cap"))
    with pytest.raises(ValueError, match="no 'sklearn_cap' section"):
        ExplanationGuidedClassifier.from_pretrained(folder)


def test_unknown_attribution_class_is_refused(saved, tmp_path):
    folder = _copy(saved["mean"], tmp_path)
    _edit_config(folder, lambda c: c["sklearn_cap"]["params"]["attribution"].update(attribution_class="os.system"))
    with pytest.raises(ValueError, match="attribution class 'os.system'"):
        ExplanationGuidedClassifier.from_pretrained(folder)


# -- 2. loadable without this library ------------------------------------------------
def test_cls_folder_loads_in_a_transformers_pipeline(fitted, saved):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(saved["cls"]), device="cpu")
    out = pipe(NEW[:4])
    clf = fitted["cls"]
    assert [o["label"] for o in out] == clf.predict(NEW[:4]).tolist()
    np.testing.assert_allclose([o["score"] for o in out], clf.predict_proba(NEW[:4]).max(1), atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_onnx_graph_matches_the_estimator(fitted, tmp_path, pooling):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sklearn_cap.onnx_predictor import ONNXTextClassifier

    clf = fitted[pooling]
    folder = clf.export_onnx(tmp_path / "onnx")
    onnx_clf = ONNXTextClassifier(folder, batch_size=2)
    assert onnx_clf.classes_.tolist() == clf.classes_.tolist()
    texts = NEW + TEXTS
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    assert onnx_clf.predict(texts).tolist() == clf.predict(texts).tolist()
    long_text = [" ".join(["card"] * 40)]  # truncated to max_length the same way
    np.testing.assert_allclose(onnx_clf.predict_proba(long_text), clf.predict_proba(long_text), atol=1e-5)


def test_onnx_predictor_runs_without_torch_or_sklearn_cap(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import sklearn_cap.onnx_predictor as module

    clf = fitted["mean"]
    folder = clf.export_onnx(tmp_path / "onnx")
    script = (
        "import importlib.util, json, sys\n"
        "sys.modules['torch'] = None; sys.modules['sklearn_cap'] = None; sys.modules['transformers'] = None\n"
        f"spec = importlib.util.spec_from_file_location('onnx_predictor', {module.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"p = m.ONNXTextClassifier({str(folder)!r})\n"
        f"print(json.dumps({{'labels': p.predict({NEW!r}).tolist(), 'proba': p.predict_proba({NEW!r}).tolist()}}))\n"
        "assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    got = json.loads(out.stdout)
    assert got["labels"] == clf.predict(NEW).tolist()
    np.testing.assert_allclose(got["proba"], clf.predict_proba(NEW), atol=1e-5)


def test_int8_quantised_graph_is_smaller_and_close(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sklearn_cap.onnx_predictor import ONNXTextClassifier

    clf = fitted["cls"]
    folder = clf.export_onnx(tmp_path / "onnx", quantize=True)
    assert (folder / "model_int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size
    q = ONNXTextClassifier(folder, quantized=True)
    assert q.classes_.tolist() == clf.classes_.tolist()
    proba = q.predict_proba(NEW)
    assert proba.shape == (len(NEW), 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(proba, clf.predict_proba(NEW), atol=0.05)


def _weight_scale_sizes(file):
    """Sizes of the scales of a dynamically quantised graph's int8 weights (one entry per MatMulInteger)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(file)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    sizes = []
    for node in graph.node:
        weight = node.input[1] if node.op_type == "MatMulInteger" else None
        if weight in inits and inits[weight].dtype == np.int8 and weight.endswith("_quantized"):
            sizes.append(inits[weight[: -len("_quantized")] + "_scale"].size)
    return sizes


def test_int8_scales_per_weight_column_by_default(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sklearn_cap.onnx_predictor import ONNXTextClassifier, quantize_onnx

    clf = fitted["cls"]
    folder = clf.export_onnx(tmp_path / "onnx", quantize=True)
    per_column = _weight_scale_sizes(folder / "model_int8.onnx")
    assert per_column and max(per_column) > 1  # one scale per output column of each weight matrix
    quantize_onnx(folder, per_channel=False)
    per_matrix = _weight_scale_sizes(folder / "model_int8.onnx")
    assert len(per_matrix) == len(per_column) and set(per_matrix) == {1}
    proba = ONNXTextClassifier(folder, quantized=True).predict_proba(NEW)
    np.testing.assert_allclose(proba, clf.predict_proba(NEW), atol=0.05)


def test_onnx_predictor_errors_say_what_to_do(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sklearn_cap.onnx_predictor import ONNXTextClassifier

    folder = fitted["cls"].export_onnx(tmp_path / "onnx")
    with pytest.raises(FileNotFoundError, match="quantize_onnx"):
        ONNXTextClassifier(folder, quantized=True)
    p = ONNXTextClassifier(folder)
    with pytest.raises(TypeError, match="Wrap it in a list"):
        p.predict("my card")
    assert p.predict_proba([]).shape == (0, 3)


# -- 3. the estimator's own predict --------------------------------------------------
def test_predict_skips_word_alignment_with_the_same_results(fitted):
    from sklearn_cap import WordAttributions
    from sklearn_cap.encoding import EncodedTexts

    clf = fitted["mean"]
    texts = NEW + TEXTS + [" ".join(["card"] * 40), "[CLS] my [SEP] card", "¿dónde está mi tarjeta? 💳"]
    full = EncodedTexts(clf.tokenizer_, WordAttributions(texts), clf.max_length)
    fast = EncodedTexts.tokens_only(clf.tokenizer_, texts, clf.max_length)
    for name in ("input_ids", "attention_mask", "lengths", "special"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(full, name))
    assert fast.attributions is None
    np.testing.assert_array_equal(clf.predict_proba(texts), clf.predict_proba(WordAttributions(texts)))
    import torch

    expected = torch.softmax(torch.from_numpy(clf.forward(full)), dim=1).numpy()
    np.testing.assert_array_equal(clf.predict_proba(texts), expected)
    assert clf.predict(texts).tolist() == clf.classes_[expected.argmax(1)].tolist()
