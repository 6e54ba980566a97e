"""Sphinx configuration of the meanfield documentation.

The site is built offline: MathJax 3 comes from the ``sphinx-mathjax-offline``
package (copied into ``_static/mathjax`` of the built site), and no page may load
anything from a CDN (``tests/test_docs.py`` checks the built HTML).
"""

from __future__ import annotations

import logging as logging_std
import os
import re
import sys
from pathlib import Path

from sphinx.util import logging

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import meanfield  # after the path set-up, so builds work without installation

# Gallery examples draw with matplotlib: never try to open a window.
os.environ.setdefault("MPLBACKEND", "Agg")
# Sphinx-Gallery saves each animation's GIF with matplotlib's default writer; without
# ffmpeg matplotlib logs that it falls back to Pillow, which is the intended writer.
logging_std.getLogger("matplotlib.animation").setLevel(logging_std.ERROR)

# -- project -------------------------------------------------------------------
project = "meanfield"
author = "The meanfield developers"
copyright = "2026, The meanfield developers"
version = meanfield.__version__
release = meanfield.__version__

# -- extensions ------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # Ships MathJax 3.2.2 and copies it to <outdir>/_static/mathjax when a build
    # succeeds.  Its setup() overwrites mathjax_path with "mathjax/tex-chtml.js";
    # setup() at the end of this file sets it back to MATHJAX_PATH.
    "sphinx-mathjax-offline",
    "sphinxcontrib.bibtex",
    "sphinx_gallery.gen_gallery",
]

templates_path: list[str] = []
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "examples/README.txt",
    # Left by older sphinx-gallery runs; the page loads DataTables from a CDN.
    "sg_execution_times.rst",
    "auto_examples/sg_execution_times.rst",
]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"

# -- math: MathJax 3 from the site's own static files ------------------------------
# tex-svg-full.js bundles the TeX input with every extension and the SVG output, so
# the page loads one local script and no font files.
MATHJAX_PATH = "mathjax/tex-svg-full.js"
mathjax_path = MATHJAX_PATH
mathjax3_config = {
    "tex": {
        # Without "noundefined" an unknown macro is a TeX error (an merror node, which
        # tests/test_docs.py looks for) instead of silently printing its name in red.
        "packages": {"[-]": ["noundefined"]},
        "macros": {
            "R": r"\mathbb{R}",
            "E": r"\mathbb{E}",
        },
    },
    "svg": {"fontCache": "global"},
}

# -- autodoc / napoleon (numpydoc docstrings) -----------------------------------------
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
# Render "x : array_like, shape (..., n, d)" as text, not as :type: fields: Sphinx would
# turn every word of the type into a cross-reference ("d" is ambiguous between
# ParticleMeasure.d and Teacher.d), and numpydoc types are prose here, not class names.
napoleon_use_param = False

# -- bibliography --------------------------------------------------------------
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"

# -- sphinx-gallery ----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",  # execute every plot_*.py at build time
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    # Animations are embedded as self-contained JavaScript HTML (frames inlined),
    # which needs neither ffmpeg nor any network access.
    "matplotlib_animations": (True, "jshtml"),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "min_reported_time": 1,
    "plot_gallery": "True",
    "backreferences_dir": None,
    # The computation-times page loads jQuery DataTables from a CDN: not written.
    "write_computation_times": False,
    "reference_url": {"meanfield": None},
    # Animations are also saved as a GIF that fits this box; (400, 400) gives the
    # notebook's square animation 400 px, the size index.rst shows it at.
    "thumbnail_size": (400, 400),
}

# -- HTML --------------------------------------------------------------------------
html_theme = "furo"
html_title = f"meanfield {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
}

# -- strictness ----------------------------------------------------------------------
# Numpydoc types ("ndarray, shape (m, d+2)", ":vartype:") become cross-references word
# by word, and a word like "m" or "d" matches several attributes (ParticleMeasure.m,
# Trajectory.m): Sphinx warns "more than one target found".  Those are not links anyone
# wrote; the references written in the tutorial pages are checked below instead.
suppress_warnings = ["ref.python"]

# The hand-written pages must only link to objects that exist.  Sphinx is silent on
# an unresolved :func:/:class:/... role unless ``nitpicky`` is on, and ``nitpicky``
# would also flag every numpydoc type ("array_like", "shape (m, d+2)") of the API
# pages; so unresolved roles of the tutorial pages are reported here as warnings,
# which ``-W`` turns into errors.
_EXPLICIT_ROLES = {"func", "class", "meth", "attr", "mod", "data", "exc", "obj"}
_TUTORIAL_PREFIXES = ("api", "auto_examples", "gen_modules")
_logger = logging.getLogger(__name__)


