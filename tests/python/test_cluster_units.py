"""Issue 17: the parts of ``rustrates.cluster`` tested without a cluster — the worker's task
run in this process, the pandas-key writer on a file the engine merged, the SSH host check
run through a local shell, the Slurm partition check against a stand-in ``sinfo``, and the
client's own helpers. The live-cluster tests (test_cluster*.py) cover the same code end to
end; these fail at the module that broke."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from conftest import HOPF, HOPF_MU, HOPF_REFINE_GRID, HOPF_REFINE_SETTINGS, NET3

GRID = {"eta_op": [-5.0, -2.0, 1.0, 4.0, 7.0]}
PMAP = {"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}}
SETTINGS = dict(
    simulation_time=0.05,
    step_size=1e-3,
    inputs={"PC/Op_e/inp": 1.0},
    outputs={"r": "PC/Op_e/r", "v": "PC/Op_e/v"},
    backend="reference",
)


def request(**changes):
    from rustrates import _core

    return _core.build_request("test", NET3, GRID, PMAP, **{**SETTINGS, **changes})


def client_payload(req, chunk_size, post=None):
    """The payload ``ClusterGridSearch.run`` sends with each task (see ``_client``)."""
    from rustrates.cluster import _worker

    kwargs = {
        "template": req.template,
        "args": req.engine_args(),
        "chunk_size": chunk_size,
        "trace_precision": req.trace_precision,
    }
    sweep = _worker._new_sweep(kwargs)
    payload = {
        "fingerprint": sweep.fingerprint,
        "post_source": post,
        "post_name": "post.py",
        "kwargs": dict(kwargs, template_files=sweep.template_files, template_cwd=os.getcwd()),
    }
    return sweep, payload


def run_all_chunks(sweep, payload, compute_dir):
    """Every chunk through the worker's task in this process, recorded by the client's call."""
    from rustrates.cluster import run_chunk_task

    compute_dir.mkdir()
    assert sweep.prepare_dir(compute_dir) == []
    outs = []
    for i in range(len(sweep.chunks())):
        out = run_chunk_task(payload, i)
        assert out["index"] == i and out["fingerprint"] == sweep.fingerprint
        sweep.record_part(compute_dir, i, out["data"])
        outs.append(out)
    return outs


# ---------------------------------------------------------------------------------------
# the worker


def test_worker_task_run_here_gives_the_parts_of_the_sweep_run_at_once(rustrates, tmp_path):
    """``run_chunk_task`` without Dask: its part bytes, recorded and read back with the
    engine's part reader, are the points of the same sweep run at once (same engine and back
    end: bitwise)."""
    from rustrates import _core

    req = request(summaries=["mean", "max"], keep_traces=True)
    sweep, payload = client_payload(req, chunk_size=2)
    run_all_chunks(sweep, payload, tmp_path / "cd")
    at_once = _core.execute(req)
    for i, (start, end) in enumerate(sweep.chunks()):
        part = sweep.read_part(tmp_path / "cd" / sweep.part_path(i))
        assert list(part["labels"]) == list(at_once["labels"])[start:end]
        np.testing.assert_array_equal(part["traces"], at_once["traces"][start:end])
        np.testing.assert_array_equal(part["summaries"], at_once["summaries"][start:end])


def test_worker_postprocessing_sees_the_chunk_as_grid_search_returns_it(rustrates, tmp_path):
    """A ``worker_file`` runs on each chunk's results frame; its pickled output is the same
    function applied to ``grid_search``'s frame of those points (computed independently here)."""
    from rustrates import _core

    post = "def worker_postprocessing(results, result_map):\n    return results.max().to_frame('peak')\n"
    req = request()
    sweep, payload = client_payload(req, chunk_size=3, post=post)
    outs = run_all_chunks(sweep, payload, tmp_path / "cd")
    frame = _core.traces_frame(_core.execute(req))
    for out, (start, end) in zip(outs, sweep.chunks()):
        got = pickle.loads(out["post"])
        labels = sweep.labels(start, end)
        expected = frame.loc[:, [c for c in frame.columns if c[0] in labels]].max().to_frame("peak")
        pd.testing.assert_frame_equal(got, expected)


