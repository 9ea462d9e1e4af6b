"""ClusterGridSearch on real Dask processes (issue 7).

Every test compares against ``grid_search`` on the same sweep, which runs the same engine in
this process: equality is exact (the same lanes computed by the same kernel; a chunk is only
a different subset of lanes), so the tolerance is zero unless stated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import CI, HOPF, HOPF_MU, HOPF_REFINE_GRID, HOPF_REFINE_SETTINGS, local_dask_client

try:
    import dask.distributed  # noqa: F401
except ImportError:  # pragma: no cover - exercised only where dask is missing
    if CI:
        raise
    pytest.skip("dask[distributed] is not installed (pip install 'rustrates[cluster]')", allow_module_level=True)


import rustrates
from rustrates import ClusterGridSearch, grid_search
from rustrates.cluster import ClusterConnectionError, ClusterSweepError

pytestmark = [pytest.mark.cluster, pytest.mark.filterwarnings("ignore::rustrates.RustratesWarning")]

NET3 = "model_templates.montbrio.simple_montbrio.Net3"
PMAP = {
    "eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]},
    "eta_iin": {"vars": ["Op_i/eta"], "nodes": ["IIN"]},
}


def seed_sweep(T: float = 2.0, dt: float = 1e-3, n: int = 4) -> dict:
    """The seed's Net3 sweep, shortened (some points diverge: NaN traces compare equal)."""
    return dict(
        circuit_template=NET3,
        param_grid={"eta_op": np.linspace(-5, 5, n), "eta_iin": np.linspace(-5, 5, 3)},
        param_map=PMAP,
        simulation_time=T,
        dt=dt,
        sampling_step_size=0.01,
        inputs={"PC/Op_e/inp": np.ones((int(round(T / dt)), 1))},
        outputs={"r": "PC/Op_e/r"},
        permute_grid=True,
    )


def slow_sweep() -> dict:
    """24 points in chunks of 2 that take about half a second each on this machine (40M Euler
    steps per point at a few ns per point-step): long enough for a kill to land while chunks
    are running, short enough for the whole test to stay well under a minute."""
    return dict(
        circuit_template=NET3,
        param_grid={"eta_op": np.linspace(-5.0, -4.0, 6), "eta_iin": np.linspace(-5.0, -4.0, 4)},
        param_map=PMAP,
        simulation_time=4000.0,
        dt=1e-4,
        sampling_step_size=1.0,
        outputs={"r": "PC/Op_e/r"},
        permute_grid=True,
    )


@pytest.fixture(scope="module")
def client():
    with local_dask_client(2, processes=True) as c:
        yield c


def reference(sweep: dict, **kw):
    return grid_search(
        sweep["circuit_template"],
        sweep["param_grid"],
        sweep["param_map"],
        dt=sweep["dt"],
        simulation_time=sweep["simulation_time"],
        inputs=sweep.get("inputs"),
        outputs=sweep["outputs"],
        sampling_step_size=sweep["sampling_step_size"],
        permute_grid=sweep["permute_grid"],
        **kw,
    )


def manifest_chunks(compute_dir: Path) -> list[int]:
    path = compute_dir / "manifest.jsonl"
    if not path.exists():
        return []
    # Every line is the engine's: a malformed one is a failure here, not a line skipped (the
    # engine's own reader drops only a torn last line, which a finished run never leaves).
    return [json.loads(line)["chunk"] for line in path.read_text().splitlines()]


