"""Checks of the documentation: offline math, typeset formulas, honest cross-references.

* Fast (run whenever ``docs/_build/html`` exists, i.e. after ``make docs``): the built
  HTML loads nothing from the network (no CDN, every script/stylesheet/image is a local
  file) and MathJax is the site's own ``_static/mathjax/tex-svg-full.js``.
* Fast (always): every test that a tutorial page names in its "In the code" section
  exists, and every tutorial page has that section.
* Slow: the built pages opened in headless Chromium (Debian's ``chromium``) with the
  network disabled; every formula must have been typeset by MathJax (one
  ``mjx-container`` per formula, no raw ``\\(`` or ``\\[`` left, no TeX error). Builds
  the docs first if they are not built. Skips, saying why, where Chromium is absent.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD = DOCS / "_build" / "html"
MATHJAX = "_static/mathjax/tex-svg-full.js"

TUTORIAL_PAGES = [
    "measures",
    "risk_and_flow",
    "homogeneity",
    "separation",
    "optimality",
    "lazy_vs_meanfield",
]
# Pages opened in Chromium: the index, every derivation page, an executed example and
# the API reference (docstrings carry math too).
RENDERED_PAGES = [
    "index",
    *TUTORIAL_PAGES,
    "auto_examples/plot_feature_and_velocity",
    "api",
]

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


def _built_html_files() -> list[Path]:
    return sorted(BUILD.rglob("*.html"))


def _require_build() -> None:
    if not (BUILD / "index.html").is_file():
        pytest.skip("docs are not built (run `make docs` to build docs/_build/html)")


def _build_docs() -> None:
    """Build the docs like ``make docs`` does, unless they are built already."""
    if (BUILD / "index.html").is_file():
        return
    for module in ("sphinx", "furo", "sphinx_gallery", "sphinxcontrib.bibtex"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"cannot build the docs: {module} is not installed (`make docs` installs it)"
            )
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-b",
        "html",
        str(DOCS),
        str(BUILD),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        log = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        pytest.fail(f"sphinx-build failed ({proc.returncode}):\n{log}")


# -- fast: the built site is offline -----------------------------------------------------
_RESOURCE = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(src|href)\s*=\s*[\"']([^\"']*)[\"']",
    re.IGNORECASE,
)


def test_built_html_references_no_cdn():
    _require_build()
    pages = _built_html_files()
    assert pages, f"no HTML under {BUILD}"
    offenders = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        if "cdn" in text.lower():
            line = next(ln for ln in text.splitlines() if "cdn" in ln.lower())
            offenders.append(f"{page.relative_to(BUILD)}: mentions a CDN: {line.strip()[:160]}")
        for tag, _attr, url in _RESOURCE.findall(text):
            if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE):
                offenders.append(f"{page.relative_to(BUILD)}: <{tag}> loads {url}")
    assert not offenders, "the built docs load remote resources:\n" + "\n".join(offenders)


def test_mathjax_is_the_local_bundle():
    _require_build()
    assert (BUILD / MATHJAX).is_file(), f"{MATHJAX} missing from the build"
    for name in ("index", *TUTORIAL_PAGES):
        page = BUILD / f"{name}.html"
        text = page.read_text(encoding="utf-8")
        srcs = [url for tag, _a, url in _RESOURCE.findall(text) if "mathjax" in url.lower()]
        assert srcs, f"{name}.html loads no MathJax"
        for url in srcs:
            target = (page.parent / url.split("?")[0]).resolve()
            assert target == (BUILD / MATHJAX).resolve(), f"{name}.html loads {url}"


# -- fast: the pages name real tests and end with "In the code" -------------------------
_TEST_REF = re.compile(r"``(tests/test_[A-Za-z0-9_]+\.py)::(test_[A-Za-z0-9_]+)``")


@pytest.mark.parametrize("name", TUTORIAL_PAGES)
def test_tutorial_page_names_existing_tests(name):
    text = (DOCS / f"{name}.rst").read_text(encoding="utf-8")
    assert re.search(r"^In the code\n-+$", text, re.MULTILINE), f"{name}.rst has no 'In the code'"
    refs = _TEST_REF.findall(text)
    assert refs, f"{name}.rst names no test"
    missing = []
    for path, func in refs:
        file = ROOT / path
        if not file.is_file() or not re.search(
            rf"^def {func}\(", file.read_text(encoding="utf-8"), re.MULTILINE
        ):
            missing.append(f"{path}::{func}")
    assert not missing, f"{name}.rst names tests that do not exist: {missing}"


# -- slow: formulas typeset in a real browser, offline -------------------------------------
def _chromium() -> str | None:
    for cand in CHROMIUM_CANDIDATES:
        found = shutil.which(cand)
        if found:
            return found
    return None


def _count_source_formulas(html: str) -> int:
    body = re.sub(r"<script\b.*?</script>", "", html, flags=re.S | re.I)
    return body.count("\\(") + body.count("\\[")


def _visible_markup(dom: str) -> str:
    dom = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S | re.I)
    return re.sub(r"<style\b.*?</style>", "", dom, flags=re.S | re.I)


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        pytest.skip(
            "headless Chromium not found at /usr/bin/chromium: install Debian's `chromium` "
            "package (apt-get install -y chromium) to check that the docs' math is typeset"
        )
    return exe


@pytest.fixture(scope="module")
def built_docs() -> Path:
    _build_docs()
    return BUILD


@pytest.mark.slow
@pytest.mark.parametrize("name", RENDERED_PAGES)
def test_formulas_are_typeset_offline_in_chromium(name, chromium, built_docs, tmp_path):
    page = built_docs / f"{name}.html"
    assert page.is_file(), f"{page} was not built"
    expected = _count_source_formulas(page.read_text(encoding="utf-8"))
    if name in ("index", *TUTORIAL_PAGES):
        assert expected >= 10, f"{name}.html holds only {expected} formulas"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        # No name resolves: anything fetched from the network would fail to load.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=30000",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    dom = _visible_markup(proc.stdout)
    assert "</html>" in proc.stdout.lower(), "chromium returned no DOM"
    n_typeset = dom.count("<mjx-container")
    assert n_typeset >= max(expected, 1), (
        f"{name}.html: {n_typeset} formulas typeset by MathJax, {expected} in the page"
    )
    assert "\\(" not in dom and "\\[" not in dom, f"{name}.html: raw TeX left untypeset"
    assert 'data-mml-node="merror"' not in dom, f"{name}.html: MathJax reported a TeX error"
