"""Sphinx configuration of softjit's documentation site.

Build from the repository root (the ``docs`` extra installs what it needs)::

    python -m pip install ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html
"""

from __future__ import annotations

import shutil
from pathlib import Path

import softjit

HERE = Path(__file__).parent

project = "softjit"
author = "the softjit developers"
copyright = "2026, the softjit developers"
release = softjit.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

# The notebooks live in the repository's notebooks/ folder; the site renders
# a copy, executed at build time (they are stored without outputs).
_NOTEBOOKS = HERE / "notebooks"
_NOTEBOOKS.mkdir(exist_ok=True)
for nb in sorted((HERE.parent / "notebooks").glob("*.ipynb")):
    shutil.copyfile(nb, _NOTEBOOKS / nb.name)

nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_dmath_double_inline = True  # the notebooks write $$...$$ inside paragraphs
myst_heading_anchors = 3

# reST first: autosummary writes its generated pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc Parameters sections say it
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# No intersphinx: the build must not depend on the network.
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "pydata_sphinx_theme"
html_title = "softjit"
html_static_path = ["_static"]
html_css_files = ["softjit.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
# The performance page's wide tables get the whole width.
html_sidebars = {"index": [], "getting-started": [], "performance": []}