def assert_same(path: str, ref: pd.DataFrame, ref_map: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/results"), ref, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), ref_map, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "ParameterGrid/Grid_df"), ref_map, check_exact=True)


def test_cluster_local_two_workers_equals_grid_search_bit_for_bit(client, tmp_path):
    sweep = seed_sweep()
    ref, ref_map = reference(sweep)
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    s = dict(sweep)
    # The seed's spelling: params / permute / config_kwargs['init_kwargs'].
    path = cgs.run(
        s.pop("circuit_template"),
        params=s.pop("param_grid"),
        permute=s.pop("permute_grid"),
        chunk_size=5,
        config_kwargs={"init_kwargs": {"backend": "numpy", "solver": "euler"}},
        result_kwargs={"note": [1.0, 2.0]},
        add_template_info=True,
        **s,
    )
    assert path == os.fspath(tmp_path / "cd" / "results.h5")
    assert cgs.last_run == {"chunks": 3, "skipped": 0, "computed": 3, "failed": 0}
    assert_same(path, ref, ref_map)
    # The engine's layout is there too, and read_results gives the same traces.
    traces, rmap, _ = rustrates.read_results(path)
    pd.testing.assert_frame_equal(traces, ref, check_exact=True)
    conf = pd.read_hdf(path, "Config/simulation")
    assert conf["dt"] == 1e-3 and conf["simulation_time"] == 2.0 and conf["chunk_size"] == 5
    np.testing.assert_array_equal(pd.read_hdf(path, "AdditionalData/note").to_numpy(), [1.0, 2.0])
    variables = pd.read_hdf(path, "TemplateInfo/variables")
    assert variables.set_index("name").loc["PC/Op_e/eta", "value"] == -5.0  # Net3's Op_e default
    # Both workers took part (a chunk is a task; 3 tasks over 2 idle workers).
    assert len(client.scheduler_info()["workers"]) == 2


@pytest.mark.parametrize("diverging", [True, False])
def test_cluster_summaries_only_equal_grid_search(client, tmp_path, diverging):
    # Without diverged points Results/results is built from what the merge kept; with them,
    # from the file read back (for their warning): both must be grid_search's frame.
    sweep = seed_sweep(n=5)
    if not diverging:
        sweep["param_grid"] = {"eta_op": np.linspace(-5.0, -4.0, 5), "eta_iin": np.linspace(-5.0, -4.0, 3)}
    ref, ref_map = reference(sweep, summaries=["mean", "max", "last"])
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    path = cgs.run(chunk_size=4, summaries=["mean", "max", "last"], **sweep)
    assert_same(path, ref, ref_map)
    traces, _, summaries = rustrates.read_results(path)
    assert traces is None
    pd.testing.assert_frame_equal(summaries, ref, check_exact=True)
    status, _, _ = status_of(path)
    assert ("nonfinite" in status) == diverging, status


def test_cluster_own_local_cluster_gets_the_dask_settings(tmp_path):
    # The LocalCluster ClusterGridSearch starts hands rustrates.cluster.DASK_CONFIG to its
    # workers (their profiler is off, their event-loop check every 500 ms) and does not take
    # Dask's default port.
    import dask

    def worker_settings():
        return (
            dask.config.get("distributed.worker.profile.enabled"),
            dask.config.get("distributed.admin.tick.interval"),
        )

    with ClusterGridSearch(1, compute_dir=tmp_path / "cd", progress=False) as cgs:
        assert list(cgs.client.run(worker_settings).values()) == [(False, "500ms")]
        assert cgs.client.scheduler_info()["services"].get("dashboard") != 8787
    # The settings were set for the cluster's start only, not left in this process.
    assert dask.config.get("distributed.worker.profile.enabled") is True


def test_cluster_worker_killed_mid_sweep_completes_identical(client, tmp_path):
    sweep = slow_sweep()
    ref, ref_map = reference(sweep)
    compute_dir = tmp_path / "cd"
    cgs = ClusterGridSearch(client, compute_dir=compute_dir, progress=False)
    box: dict = {}
    runner = threading.Thread(target=lambda: box.setdefault("path", cgs.run(chunk_size=2, **sweep)))
    pids_before = client.run(os.getpid)
    runner.start()
    deadline = time.monotonic() + 60
    while len(manifest_chunks(compute_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    done_at_kill = len(manifest_chunks(compute_dir))
    victim = sorted(pids_before.values())[0]
    os.kill(victim, signal.SIGKILL)
    runner.join(120)
    assert not runner.is_alive()
    assert 2 <= done_at_kill < 12, "the kill must land while chunks were still to run"
    assert victim not in client.run(os.getpid).values(), "the killed worker was replaced"
    assert_same(box["path"], ref, ref_map)
    # Every chunk is recorded exactly once.
    assert sorted(manifest_chunks(compute_dir)) == list(range(12))


CLIENT_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_cluster import slow_sweep
from rustrates import ClusterGridSearch
with ClusterGridSearch(2, compute_dir={cd!r}, progress=False) as cgs:
    cgs.run(chunk_size=2, **slow_sweep())
"""


def test_cluster_client_killed_then_rerun_computes_only_unfinished(client, tmp_path):
    sweep = slow_sweep()
    ref, ref_map = reference(sweep)
    compute_dir = tmp_path / "cd"
    script = CLIENT_SCRIPT.format(tests=os.fspath(Path(__file__).parent), cd=os.fspath(compute_dir))
    # Its own session: killing the group kills the client and the LocalCluster it started.
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while len(manifest_chunks(compute_dir)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = set(manifest_chunks(compute_dir))
    assert 3 <= len(finished) < 12, f"the client must die mid-sweep, {len(finished)} chunks were done"
    assert not (compute_dir / "results.h5").exists()

    cgs = ClusterGridSearch(client, compute_dir=compute_dir, progress=False)
    path = cgs.run(chunk_size=2, **sweep)
    assert cgs.last_run["skipped"] == len(finished)
    assert cgs.last_run["computed"] == 12 - len(finished)
    chunks = manifest_chunks(compute_dir)
    assert len(chunks) == 12 and sorted(chunks) == list(range(12)), "no chunk computed twice"
    assert_same(path, ref, ref_map)


WORKER_FILE = """
import numpy as np
import pandas as pd

def worker_postprocessing(results, result_map):
    # Power spectrum per column (PyRates' example is Welch's; a periodogram needs no scipy).
    x = results.to_numpy()
    x = x - np.nanmean(x, axis=0)
    power = np.abs(np.fft.rfft(np.nan_to_num(x), axis=0)) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], d=results.index[1] - results.index[0])
    return pd.DataFrame(power, index=pd.Index(freqs, name="freq"), columns=results.columns)
"""


def test_cluster_worker_file_equals_function_on_grid_search(client, tmp_path):
    sweep = seed_sweep()
    ref, ref_map = reference(sweep)
    wf = tmp_path / "worker_template.py"
    wf.write_text(WORKER_FILE)
    namespace: dict = {}
    exec(WORKER_FILE, namespace)
    expected = namespace["worker_postprocessing"](ref, ref_map)
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    path = cgs.run(chunk_size=5, worker_file=wf, **sweep)
    got = pd.read_hdf(path, "Results/results")
    # The FFT of a column does not depend on its neighbours; 1e-12 relative covers pocketfft
    # batching several columns differently for a 5-column chunk than for the 12-column frame.
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=0.0)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), ref_map, check_exact=True)


FAILING_WORKER_FILE = """
def worker_postprocessing(results, result_map):
    if "Net3_5" in result_map.index:
        raise RuntimeError("chunk with Net3_5 refused")
    return results
"""


def status_of(path: str) -> tuple[list[str], list[str], int]:
    """The engine's per-point status, the per-point errors (/status/error) and the root
    attribute failed_points, read with h5py (independent of rustrates' reader)."""
    import h5py

    with h5py.File(path, "r") as f:
        codes = {0: "ok", 1: "nonfinite", 2: "step_too_small", 3: "failed"}
        status = [codes[int(c)] for c in f["status/code"][()]]
        errors = [e.decode() for e in f["status/error"][()]] if "status/error" in f else []
        return status, errors, int(f.attrs["failed_points"])


def nan_columns(frame: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """``frame`` with the columns of the grid points ``labels`` set to NaN."""
    out = frame.copy()
    out.loc[:, out.columns.get_level_values(0).isin(labels)] = np.nan
    return out


def test_cluster_failing_chunk_marked_in_file_and_rerun_retries_only_it(client, tmp_path):
    sweep = seed_sweep()
    ref, ref_map = reference(sweep)
    wf = tmp_path / "worker_template.py"
    wf.write_text(FAILING_WORKER_FILE)
    compute_dir = tmp_path / "cd"
    cgs = ClusterGridSearch(client, compute_dir=compute_dir, retries=1, progress=False)
    with pytest.warns(
        rustrates.cluster.ClusterSweepWarning,
        match=r"1 of 3 chunks failed after 1 retries: chunk 1 \(points 4\.\.7\): RuntimeError: chunk with Net3_5 refused",
    ):
        path = cgs.run(chunk_size=4, worker_file=wf, **sweep)
    failed_labels = ["Net3_4", "Net3_5", "Net3_6", "Net3_7"]
    assert path == os.fspath(compute_dir / "results.h5")
    assert cgs.last_run == {"chunks": 3, "skipped": 0, "computed": 2, "failed": 1}
    assert [(f["chunk"], f["labels"]) for f in cgs.failed] == [(1, failed_labels)]
    assert sorted(manifest_chunks(compute_dir)) == [0, 2], "a failed chunk is never recorded as done"

    # The engine marked exactly the failed chunk's points, with the error.
    status, errors, failed_points = status_of(path)
    assert [i for i, s in enumerate(status) if s == "failed"] == [4, 5, 6, 7]
    assert failed_points == 4
    assert errors[4:8] == [cgs.failed[0]["error"]] * 4 and errors[:4] == errors[8:] == [""] * 4
    # Every other point is grid_search's, bit for bit; the failed ones are NaN columns (the
    # identity worker_file stores the traces; the engine's layout holds the same).
    expected = nan_columns(ref, failed_labels)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/results"), expected, check_exact=True)
    traces, rmap, _ = rustrates.read_results(path)
    pd.testing.assert_frame_equal(traces, expected, check_exact=True)
    pd.testing.assert_frame_equal(rmap, ref_map, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), ref_map, check_exact=True)
    assert not ref[failed_labels].isna().all().all(), "the reference has numbers where the file has NaN"

    # Fixed worker_file, same call: only the failed chunk runs, and the file is complete.
    wf.write_text(FAILING_WORKER_FILE.replace('"Net3_5"', '"no such label"'))
    with warnings.catch_warnings():
        warnings.simplefilter("error", rustrates.cluster.ClusterSweepWarning)
        path = cgs.run(chunk_size=4, worker_file=wf, **sweep)
    assert cgs.last_run == {"chunks": 3, "skipped": 2, "computed": 1, "failed": 0}
    assert cgs.failed == []
    assert sorted(manifest_chunks(compute_dir)) == [0, 1, 2]
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/results"), ref, check_exact=True)
    status, errors, failed_points = status_of(path)
    assert "failed" not in status and errors == [] and failed_points == 0


def test_cluster_failing_chunks_raise_when_asked_and_all_failed_writes_nothing(client, tmp_path):
    sweep = seed_sweep()
    wf = tmp_path / "worker_template.py"
    wf.write_text(FAILING_WORKER_FILE)
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", retries=0, on_failure="raise", progress=False)
    with pytest.raises(ClusterSweepError, match="1 of 3 chunks failed after 0 retries") as info:
        cgs.run(chunk_size=4, worker_file=wf, **sweep)
    assert info.value.path == os.fspath(tmp_path / "cd" / "results.h5")
    assert status_of(info.value.path)[2] == 4, "raised after writing the marked file"

    wf.write_text(FAILING_WORKER_FILE.replace('if "Net3_5" in result_map.index:', "if True:"))
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd2", retries=0, progress=False)
    with pytest.raises(ClusterSweepError, match="3 of 3 chunks failed.*no chunk was computed, so no file") as info:
        cgs.run(chunk_size=4, worker_file=wf, **sweep)
    assert info.value.path is None and [f["chunk"] for f in info.value.failed] == [0, 1, 2]
    assert not (tmp_path / "cd2" / "results.h5").exists()


OPS_YAML = """
my_op:
  base: model_templates.neural_mass_models.qif.qif_op
  variables:
    eta: -4.0
pop:
  base: NodeTemplate
  operators:
    - my_op
"""

NET_YAML = """
net:
  base: CircuitTemplate
  nodes:
    PC: ops.pop
    IIN: ops.pop
  edges:
    - [PC/my_op/r, PC/my_op/r_in, null, {weight: 15.0}]
    - [PC/my_op/r, IIN/my_op/r_in, null, {weight: 10.0}]
    - [IIN/my_op/r, PC/my_op/r_in, null, {weight: -10.0}]
"""


def test_cluster_template_files_only_on_the_client(client, tmp_path, monkeypatch):
    # A relative template path in a directory the workers do not run in, whose circuit uses
    # a node from a second file next to it (found there by the loader): both files travel
    # with the tasks.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "ops.yaml").write_text(OPS_YAML)
    (tmp_path / "models" / "net.yaml").write_text(NET_YAML)
    monkeypatch.chdir(tmp_path)
    assert all(not Path(cwd, "models", "net.yaml").exists() for cwd in client.run(os.getcwd).values()), (
        "the workers must not see the template at the relative path"
    )
    sweep = dict(
        circuit_template="models/net.yaml/net",
        param_grid={"eta_pc": np.linspace(-5, 5, 3), "eta_iin": np.linspace(-5, 5, 3)},
        param_map={
            "eta_pc": {"vars": ["my_op/eta"], "nodes": ["PC"]},
            "eta_iin": {"vars": ["my_op/eta"], "nodes": ["IIN"]},
        },
        simulation_time=2.0,
        dt=1e-3,
        sampling_step_size=0.01,
        inputs={"PC/my_op/I_ext": 1.0},
        outputs={"r": "PC/my_op/r"},
        permute_grid=True,
    )
    ref, ref_map = reference(sweep)
    cgs = ClusterGridSearch(client, progress=False)
    path = cgs.run(chunk_size=4, **sweep)
    assert cgs.last_run["computed"] == 3
    assert_same(path, ref, ref_map)
    assert pd.read_hdf(path, "Config/simulation")["circuit_template"] == "models/net.yaml/net"

    # The fingerprint still names and guards the folder: the same call resumes it, an
    # edited template is another sweep.
    cgs.run(chunk_size=4, **sweep)
    assert cgs.last_run["skipped"] == 3 and cgs.last_run["computed"] == 0
    (tmp_path / "models" / "net.yaml").write_text(NET_YAML.replace("weight: 15.0", "weight: 14.0"))
    other = ClusterGridSearch(client, compute_dir=Path(path).parent, progress=False)
    with pytest.raises(rustrates.SweepError, match="fingerprint"):
        other.run(chunk_size=4, **sweep)


def test_cluster_default_compute_dir_is_fingerprint_folder_and_other_sweep_is_refused(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = seed_sweep()
    cgs = ClusterGridSearch(client, progress=False)
    path = Path(cgs.run(chunk_size=6, **sweep))
    assert path.parent.parent == tmp_path and path.parent.name.startswith("rustrates_cgs_")
    fingerprint = json.loads((path.parent / "sweep.json").read_text())["fingerprint"]
    assert path.parent.name == f"rustrates_cgs_{fingerprint[:16]}"
    cgs.run(chunk_size=6, **sweep)
    assert cgs.last_run["computed"] == 0 and cgs.last_run["skipped"] == 2

    other = ClusterGridSearch(client, compute_dir=path.parent, progress=False)
    changed = dict(sweep, simulation_time=3.0, inputs={"PC/Op_e/inp": np.ones((3000, 1))})
    with pytest.raises(rustrates.SweepError, match="fingerprint"):
        other.run(chunk_size=6, **changed)


def test_cluster_unreachable_scheduler_is_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port once the socket is closed.
    t0 = time.monotonic()
    with pytest.raises(
        ClusterConnectionError, match=rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 2 s"
    ):
        ClusterGridSearch(f"tcp://127.0.0.1:{port}", connect_timeout=2)
    assert time.monotonic() - t0 < 30


def test_cluster_bad_arguments_fail_before_tasks(client, tmp_path):
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    sweep = seed_sweep()
    with pytest.raises(rustrates.SweepError, match="chunk_size"):
        cgs.run(chunk_size=0, **sweep)
    with pytest.raises(TypeError, match="alias"):
        cgs.run(chunk_size=2, params=dict(sweep["param_grid"]), **sweep)
    bad = tmp_path / "wf.py"
    bad.write_text("def other(results, result_map):\n    return results\n")
    with pytest.raises(ValueError, match="worker_postprocessing"):
        cgs.run(chunk_size=2, worker_file=bad, **sweep)


def test_cluster_worker_without_rustrates_is_named(client, tmp_path, monkeypatch):
    # A worker whose check reports a failed import (what a Python without rustrates answers).
    import rustrates.cluster._worker as cl

    monkeypatch.setattr(
        cl,
        "_CHECK_SOURCE",
        textwrap.dedent("""
        def rustrates_worker_check():
            import sys
            try:
                import rustrates_not_installed_here
            except Exception as exc:
                return ("missing", f"{type(exc).__name__}: {exc}", sys.executable)
            return ("ok", "", sys.executable)
    """),
    )
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    with pytest.raises(ImportError, match=r"2 of 2 Dask workers cannot import rustrates: tcp://.*ModuleNotFoundError"):
        cgs.run(chunk_size=6, **seed_sweep())


def test_cluster_refine_equals_grid_search_refine_and_resumes_from_recorded_passes(client, tmp_path):
    # Stuart–Landau over μ (Hopf at 0), 4 levels: the engine decides each pass on the client,
    # the workers compute each pass's points as chunks of 2. The file has grid_search's point
    # set — points, labels, refine_level, summaries, traces — bit for bit (same engine and back
    # end; a chunk is only another subset of lanes), and the pandas keys of a cluster sweep.
    settings = dict(HOPF_REFINE_SETTINGS, sampling_step_size=0.1, keep_traces=True)
    sweep = dict(circuit_template=HOPF, param_grid=HOPF_REFINE_GRID, param_map=HOPF_MU, **settings)
    local_path = tmp_path / "local.h5"
    grid_search(HOPF, HOPF_REFINE_GRID, HOPF_MU, **settings, out=local_path)
    local_traces, local_map, local_summ = rustrates.read_results(local_path)
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    path = cgs.run(chunk_size=2, **sweep)
    assert cgs.last_run["passes"] >= 4 and cgs.last_run["computed"] == cgs.last_run["chunks"] > cgs.last_run["passes"]
    traces, rmap, summ = rustrates.read_results(path)
    assert list(rmap.columns) == ["mu", "refine_level"] and sorted(set(rmap["refine_level"])) == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(rmap, local_map, check_exact=True)
    pd.testing.assert_frame_equal(summ, local_summ, check_exact=True)
    pd.testing.assert_frame_equal(traces, local_traces, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), local_map, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/results"), local_traces, check_exact=True)
    # Every pass is recorded: the same call again (after the file is lost, as when a client
    # dies before writing it) computes nothing and writes the same point set.
    os.remove(path)
    path = cgs.run(chunk_size=2, **sweep)
    assert cgs.last_run["computed"] == 0 and cgs.last_run["skipped"] == cgs.last_run["chunks"]
    traces, rmap, summ = rustrates.read_results(path)
    pd.testing.assert_frame_equal(rmap, local_map, check_exact=True)
    pd.testing.assert_frame_equal(summ, local_summ, check_exact=True)
    pd.testing.assert_frame_equal(traces, local_traces, check_exact=True)
