"""Sweeps on a real single-node Slurm (issue 8), started by ``slurm_server.slurm``.

Two routes, each compared with a run that does not go through Slurm: ``ClusterGridSearch``
with a ``dask_jobqueue.SLURMCluster`` (workers are Slurm jobs running this venv's Python)
against ``grid_search`` in this process, and the ``examples/slurm`` job array plus its
dependent merge job against a single ``rustrates sweep``. Equality is exact in both: the same
engine computes the same lanes; only the split into chunks and processes differs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import CI, REPO, rustrates_binary

# dask-jobqueue 0.9.0 sets a SIGINT handler that calls sys.exit() when it is imported
# (dask/dask-jobqueue#696, fixed after 0.9.0): Ctrl-C in every later test would raise
# SystemExit instead of KeyboardInterrupt, so the handler before the import is put back.
_sigint = signal.getsignal(signal.SIGINT)
try:
    import dask_jobqueue  # noqa: F401
except ImportError:  # pragma: no cover - exercised only where dask-jobqueue is missing
    if CI:
        raise
    pytest.skip("dask-jobqueue is not installed (pip install 'rustrates[cluster]')", allow_module_level=True)
finally:
    signal.signal(signal.SIGINT, _sigint)

from dask.distributed import Client
from dask_jobqueue import SLURMCluster

import rustrates
from rustrates import ClusterGridSearch
from rustrates.cluster import SlurmPartitionError
from slurm_server import slurm  # noqa: F401 - the session fixture
from test_cluster import assert_same, manifest_chunks, reference, seed_sweep, slow_sweep

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.filterwarnings("ignore::rustrates.RustratesWarning")]

EXAMPLES = REPO / "examples" / "slurm"


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def slurm_cluster(tmp: Path, **kwargs) -> SLURMCluster:
    """Workers of one core each, as Slurm jobs on the loopback interface, logs in ``tmp``."""
    options = dict(
        queue="debug",
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        python=sys.executable,
        interface="lo",
        log_directory=os.fspath(tmp),
        scheduler_options={"dashboard_address": "127.0.0.1:0"},
    )
    options.update(kwargs)
    return SLURMCluster(**options)


def test_unknown_partition_is_named_with_the_known_ones(slurm, tmp_path):
    cluster = slurm_cluster(tmp_path, queue="no-such-partition")
    try:
        with Client(cluster) as client:
            with pytest.raises(
                SlurmPartitionError,
                match=(
                    r"Slurm partition 'no-such-partition' \(SLURMCluster queue= or an #SBATCH -p directive\) is "
                    r"unknown to this Slurm; sinfo lists: debug\. Set SLURMCluster\(queue=\.\.\.\) to one of those "
                    r"\(leave it unset for the default partition \(debug\)"
                ),
            ):
                ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    finally:
        cluster.close()
    # The same check reads job_extra_directives; the known partition passes.
    cluster = slurm_cluster(tmp_path, queue=None, job_extra_directives=["--partition=debug,gpu"])
    try:
        with Client(cluster) as client, pytest.raises(SlurmPartitionError, match=r"partition 'gpu'"):
            ClusterGridSearch(client, progress=False)
    finally:
        cluster.close()


SPEC = """\
template: model_templates.montbrio.simple_montbrio.Net3
simulation_time: 0.5
step_size: 1.0e-4
sampling_step_size: 1.0e-3
permute_grid: true
chunk_size: 2
param_grid: {eta_op: {linspace: [-5, 5, 3]}, eta_iin: [-1, 1, 3]}
param_map:
  eta_op: {vars: [Op_e/eta], nodes: [PC]}
  eta_iin: {vars: [Op_i/eta], nodes: [IIN]}
inputs: {PC/Op_e/inp: 1.0}
outputs: {r: PC/Op_e/r}
summaries: [mean, max]
keep_traces: true
"""


def job_end_state(job: str, timeout: float) -> tuple[str, str]:
    """(JobState, ExitCode) once ``job`` has ended (slurmctld keeps a finished job for
    MinJobAge = 10 s; ``sbatch --wait`` would do, but polls only every few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["scontrol", "--oneliner", "show", "job", job], capture_output=True, text=True, check=True)
        fields = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
        if fields["JobState"] not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return fields["JobState"], fields["ExitCode"]
        time.sleep(0.1)
    raise AssertionError(f"Slurm job {job} did not end within {timeout:g} s")


def datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_sbatch_array_plus_merge_equals_a_single_run(slurm, tmp_path):
    binary = rustrates_binary()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    single = tmp_path / "single.h5"
    subprocess.run([binary, "sweep", spec, "--out", single, "-q"], check=True, capture_output=True)

    parts, merged = tmp_path / "parts", tmp_path / "merged.h5"
    env = dict(
        os.environ, SPEC=os.fspath(spec), PARTS=os.fspath(parts), OUT=os.fspath(merged), RUSTRATES=os.fspath(binary)
    )
    # One CPU per task (the script asks for 4), as a user overrides it for a small node.
    array = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-2",
            "--cpus-per-task=1",
            f"--chdir={tmp_path}",
            EXAMPLES / "sweep_array.sbatch",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    array_job = array.stdout.strip().split(";")[0]
    merge_job = subprocess.run(
        ["sbatch", "--parsable", f"--dependency=afterok:{array_job}", f"--chdir={tmp_path}", EXAMPLES / "merge.sbatch"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    state = job_end_state(merge_job, timeout=120)
    logs = "\n".join(f"{p.name}:\n{p.read_text()}" for p in sorted(tmp_path.glob("rustrates-*.log")))
    assert state == ("COMPLETED", "0:0"), f"merge job: {state}\n{logs}"
    assert sorted(p.name for p in tmp_path.glob("rustrates-*.log")) == [
        f"rustrates-{array_job}_{i}.log" for i in range(3)
    ] + [f"rustrates-merge-{merge_job}.log"]
    # 9 points in chunks of 2 are 5 chunks; task i of 3 ran chunks i, i+3: every task wrote parts.
    for i, chunks in enumerate([2, 2, 1]):
        assert len(list((parts / f"task_{i}").rglob("*.h5"))) == chunks, f"task {i}"

    a, b = datasets(single), datasets(merged)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name, strict=True)
    traces_a, map_a, summaries_a = rustrates.read_results(single)
    traces_b, map_b, summaries_b = rustrates.read_results(merged)
    pd.testing.assert_frame_equal(traces_b, traces_a, check_exact=True)
    pd.testing.assert_frame_equal(map_b, map_a, check_exact=True)
    pd.testing.assert_frame_equal(summaries_b, summaries_a, check_exact=True)


# The SLURMCluster tests come last: their two workers hold CPUs of the node, which the
# job array above needs (the module fixture lives from its first use to the end of the file).


@pytest.fixture(scope="module")
def slurm_client(slurm, tmp_path_factory):
    cluster = slurm_cluster(tmp_path_factory.mktemp("slurm-workers"))
    client = Client(cluster)
    try:
        cluster.scale(jobs=2)
        try:
            client.wait_for_workers(2, timeout=120)
        except Exception as exc:
            queue = subprocess.run(["squeue", "-o", "%i %j %T %r"], capture_output=True, text=True).stdout
            raise AssertionError(f"Slurm worker jobs did not all start: {exc}\nsqueue:\n{queue}") from exc
        yield client
    finally:
        client.close()
        cluster.close()


def worker_jobs(client: Client) -> dict[str, str]:
    """Worker address -> the Slurm job it runs in (from the worker's own environment)."""
    return client.run(lambda: os.environ.get("SLURM_JOB_ID"))


def test_slurmcluster_sweep_equals_grid_search_bit_for_bit(slurm_client, tmp_path):
    jobs = worker_jobs(slurm_client)
    assert len(jobs) == 2 and None not in jobs.values()
    assert set(jobs.values()) <= squeue_ids(), "the workers run inside Slurm jobs this Slurm lists"
    assert set(slurm_client.run(lambda: sys.executable).values()) == {sys.executable}

    sweep = seed_sweep()
    ref, ref_map = reference(sweep)
    cgs = ClusterGridSearch(slurm_client, compute_dir=tmp_path / "cd", progress=False)
    path = cgs.run(chunk_size=4, **sweep)
    assert cgs.last_run == {"chunks": 3, "skipped": 0, "computed": 3, "failed": 0}
    assert_same(path, ref, ref_map)


def test_slurm_worker_job_cancelled_mid_sweep_completes_identical(slurm_client, tmp_path):
    sweep = slow_sweep()
    ref, ref_map = reference(sweep)
    compute_dir = tmp_path / "cd"
    cgs = ClusterGridSearch(slurm_client, compute_dir=compute_dir, progress=False)
    victim_address, victim_job = sorted(worker_jobs(slurm_client).items())[0]
    box: dict = {}

    def run() -> None:
        try:
            box["path"] = cgs.run(chunk_size=2, **sweep)
        except BaseException as exc:  # reported by the assertion below
            box["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 60
    while len(manifest_chunks(compute_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    done_at_cancel = len(manifest_chunks(compute_dir))
    subprocess.run(["scancel", victim_job], check=True)
    runner.join(180)
    assert not runner.is_alive()
    assert "error" not in box, box.get("error")
    assert 2 <= done_at_cancel < 12, "the cancel must land while chunks were still to run"
    deadline = time.monotonic() + 30  # the job may still be COMPLETING for KillWait (2 s)
    while victim_job in squeue_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim_job not in squeue_ids(), "the cancelled job ended"
    assert victim_address not in slurm_client.scheduler_info()["workers"], "the cancelled job's worker left"
    assert_same(box["path"], ref, ref_map)
    assert sorted(manifest_chunks(compute_dir)) == list(range(12)), "every chunk recorded once"