def test_worker_aligns_unaligned_arrays_from_dask_buffers(rustrates):
    from rustrates.cluster import _worker

    raw = bytearray(8 * 6 + 1)
    unaligned = np.frombuffer(raw, dtype=np.float64, count=6, offset=1)
    unaligned[:] = np.arange(6.0)
    assert not unaligned.flags.aligned
    fixed = _worker._aligned({"grid_values": [unaligned], "grid_rows": None, "inputs": {"x": unaligned}})
    for a in (fixed["grid_values"][0], fixed["inputs"]["x"]):
        assert a.flags.aligned and a.flags.c_contiguous
        np.testing.assert_array_equal(a, np.arange(6.0))


# ---------------------------------------------------------------------------------------
# the pandas-key writer


def test_pandas_keys_of_a_merged_file_are_what_grid_search_returns(rustrates, tmp_path):
    """The writer's keys on a file the engine merged from worker parts: ``Results/results``
    (summaries) and ``Results/result_map`` equal the frames ``grid_search`` returns for the
    same sweep; ``Config/simulation`` holds the settings given."""
    from rustrates import _pandas_keys
    from rustrates.cluster import _keys

    req = request(summaries=["mean", "max"], keep_traces=False)
    sweep, payload = client_payload(req, chunk_size=2)
    compute_dir = tmp_path / "cd"
    run_all_chunks(sweep, payload, compute_dir)
    staging = tmp_path / "results.h5"
    config = {"simulation_time": 0.05, "dt": 1e-3, "cutoff": 0.0}
    nodes, rest, labels = _keys._seed_keys(
        sweep, req.grid.keys, config, req.param_map, req.inputs, req.outputs, {"note": [1.0, 2.0]}, None
    )
    _pandas_keys.put_prepared(staging, nodes, rest, create=True)
    merger = sweep.merger(compute_dir, staging)
    for i in range(len(sweep.chunks())):
        merger.add(i)
    merged = merger.finish([])
    assert merged["failed_points"] == 0
    _keys._add_results_key(os.fspath(staging), None, sweep.chunks(), False, merged, labels)

    results, result_map = rustrates.grid_search(NET3, GRID, PMAP, summaries=["mean", "max"], **SETTINGS)
    got = pd.read_hdf(staging, "Results/results")
    np.testing.assert_array_equal(got.to_numpy(), results.to_numpy())
    assert list(got.index) == list(results.index)
    pd.testing.assert_frame_equal(pd.read_hdf(staging, "Results/result_map"), result_map, check_names=False)
    assert pd.read_hdf(staging, "Config/simulation")["dt"] == 1e-3
    np.testing.assert_array_equal(pd.read_hdf(staging, "AdditionalData/note").to_numpy(), [1.0, 2.0])


def test_failed_points_are_left_out_of_the_status_warning(rustrates):
    from rustrates import _rustrates
    from rustrates.cluster import _keys

    failed = _rustrates.STATUS_NAMES[_rustrates.FAILED_CODES[0]]
    res = {
        "labels": ["a", "b", "c"],
        "status": ["ok", failed, "nonfinite"],
        "status_time": np.array([np.nan, np.nan, 0.5]),
    }
    kept = _keys._without_failed(res)
    assert kept["labels"] == ["a", "c"] and kept["status"] == ["ok", "nonfinite"]
    np.testing.assert_array_equal(kept["status_time"], [np.nan, 0.5])


def test_status_names_and_sets_are_the_engines(rustrates):
    """The codes a results file stores (the engine's ``/status/code`` documentation: 0 ok,
    1 non-finite, 2 step too small, 3 failed) and the names of the result dict."""
    from rustrates import _rustrates

    assert _rustrates.STATUS_NAMES == {0: "ok", 1: "nonfinite", 2: "step_too_small", 3: "failed"}
    assert _rustrates.DIVERGED_CODES == (1, 2) and _rustrates.FAILED_CODES == (3,)


