"""The docs site builds, warnings as errors, with the gallery run: the README's docs command, in a test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_embedded

ROOT = Path(__file__).resolve().parents[1]


@needs_embedded
@pytest.mark.embedded
@pytest.mark.data
def test_docs_build_with_warnings_as_errors(data_home, tmp_path):
    for package in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(package, reason="pip install -e '.[docs]' to build the docs")
    env = {**os.environ, "SKLEARN_CAP_DATA": data_home, "SKLEARN_CAP_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "doc"), str(out)], env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # The gallery pages hold their figures, and the API pages exist.
    images = sorted(p.name for p in (out / "_images").glob("sphx_glr_plot_*.png"))
    assert any("plot_explanations" in n for n in images) and any("plot_prior_sources" in n for n in images)
    page = (out / "auto_examples" / "plot_prior_sources.html").read_text()
    assert "sphx_glr_plot_prior_sources_001.png" in page
    assert (out / "generated" / "sklearn_cap.CAPPriorTransformer.html").exists()