def _warn_unresolved_tutorial_reference(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """Warn when a tutorial page references a Python object that does not exist."""
    if node.get("refdomain") != "py" or node.get("reftype") not in _EXPLICIT_ROLES:
        return None
    docname = node.get("refdoc", "")
    if docname.startswith(_TUTORIAL_PREFIXES):
        return None
    _logger.warning(
        "unresolved Python reference %r (:%s:) in a tutorial page",
        node.get("reftarget"),
        node.get("reftype"),
        location=node,
        type="meanfield",
        subtype="tutorial_ref",
    )
    return None


# Docstrings write absolute values in prose as ``|a|``, which reStructuredText reads as
# a substitution reference (an error under -W).  Outside math, literal text and literal
# blocks, "|" is escaped so that it prints as written.
_LITERAL_SPAN = re.compile(r"(``.+?``|`[^`]*`)")
_VERBATIM_DIRECTIVE = re.compile(r"^(\s*)\.\. (math|code|code-block|sourcecode|literalinclude)::")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_bars_in_docstring(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    """Escape ``|`` in the prose of a docstring (see the comment above)."""
    verbatim_indent: int | None = None  # inside a math/code/literal block when not None
    for k, line in enumerate(lines):
        if verbatim_indent is not None:
            if not line.strip() or _indent(line) > verbatim_indent:
                continue
            verbatim_indent = None
        directive = _VERBATIM_DIRECTIVE.match(line)
        if directive:
            verbatim_indent = len(directive.group(1))
            continue
        stripped = line.strip()
        if stripped.endswith("::"):
            verbatim_indent = _indent(line)
        if "|" not in line or stripped.startswith(("|", "+-", ">>>", "...")):
            continue
        parts = _LITERAL_SPAN.split(line)
        lines[k] = "".join(p if i % 2 else p.replace("|", r"\|") for i, p in enumerate(parts))


# Matplotlib's JavaScript animations, which Sphinx-Gallery embeds, link Font Awesome from
# a CDN for the icons of their buttons.  The link is removed (the site loads nothing from
# the network) and _static/custom.css draws the icons with Unicode symbols instead.
_ANIMATION_CDN_LINK = re.compile(r'<link rel="stylesheet"\s*href="https?://[^"]*font-awesome[^"]*">')


def _strip_animation_cdn_link(app, docname, source):  # type: ignore[no-untyped-def]
    """Remove the CDN stylesheet of embedded matplotlib animations from a page's source."""
    source[0] = _ANIMATION_CDN_LINK.sub("", source[0])


# Pages written by other parts of the project that may not exist yet: until a page
# exists, its entry is dropped from the root toctree instead of failing the -W build.
OPTIONAL_PAGES = ("answers",)


def _drop_missing_optional_pages(app, docname, source):  # type: ignore[no-untyped-def]
    """Remove the toctree entries of optional pages that do not exist (root page only)."""
    if docname != root_doc:
        return
    for name in OPTIONAL_PAGES:
        if not (HERE / f"{name}.rst").is_file():
            source[0] = re.sub(rf"^[ \t]+{name}[ \t]*\n", "", source[0], flags=re.MULTILINE)
            _logger.info("docs/%s.rst does not exist yet: left out of the table of contents", name)


def _always_reread_root(app, env, added, changed, removed):  # type: ignore[no-untyped-def]
    """Re-read the root page, whose toctree depends on which optional pages exist."""
    return [root_doc]


def setup(app):  # type: ignore[no-untyped-def]
    """Point MathJax at the local bundle and register the checks and fixes."""
    # conf.py's setup() runs after every extension's: undo sphinx-mathjax-offline's
    # override of mathjax_path (its file copy, at build-finished, is kept).
    app.config.mathjax_path = MATHJAX_PATH
    app.connect("missing-reference", _warn_unresolved_tutorial_reference, priority=900)
    app.connect("autodoc-process-docstring", _escape_bars_in_docstring)
    app.connect("source-read", _drop_missing_optional_pages)
    app.connect("source-read", _strip_animation_cdn_link)
    app.connect("env-get-outdated", _always_reread_root)
