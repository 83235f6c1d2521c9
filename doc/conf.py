"""Sphinx configuration of the sklearn-cap docs (build: ``python -m sphinx -W -b html doc doc/_build/html``)."""

import os
import sys
from pathlib import Path

import sklearn_cap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "sklearn-cap"
author = "the sklearn-cap developers"
copyright = "2026, the sklearn-cap developers"
release = version = sklearn_cap.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "sg_execution_times.rst"]
root_doc = "index"
html_theme = "pydata_sphinx_theme"
html_title = "sklearn-cap"
html_static_path = []
html_theme_options = {"navigation_with_keys": False, "show_prev_next": False}

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
# numpydoc writes the members table of a class; autosummary's own would repeat it.
numpydoc_show_class_members = False
numpydoc_validation_checks = {"PR01"}  # every parameter documented: a missing one fails the build
numpydoc_xref_param_type = False

intersphinx_mapping = {}  # no network on the build machines: no external inventories

nitpicky = False


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's metadata-routing setters (set_fit_request...) are generated per class; their
    # docstrings point into scikit-learn's own glossary, which this site does not have.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
suppress_warnings = ["config.cache"]

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Only plot_*.py run at build time (small, cached settings); the others are shown as code.
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "plot_gallery": os.environ.get("SKLEARN_CAP_DOCS_PLOT", "True"),
}
