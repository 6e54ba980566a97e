import json
import textwrap

import pytest

from meanfield.figures import check_manifest, load_manifest, run_figures

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import matplotlib.pyplot as plt
    from meanfield.figures import FigureResult
    from meanfield.plotting import save_figure

    def make(out_dir, quick):
        with (out_dir / "calls.log").open("a") as log:
            log.write("{name}\\n")
        x = np.random.default_rng(3).standard_normal(50 if quick else 500)
        fig, ax = plt.subplots()
        ax.hist(x)
        files = save_figure(fig, out_dir / "{name}")
        plt.close(fig)
        return FigureResult(files=files, parameters={{"n": x.size}}, seeds=[3], notes="hist")
    """
)


@pytest.fixture
def scripts(tmp_path):
    folder = tmp_path / "figs"
    folder.mkdir()
    for name in ("alpha", "beta"):
        (folder / f"{name}.py").write_text(SCRIPT.format(name=name))
    (folder / "_helpers.py").write_text("X = 1\n")  # private modules are not figures
    return folder


def calls(out):
    return (out / "calls.log").read_text().split()


def test_manifest_lists_every_figure_and_file(scripts):
    manifest = run_figures(scripts, quick=True, verbose=False)
    out = scripts / "output"
    assert set(manifest["figures"]) == {"alpha", "beta"}
    entry = manifest["figures"]["alpha"]
    assert entry["files"] == ["alpha.pdf", "alpha.png"]
    assert entry["parameters"] == {"n": 50} and entry["seeds"] == [3] and entry["quick"] is True
    assert entry["package_version"] and entry["runtime_s"] >= 0
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert check_manifest(scripts) == []


def test_finished_figures_are_not_recomputed(scripts):
    out = scripts / "output"
    run_figures(scripts, quick=True, verbose=False)
    run_figures(scripts, quick=True, verbose=False)
    assert calls(out) == ["alpha", "beta"]
    (out / "beta.png").unlink()  # a lost file makes its figure due again
    run_figures(scripts, quick=True, verbose=False)
    assert calls(out) == ["alpha", "beta", "beta"]
    run_figures(scripts, quick=False, verbose=False)  # another mode recomputes everything
    assert calls(out) == ["alpha", "beta", "beta", "alpha", "beta"]
    assert load_manifest(out)["figures"]["alpha"]["parameters"] == {"n": 500}


def test_editing_a_script_makes_it_due(scripts):
    out = scripts / "output"
    run_figures(scripts, quick=True, verbose=False)
    (scripts / "alpha.py").write_text(SCRIPT.format(name="alpha") + "\n# edited\n")
    run_figures(scripts, quick=True, verbose=False)
    assert calls(out) == ["alpha", "beta", "alpha"]


def test_check_manifest_reports_problems(scripts):
    assert check_manifest(scripts) == [f"no manifest.json in {scripts / 'output'}"]
    run_figures(scripts, quick=True, only=["alpha"], verbose=False)
    assert check_manifest(scripts) == ["beta: not in the manifest"]
    (scripts / "output" / "alpha.pdf").unlink()
    assert check_manifest(scripts) == ["alpha: alpha.pdf missing", "beta: not in the manifest"]


def test_bad_arguments(scripts, tmp_path):
    with pytest.raises(ValueError, match="only names unknown"):
        run_figures(scripts, only=["gamma"], verbose=False)
    with pytest.raises(ValueError, match="scripts_dir"):
        run_figures(tmp_path / "nowhere", verbose=False)
    (scripts / "broken.py").write_text("def nothing():\n    pass\n")
    with pytest.raises(ValueError, match="must define make"):
        run_figures(scripts, only=["broken"], verbose=False)
    out = scripts / "output"
    out.mkdir(exist_ok=True)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_manifest(out)


def test_editing_a_shared_helper_makes_every_figure_due(scripts):
    out = scripts / "output"
    run_figures(scripts, quick=True, verbose=False)
    (scripts / "_helpers.py").write_text("X = 2\n")
    run_figures(scripts, quick=True, verbose=False)
    assert calls(out) == ["alpha", "beta", "alpha", "beta"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("run_tau=0.5", ["run_tau=0.5.png", "run_tau=0.5.pdf"]),
     ("fig.png", ["fig.png", "fig.pdf"]),
     ("fig.PDF", ["fig.png", "fig.pdf"]),
     ("v1.2.final", ["v1.2.final.png", "v1.2.final.pdf"])],
)
def test_save_figure_keeps_dotted_names(tmp_path, name, expected) -> None:
    """A dot in the name is not an extension to replace (only a format's own suffix is)."""
    import matplotlib.pyplot as plt

    from meanfield.plotting import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    files = save_figure(fig, tmp_path / name)
    plt.close(fig)
    assert [f.name for f in files] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
