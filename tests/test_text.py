import pickle

import numpy as np
import pytest

from sklearn_cap.text import WordAttributions, segment
from sklearn_cap.validation import check_texts


def test_segment_words_and_spans():
    text = "Where's my top-up? It's   pending!"
    words, spans = segment(text)
    assert words == ["Where's", "my", "top-up", "It's", "pending"]
    assert [text[s:e] for s, e in spans] == words


def test_segment_no_words():
    assert segment("  ?! ") == ([], [])


def test_container_matrix_is_nan_padded():
    wa = WordAttributions(["card not here", "hi"], [[0.1, 0.2, 0.7], [1.0, 5.0, 5.0]])
    M = np.asarray(wa)
    assert M.shape == (2, 3)
    assert np.allclose(M[0], [0.1, 0.2, 0.7])
    assert M[1, 0] == 1.0 and np.isnan(M[1, 1:]).all()
    assert wa.to_list(1) == [("hi", 1.0)]
    assert wa.top_words(0, 2) == ["here", "not"]


def test_container_without_values_and_indexing():
    wa = WordAttributions(["a b c", "d e", "f"])
    assert not wa.has_values and np.isnan(np.asarray(wa)).all()
    sub = wa[np.array([2, 0])]
    assert sub.texts == ["f", "a b c"] and sub.words[1] == ["a", "b", "c"]
    assert len(wa[[True, False, True]]) == 2
    assert wa[1].texts == ["d e"]


def test_container_rejects_wrong_row_count():
    with pytest.raises(ValueError, match="one row per text"):
        WordAttributions(["a b"], np.zeros((2, 2)))


def test_container_html_escapes_and_shades():
    wa = WordAttributions(["<b>card</b> lost"], [[1.0, -0.5, 0.0]])
    html = wa.to_html(labels=["lost_card"])
    assert "&lt;" in html and "<b>lost_card</b>" in html
    assert "rgba(34,139,34" in html and "rgba(200,30,30" in html
    back = pickle.loads(pickle.dumps(wa))
    assert back.words == wa.words
    assert np.array_equal(np.asarray(back), np.asarray(wa), equal_nan=True)


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        ("one text", TypeError, "single string"),
        (["ok", None], TypeError, r"X\[1\] is None"),
        (["ok", 3], TypeError, "must be a str"),
        (5, TypeError, "iterable of texts"),
    ],
)
def test_check_texts_errors(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        check_texts(bad)


def test_check_texts_empty():
    assert check_texts(["", "a"]) == ["", "a"]
    for bad in ["", "   ", "?!"]:
        with pytest.raises(ValueError, match="has no word"):
            check_texts(["fine", bad], allow_empty=False)
    assert check_texts(np.array([["x"], ["y"]], dtype=object)) == ["x", "y"]


def test_notebook_display_highlights_words_and_estimators_keep_sklearn_repr(tiny_encoder):
    from sklearn.utils import estimator_html_repr

    from sklearn_cap import CAPPriorTransformer, ExplanationGuidedClassifier, PriorUnion

    wa = WordAttributions(["where is <my> card"], [[0.1, -0.5, 0.0, 0.9]], targets=["card_arrival"])
    html = wa._repr_html_()
    assert html == wa.to_html()
    assert "&lt;" in html and "&gt;" in html and "<my>" not in html  # text between words is escaped
    assert html.count("background") >= 4 and "card_arrival" in html
    # Without values there is nothing to shade, and the plain repr says so.
    assert "where" in WordAttributions(["where is it"])._repr_html_()
    # Estimators keep scikit-learn's diagram, parameters included.
    clf = ExplanationGuidedClassifier(tiny_encoder, beta=0.5)
    for est in (clf, PriorUnion([("cap", CAPPriorTransformer())])):
        out = est._repr_html_()
        assert "sk-estimator" in out and "sk-text-repr-fallback" in out
        assert out.split('id="sk-container-id')[0] == estimator_html_repr(est).split('id="sk-container-id')[0]
    assert "ExplanationGuidedClassifier(beta=0.5" in clf._repr_html_()
