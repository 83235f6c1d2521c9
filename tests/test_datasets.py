import csv
import hashlib
import io
import json

import numpy as np
import pytest

from sklearn_cap import datasets
from sklearn_cap.datasets import load_banking77, load_clinc150, load_hwu64, sample_few_shot

from _servers import serve


@pytest.mark.parametrize(
    "loader, split, n, n_labels",
    [
        (load_banking77, "train", 10003, 77),
        (load_banking77, "test", 3080, 77),
        (load_clinc150, "test", 4500, 150),
        (load_clinc150, "oos_test", 1000, 1),
        (load_hwu64, "train", 8954, 64),
        (load_hwu64, "validation", 1076, 64),
        (load_hwu64, "train_full", 9960, 64),
    ],
)
def test_loaders_read_the_shared_data(data_home, loader, split, n, n_labels):
    bunch = loader(split, data_home=data_home, download_if_missing=False)
    assert len(bunch.data) == len(bunch.target) == n
    assert len(bunch.target_names) == n_labels
    assert bunch.DESCR and all(isinstance(t, str) and t == t.strip() for t in bunch.data[:200])
    X, y = loader(split, data_home=data_home, return_X_y=True, download_if_missing=False)
    assert list(X[:5]) == list(bunch.data[:5]) and list(y[:5]) == list(bunch.target[:5])


def test_env_var_is_used(data_home, monkeypatch):
    monkeypatch.setenv("SKLEARN_CAP_DATA", data_home)
    assert len(load_banking77("test", download_if_missing=False).data) == 3080


def test_argument_beats_env_var(data_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_CAP_DATA", str(tmp_path))
    assert len(load_banking77("test", data_home=data_home, download_if_missing=False).data) == 3080


def test_missing_data_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "banking77" / "test.csv")):
        load_banking77("test", data_home=tmp_path, download_if_missing=False)
    with pytest.raises(FileNotFoundError, match="not available for this data set"):
        load_hwu64("test", data_home=tmp_path)
    with pytest.raises(ValueError, match="Unknown split"):
        load_banking77("validation", data_home=tmp_path)


def _upstream_banking_csv():
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "category"])
    w.writerow(["I am still waiting on my card?", "card_arrival"])
    w.writerow(["\nWhere can I use my card?", "card_acceptance"])
    w.writerow(['He said "hi", then left', "card_arrival"])
    return buf.getvalue().encode("utf-8")


def _converted_sha(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows(rows)
    return hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()


def test_download_from_a_real_local_server(tmp_path, monkeypatch):
    upstream = _upstream_banking_csv()
    seen = []

    def handler(method, path, body):
        seen.append(path)
        return (200, upstream, 0) if path == "/train.csv" else (404, b"", 0)

    rows = [("I am still waiting on my card?", "card_arrival"), ("\nWhere can I use my card?", "card_acceptance"),
            ('He said "hi", then left', "card_arrival")]
    with serve(handler) as url:
        monkeypatch.setattr(datasets, "_BANKING_URL", url + "/{split}.csv")
        monkeypatch.setitem(datasets._SHA256, "banking77/train.csv", _converted_sha(rows))
        bunch = load_banking77("train", data_home=tmp_path)
    assert seen == ["/train.csv"]
    assert list(bunch.data) == ["I am still waiting on my card?", "Where can I use my card?", 'He said "hi", then left']
    assert bunch.target_names == ["card_acceptance", "card_arrival"]
    # the second load reads the file, no request
    assert len(load_banking77("train", data_home=tmp_path, download_if_missing=False).data) == 3


def test_download_checksum_mismatch_writes_nothing(tmp_path, monkeypatch):
    payload = json.dumps({"test": [["book a flight", "book_flight"]]}).encode()
    with serve(lambda m, p, b: (200, payload, 0)) as url:
        monkeypatch.setattr(datasets, "_CLINC_URL", url + "/data_full.json")
        with pytest.raises(OSError, match="Checksum mismatch"):
            load_clinc150("test", data_home=tmp_path)
    assert not list((tmp_path / "clinc150").glob("*.csv"))
    assert not list((tmp_path / "clinc150").glob("*.part"))


def test_published_checksums_match_the_shared_files(data_home):
    from pathlib import Path

    for name, digest in datasets._SHA256.items():
        assert datasets._sha256(Path(data_home) / name) == digest, name


def test_few_shot_sampler():
    X = np.array([f"t{i}" for i in range(30)], dtype=object)
    y = np.array(["a"] * 10 + ["b"] * 15 + ["c"] * 5)
    Xs, ys, idx = sample_few_shot(X, y, 5, random_state=0)
    assert sorted(np.unique(ys, return_counts=True)[1]) == [5, 5, 5]
    assert (X[idx] == Xs).all() and len(set(idx)) == 15
    again = sample_few_shot(X, y, 5, random_state=0)[2]
    other = sample_few_shot(X, y, 5, random_state=1)[2]
    assert (again == idx).all() and not (other == idx).all()
    assert len(sample_few_shot(X, y, 8, random_state=0)[2]) == 8 + 8 + 5
    with pytest.raises(ValueError, match="different lengths"):
        sample_few_shot(X, y[:-1], 5)
