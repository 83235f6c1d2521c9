"""The docs site builds, warnings as errors, with the gallery run: the README's docs command, in a test."""

import os
import re
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


# A quoted figure: a mean with its 95% interval, or a mean with its spread.
_FIGURE = re.compile(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]|\d\.\d{3} ± \d\.\d{3}")


@pytest.mark.parametrize("doc", ["README.rst", "doc/user_guide.rst", "doc/benchmarks.rst"])
def test_every_figure_with_an_interval_that_the_prose_quotes_is_on_the_results_page(doc):
    # README and the user guide quote the results page by hand; a page
    # regenerated from new cells must not leave them quoting figures it no
    # longer holds. Line breaks and indentation differ between the files.
    page = " ".join((ROOT / "doc" / "results.rst").read_text().split())
    quoted = _FIGURE.findall(" ".join((ROOT / doc).read_text().split()))
    stale = sorted({f for f in quoted if f not in page})
    assert not stale, f"{doc} quotes figures doc/results.rst does not hold: {stale}"
