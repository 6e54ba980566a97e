import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from meanfield.sweep import Study, StudyTable, run_study


def toy_cell(params, seeds):
    """A real (tiny) computation: mean of a seeded Gaussian sample, as one ensemble."""
    rows = []
    for s in seeds:
        x = np.random.default_rng([s, params["n"]]).standard_normal(params["n"]) * params["scale"]
        rows.append({"seed": s, "mean": float(x.mean()), "max": float(x.max())})
    return rows


def make_study(**kw):
    return Study("toy", toy_cell, grid={"n": [10, 100], "scale": [0.5, 2.0]}, seeds=[0, 1, 2], **kw)


def test_table_has_one_row_per_run(tmp_path):
    table = run_study(make_study(), tmp_path, executor="serial")
    assert len(table) == 2 * 2 * 3
    assert table.columns[:5] == ["n", "scale", "seed", "mean", "max"]
    sub = table.where(n=100, scale=2.0, seed=1)
    assert len(sub) == 1
    expected = np.random.default_rng([1, 100]).standard_normal(100) * 2.0
    np.testing.assert_allclose(sub.column("mean"), [expected.mean()], rtol=0, atol=0)
    assert (tmp_path / "toy.csv").read_text().startswith("n,scale,seed,mean,max\n")


def test_executors_and_chunking_give_identical_tables(tmp_path):
    ref = run_study(make_study(), tmp_path / "serial", executor="serial")
    proc = run_study(make_study(), tmp_path / "proc", executor="process")
    with ThreadPoolExecutor(2) as pool:
        threads = run_study(make_study(seeds_per_cell=1), tmp_path / "thr", executor=pool)
    assert ref.to_csv() == proc.to_csv() == threads.to_csv()


def test_dask_executor_gives_identical_table(tmp_path):
    distributed = pytest.importorskip("distributed")
    ref = run_study(make_study(), tmp_path / "serial", executor="serial")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        table = run_study(make_study(), tmp_path / "dask", executor=client.get_executor())
    assert table.to_csv() == ref.to_csv()


def test_resume_skips_cached_cells(tmp_path):
    calls = []

    def counting_cell(params, seeds):
        calls.append((params["n"], params["scale"]))
        return toy_cell(params, seeds)

    study = Study("toy", counting_cell, grid={"n": [10, 100], "scale": [0.5, 2.0]}, seeds=[0, 1])
    first = run_study(study, tmp_path, executor="serial")
    assert len(calls) == 4
    # Lose one cell's file, as if the run had been killed before it finished.
    files = sorted((tmp_path / "toy").glob("*.json"))
    files[0].unlink()
    second = run_study(study, tmp_path, executor="serial")
    assert len(calls) == 5
    assert first.to_csv() == second.to_csv()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="grid"):
        Study("x", toy_cell, grid={"n": []}, seeds=[0])
    with pytest.raises(ValueError, match="seeds"):
        Study("x", toy_cell, grid={"n": [1]}, seeds=[])
    with pytest.raises(TypeError, match="cell"):
        Study("x", 3, grid={"n": [1]}, seeds=[0])
    with pytest.raises(ValueError, match="executor"):
        run_study(make_study(), tmp_path, executor="threads")
    with pytest.raises(ValueError, match="rows"):
        run_study(
            Study("bad", lambda p, s: [], grid={"n": [1]}, seeds=[0]), tmp_path, executor="serial"
        )
    with pytest.raises(ValueError, match="columns"):
        StudyTable([{"a": 1}]).column("b")


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from meanfield.sweep import Study, run_study

    LOG = sys.argv[2]

    def slow_cell(params, seeds):
        with open(os.path.join(LOG, f"start-{params['k']}-{os.getpid()}-{time.time_ns()}"), "w"):
            pass
        time.sleep(0.15)
        return [{"seed": s, "value": float(np.random.default_rng([s, params["k"]]).random())}
                for s in seeds]

    if __name__ == "__main__":
        study = Study("slow", slow_cell, grid={"k": list(range(12))}, seeds=[0, 1])
        run_study(study, sys.argv[1], executor=sys.argv[3])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "process"])
def test_sigkill_mid_study_then_resume(tmp_path, executor):
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)
    cache, log = tmp_path / "cache", tmp_path / "log"
    log.mkdir()
    cmd = [sys.executable, str(script), str(cache), str(log), executor]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((cache / "slow").glob("[!.]*.json"))) < 4:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Dot-files are the atomic writer's temporaries (a write the kill interrupted).
    done = [f for f in (cache / "slow").glob("*.json") if not f.name.startswith(".")]
    finished = {json.loads(f.read_text())["params"]["k"] for f in done}
    assert 4 <= len(finished) < 12, "the kill must land mid-study"
    # Every cell file present is complete JSON (atomic writes): no half-written result.
    for f in done:
        assert len(json.loads(f.read_text())["rows"]) == 2
    before = {p.name for p in log.iterdir()}
    subprocess.run(cmd, check=True)
    restarted = {int(p.name.split("-")[1]) for p in log.iterdir() if p.name not in before}
    assert restarted.isdisjoint(finished), "a finished cell was computed again"
    assert restarted | finished == set(range(12))
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(script), str(ref), str(log), "serial"], check=True)
    assert (cache / "slow.csv").read_text() == (ref / "slow.csv").read_text()