# ---------------------------------------------------------------------------------------
# SSH checks


def test_ssh_connect_options_per_host():
    from rustrates.cluster import _ssh

    assert _ssh._per_host_options(None, 2, 2) == {}
    assert _ssh._per_host_options({"port": 22}, 2, 2) == {"port": 22}
    # A single node runs scheduler and worker: its one entry serves both.
    assert _ssh._per_host_options([{"port": 2222}], 1, 2) == [{"port": 2222}, {"port": 2222}]
    with pytest.raises(ValueError, match="lists 1 mappings for 2 hosts"):
        _ssh._per_host_options([{"port": 1}], 2, 2)
    with pytest.raises(TypeError, match="connect_options must be a mapping"):
        _ssh._per_host_options("port=22", 2, 2)


def probe_here(python: str) -> tuple[int, str, str]:
    """The host check's command run by this machine's shell, as sshd runs it on a host."""
    out = subprocess.run(
        ["/bin/sh", "-c", _ssh_module().probe_command(python)], capture_output=True, text=True, timeout=120
    )
    return out.returncode, out.stdout, out.stderr


def _ssh_module():
    from rustrates.cluster import _ssh

    return _ssh


def test_ssh_probe_of_this_python_passes_and_of_a_missing_one_is_named(rustrates):
    ssh = _ssh_module()
    assert ssh._probe_error(sys.executable, "here", *probe_here(sys.executable), needs_rustrates=True) is None
    missing = "/nonexistent/bin/python"
    err = ssh._probe_error(missing, "SSH host h", *probe_here(missing), needs_rustrates=True)
    assert isinstance(err, FileNotFoundError) and "is not an executable Python on SSH host h" in str(err)
    # Not a Python at all: runs, prints no JSON.
    err = ssh._probe_error("/bin/echo", "SSH host h", *probe_here("/bin/echo"), needs_rustrates=True)
    assert isinstance(err, RuntimeError) and "failed to run a Python check" in str(err)


def test_ssh_probe_answers_name_what_is_missing(rustrates):
    ssh = _ssh_module()
    here = "{}.{}".format(*sys.version_info[:2])
    version = rustrates.__version__

    def answer(**found):
        return ssh._probe_error(
            "py",
            "SSH host h",
            0,
            json.dumps({"python": here, "distributed": "1", "rustrates": version, **found}),
            "",
            needs_rustrates=True,
        )

    assert answer() is None
    assert "is Python 2.7, this client" in str(answer(python="2.7"))
    err = answer(distributed=None, distributed_error="ModuleNotFoundError: x")
    assert isinstance(err, ImportError) and "cannot import dask.distributed" in str(err)
    err = answer(rustrates=None, rustrates_error="ModuleNotFoundError: y")
    assert isinstance(err, ImportError) and "cannot import rustrates" in str(err)
    assert f"has rustrates 0.0.0, this client {version}" in str(answer(rustrates="0.0.0"))
    # The scheduler's host needs dask only.
    assert (
        ssh._probe_error(
            "py", "h", 0, json.dumps({"python": here, "distributed": "1", "rustrates": None}), "", needs_rustrates=False
        )
        is None
    )


# ---------------------------------------------------------------------------------------
# Slurm checks


