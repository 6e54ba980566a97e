"""Checks of the documentation: offline math, typeset formulas, honest cross-references.

* Fast (run whenever ``docs/_build/html`` exists, i.e. after ``make docs``): the built
  HTML loads nothing from the network (no CDN, every script/stylesheet/image is a local
  file) and MathJax is the site's own ``_static/mathjax/tex-svg-full.js``.
* Fast (run whenever the docs are built): every gallery example was executed and
  embedded its figures, the notebook's example embeds its animation, the index shows
  that animation, and every image a page shows is a file of the build.
* Fast (always): every test that a tutorial page names in its "In the code" section
  exists, and every tutorial page has that section; the command lines and the
  configuration files shown on the command-line page are accepted by the code.
* Slow: the built pages opened in headless Chromium (Debian's ``chromium``) with the
  network disabled; every formula must have been typeset by MathJax (one
  ``mjx-container`` per formula, no raw ``\\(`` or ``\\[`` left, no TeX error). Builds
  the docs first if they are not built. Skips, saying why, where Chromium is absent.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
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
    "kernels",
    "dynamics",
    "separation",
    "optimality",
    "lazy_vs_meanfield",
]
# Pages that end with "In the code" and name the tests behind them.
CODE_PAGES = [*TUTORIAL_PAGES, "cli"]
EXAMPLES = sorted(p.stem for p in (DOCS / "examples").glob("plot_*.py"))
# Pages opened in Chromium: the index, every derivation page, every executed example,
# the command line and the API reference (docstrings carry math too).
RENDERED_PAGES = [
    "index",
    *TUTORIAL_PAGES,
    *(f"auto_examples/{name}" for name in EXAMPLES),
    "cli",
    "api",
]
# The index shows the notebook's animation, the GIF Sphinx-Gallery saves for the
# example's third figure.
NOTEBOOK_ANIMATION = "sphx_glr_plot_notebook_experiment_003.gif"

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


_BASE64_DATA = re.compile(r"data:[a-z]+/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\\\s]*")


def test_built_html_references_no_cdn():
    _require_build()
    pages = _built_html_files()
    assert pages, f"no HTML under {BUILD}"
    offenders = []
    for page in pages:
        # Embedded images and animation frames are base64 text, where "cdn" occurs by chance.
        text = _BASE64_DATA.sub("data:", page.read_text(encoding="utf-8"))
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


@pytest.mark.parametrize("name", CODE_PAGES)
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


# -- fast: the examples ran and the pages show their figures ---------------------------------
_IMG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)


def _local_images(page: Path) -> list[str]:
    return [
        url for url in _IMG.findall(page.read_text(encoding="utf-8")) if not url.startswith("data:")
    ]


def test_examples_ran_and_embedded_their_figures():
    _require_build()
    assert EXAMPLES, "no docs/examples/plot_*.py"
    for name in EXAMPLES:
        page = BUILD / "auto_examples" / f"{name}.html"
        assert page.is_file(), f"the example {name} has no page in the build"
        shown = [url for url in _local_images(page) if f"sphx_glr_{name}_" in url]
        assert shown, f"{name}.html shows no figure computed by the example"


def test_notebook_example_embeds_its_animation():
    _require_build()
    text = (BUILD / "auto_examples" / "plot_notebook_experiment.html").read_text(encoding="utf-8")
    assert 'class="animation"' in text, "plot_notebook_experiment.html embeds no animation"
    frames = text.count("data:image/png;base64,")
    assert frames >= 30, f"the embedded animation has {frames} frames"


def test_index_shows_the_notebook_animation():
    _require_build()
    gifs = [url for url in _local_images(BUILD / "index.html") if url.endswith(NOTEBOOK_ANIMATION)]
    assert gifs, f"index.html does not show {NOTEBOOK_ANIMATION}"
    from PIL import Image

    with Image.open((BUILD / gifs[0]).resolve()) as gif:
        assert gif.n_frames >= 30, f"{NOTEBOOK_ANIMATION} has {gif.n_frames} frames"


def test_every_image_shown_is_in_the_build():
    _require_build()
    missing = []
    for page in _built_html_files():
        for url in _local_images(page):
            if not (page.parent / url.split("?")[0].split("#")[0]).is_file():
                missing.append(f"{page.relative_to(BUILD)}: {url}")
    assert not missing, "pages show images that are not in the build:\n" + "\n".join(missing)


# -- fast: the command-line page shows commands and files the code accepts ------------------
def _cli_command_lines() -> list[str]:
    text = (DOCS / "cli.rst").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"^\.\. code-block:: text\n\n((?:[ ]{3}.*\n|\n)+)", text, re.MULTILINE):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("meanfield "):
                lines.append(line)
    return lines


def test_command_lines_on_the_cli_page_parse():
    from meanfield.cli import build_parser

    lines = _cli_command_lines()
    assert len(lines) >= 4, f"cli.rst shows only {lines}"
    shown = {shlex.split(line)[1] for line in lines}
    assert {"run", "plot", "figures", "check-manifest"} <= shown, f"cli.rst shows {shown}"
    for line in lines:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit as exc:  # argparse exits on an unknown command or option
            pytest.fail(f"cli.rst shows a command line the parser rejects: {line!r} ({exc})")


def test_configurations_on_the_cli_page_load():
    from meanfield.config import SCHEMA, load_config

    text = (DOCS / "cli.rst").read_text(encoding="utf-8")
    files = re.findall(r"^\.\. literalinclude:: (\S+\.toml)$", text, re.MULTILINE)
    assert files, "cli.rst includes no configuration file"
    for rel in files:
        cfg = load_config(DOCS / rel)
        assert set(cfg) <= set(SCHEMA), f"{rel}: unexpected keys {set(cfg) - set(SCHEMA)}"
    # every key the page's table documents is a key of the schema
    documented = set(
        re.findall(r"``([a-z_]+)``", text.split("The keys", 1)[1].split("Figures", 1)[0])
    )
    valid = set(SCHEMA) | {k for v in SCHEMA.values() if isinstance(v, dict) for k in v}
    values = {
        "relu",
        "sigmoid",
        "tanh",
        "erf",
        "notebook_teacher",
        "gaussian",
        "sphere",
        "notebook_sphere",
        "balanced",
        "online_sgd",
        "frames",
        "gd",
        "flow",
        "exact",
        "monte_carlo",
        "solve_ivp",
    }
    assert documented - values <= valid, (
        f"cli.rst documents unknown keys {documented - values - valid}"
    )


# -- fast: optional pages do not break the build ---------------------------------------------
def _load_conf():
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("sphinx is not installed (`make docs` installs it)")
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def test_missing_optional_page_is_dropped_from_the_toctree(tmp_path, monkeypatch):
    conf = _load_conf()
    source = [".. toctree::\n\n   measures\n   answers\n\n.. toctree::\n\n   api\n"]
    monkeypatch.setattr(conf, "HERE", tmp_path)
    conf._drop_missing_optional_pages(None, "index", source)
    assert source[0] == ".. toctree::\n\n   measures\n\n.. toctree::\n\n   api\n"
    (tmp_path / "answers.rst").write_text("Answers\n=======\n", encoding="utf-8")
    source = [".. toctree::\n\n   measures\n   answers\n"]
    conf._drop_missing_optional_pages(None, "index", source)
    assert source[0] == ".. toctree::\n\n   measures\n   answers\n"
    other = ["   answers\n"]
    conf._drop_missing_optional_pages(None, "measures", other)
    assert other == ["   answers\n"]


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
