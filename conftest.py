"""Doctest set-up: docstring examples never write to the user's ~/.cache and run without progress bars."""

import pytest


@pytest.fixture(autouse=True)
def _doctest_cache(request, tmp_path, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setenv("SKLEARN_CAP_CACHE", str(tmp_path / "cap_cache"))