def test_slurm_partitions_of_a_job_script():
    from rustrates.cluster import _slurm

    header = "\n".join(
        [
            "#!/bin/bash",
            "#SBATCH -J dask-worker",
            "#SBATCH -p debug,long",
            "#SBATCH --partition=gpu",
            "#SBATCH -pshort",
            "# SBATCH -p commented_out",
            "srun -p not_a_directive",
        ]
    )
    assert _slurm._requested_partitions(header) == ["debug", "long", "gpu", "short"]


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A stand-in ``dask_jobqueue`` (its ``SLURMCluster`` type) and an ``sinfo`` on PATH that
    prints ``SINFO_OUT`` (exit status ``SINFO_STATUS``)."""
    module = types.ModuleType("dask_jobqueue")

    class SLURMCluster:
        def __init__(self, job_header):
            self.job_header = job_header

    module.SLURMCluster = SLURMCluster
    monkeypatch.setitem(sys.modules, "dask_jobqueue", module)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sinfo = bin_dir / "sinfo"
    sinfo.write_text('#!/bin/sh\necho "$SINFO_ERR" >&2\nprintf "%s" "$SINFO_OUT"\nexit "${SINFO_STATUS:-0}"\n')
    sinfo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return SLURMCluster


def test_slurm_partition_check_against_sinfo(fake_slurm, monkeypatch):
    from rustrates.cluster import ClusterConnectionError, SlurmPartitionError, check_slurm_partition

    monkeypatch.setenv("SINFO_OUT", "debug*\nlong\n")
    check_slurm_partition(fake_slurm("#SBATCH -p long"))
    check_slurm_partition(fake_slurm("#SBATCH -J no-partition"))
    check_slurm_partition(object())  # not a SLURMCluster: nothing to check
    with pytest.raises(SlurmPartitionError, match=r"'gpu' .* sinfo lists: debug, long\. .*default partition \(debug\)"):
        check_slurm_partition(fake_slurm("#SBATCH --partition=gpu"))
    monkeypatch.setenv("SINFO_STATUS", "1")
    monkeypatch.setenv("SINFO_ERR", "slurm_load_partitions: Unable to contact slurm controller")
    with pytest.raises(ClusterConnectionError, match="sinfo said slurm_load_partitions: Unable to contact"):
        check_slurm_partition(fake_slurm("#SBATCH -p long"))


def test_slurm_partition_check_passes_without_sinfo(fake_slurm, monkeypatch, tmp_path):
    from rustrates.cluster import check_slurm_partition

    monkeypatch.setenv("PATH", os.fspath(tmp_path / "empty"))
    check_slurm_partition(fake_slurm("#SBATCH -p anything"))


# ---------------------------------------------------------------------------------------
# the client's helpers


def test_client_failure_error_names_chunks_points_and_the_way_to_resume(tmp_path):
    from rustrates.cluster import ClusterSweepError, _client

    failures = [{"chunk": c, "start": 2 * c, "end": 2 * c + 2, "labels": [], "error": f"E{c}"} for c in range(5)]
    err = _client._failure_error(failures, 9, 3, tmp_path, "/x/results.h5")
    assert isinstance(err, ClusterSweepError) and err.failed is failures and err.path == "/x/results.h5"
    text = str(err)
    assert text.startswith("5 of 9 chunks failed after 3 retries: chunk 0 (points 0..1): E0; chunk 1 (points 2..3)")
    assert "and 2 more" in text and f"same compute_dir {tmp_path}" in text
    assert "no file was written" in str(_client._failure_error(failures[:1], 1, 0, tmp_path, None))


def test_client_helpers():
    from rustrates.cluster import _client

    assert _client._is_address("tcp://h:8786") and _client._is_address("h:8786")
    assert not _client._is_address("localhost") and not _client._is_address("h:port")
    assert _client._alias("param_grid", None, "params", 1) == 1
    value = [1]
    assert _client._alias("param_grid", value, "params", value) is value
    with pytest.raises(TypeError, match="pass param_grid or its alias params, not both"):
        _client._alias("param_grid", [1], "params", [1])
    calls = []
    once = _client._Once(lambda: calls.append(1) or len(calls))
    assert (once(), once(), calls) == (1, 1, [1])
    _client._check_worker_file("def worker_postprocessing(results, result_map):\n    return results\n", "w.py")
    with pytest.raises(ValueError, match="defines no function worker_postprocessing"):
        _client._check_worker_file("x = 1\n", "w.py")
    with pytest.raises(SyntaxError, match="worker_file w.py"):
        _client._check_worker_file("def (:\n", "w.py")


def test_client_takes_every_grid_search_keyword():
    """Every keyword of ``grid_search`` reaches ``ClusterGridSearch.run``: in its signature,
    handed to the request builder by name (``_core.REQUEST_KEYWORDS``), or a flat PyRates setting. Only
    what has no meaning on a cluster is left out. A keyword added to ``grid_search`` (and the
    engine's ``SweepArgs``) without the cluster mode fails here."""
    import inspect

    from rustrates import _core
    from rustrates.cluster import ClusterGridSearch
    from rustrates.utility.grid_search import grid_search

    # out/overwrite: the cluster writes compute_dir/results.h5; progress: a constructor
    # argument; init_kwargs: config_kwargs={'init_kwargs': ...}; ignored PyRates keywords.
    not_on_a_cluster = {"out", "overwrite", "progress", "init_kwargs", "njit", "parallel"}
    run = set(inspect.signature(ClusterGridSearch.run).parameters)
    builder = set(inspect.signature(_core.build_request).parameters)
    for name, p in inspect.signature(grid_search).parameters.items():
        if p.kind is p.VAR_KEYWORD or name in not_on_a_cluster:
            continue
        assert name in run or name in _core.REQUEST_KEYWORDS or name in _core._FLAT_SETTINGS, name
    assert _core.REQUEST_KEYWORDS <= builder


def test_the_cluster_mode_refines_pass_by_pass_with_the_engine_deciding(tmp_path):
    # refine= in the cluster mode: the engine runs the refinement and asks run_pass for each
    # pass's points; here each pass's chunks run through the worker's task in this process
    # (as a Dask worker would) and are recorded. The file holds the points, labels, levels and
    # summaries of grid_search(refine=..., out=...) bit for bit (same engine and back end; a
    # chunk is only another subset of lanes).
    import rustrates
    from rustrates import _rustrates
    from rustrates.cluster import _worker

    settings = dict(HOPF_REFINE_SETTINGS, backend="jit")
    grid = HOPF_REFINE_GRID
    req = _core_request(HOPF, grid, HOPF_MU, settings)
    sweep, payload = client_payload(req, chunk_size=2)
    assert sweep.refines
    passes = []

    def run_pass(points, backend):
        assert backend == "jit" and points.shape[1] == 1
        args = dict(payload["kwargs"]["args"], grid_values=None, grid_rows=points, permute=False, refine=None)
        kwargs = dict(payload["kwargs"], args=dict(args, backend=backend), chunk_size=2)
        pass_sweep = _worker._new_sweep(kwargs)
        pass_payload = dict(payload, fingerprint=pass_sweep.fingerprint, kwargs=kwargs)
        pass_dir = tmp_path / f"pass_{len(passes)}"
        run_all_chunks(pass_sweep, pass_payload, pass_dir)
        passes.append(len(points))
        return pass_sweep, os.fspath(pass_dir)

    sweep.run_refined(os.fspath(tmp_path / "cluster.h5"), run_pass)
    rustrates.grid_search(HOPF, grid, HOPF_MU, out=tmp_path / "local.h5", **settings)
    cluster = _rustrates.read_results(os.fspath(tmp_path / "cluster.h5"))
    local = _rustrates.read_results(os.fspath(tmp_path / "local.h5"))
    assert len(passes) >= 4 and sum(passes) == len(local["labels"])
    assert cluster["labels"] == local["labels"] and cluster["grid_keys"] == ["mu", "refine_level"]
    for key in ("grid", "summaries"):
        np.testing.assert_array_equal(cluster[key].view(np.uint64), local[key].view(np.uint64))
    assert list(cluster["status"]) == list(local["status"])
    # A run_pass that raises stops the refinement with its own exception.

    def broken(points, backend):
        raise KeyError("no workers today")

    with pytest.raises(KeyError, match="no workers today"):
        sweep.run_refined(os.fspath(tmp_path / "broken.h5"), broken)
    assert not (tmp_path / "broken.h5").exists()


def _core_request(template, grid, pmap, settings):
    from rustrates import _core

    return _core.build_request("test", template, grid, pmap, **settings)
