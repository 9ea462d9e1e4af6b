"""Throughput of ClusterGridSearch against grid_search (issue 7's benchmark).

    python examples/cluster/bench_cluster.py [N_POINTS] [CHUNK_SIZE] [REPEATS] [dask-defaults]

The reference circuit of bench/README.md (two qif_pop populations, edges 15/10/-10, constant
input 1 into PC), a sqrt(N) x sqrt(N) grid of eta_PC, eta_IIN in linspace(-5, 5), Euler,
dt 1e-4, T 5, summaries only (mean, std, max of PC's r after 1 s of transient):

- grid_search(..., n_threads=2), in memory and with out= (a file, as the cluster writes);
- ClusterGridSearch(2).run(...) — the LocalCluster of 2 worker processes x 1 thread that
  ClusterGridSearch starts itself (with rustrates.cluster.DASK_CONFIG) — end to end: tasks,
  part files shipped back, manifest, merge, pandas keys. Cluster start-up (processes,
  imports) is excluded; every repetition uses a fresh compute_dir so nothing is resumed.
  With ``dask-defaults``: a LocalCluster started here with Dask's default settings instead,
  passed in as a Client (as users of their own clusters do).

CHUNK_SIZE 0 or absent: ClusterGridSearch's default. Prints wall seconds (best, median, worst
of REPEATS interleaved rounds), the CPU seconds each run cost (client, scheduler and workers for
the cluster), and the cluster's throughput relative to grid_search: wall best against best, the
spread of the per-round wall ratios, and the ratio of CPU seconds, which other users of a
shared machine disturb far less than wall time.
"""

import math
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from dask.distributed import Client, LocalCluster

from rustrates import ClusterGridSearch, grid_search

HERE = Path(__file__).resolve().parent
TEMPLATE = str(HERE.parent / "models" / "reference_qif.yaml") + "/pc_iin"


def sweep(n_points: int) -> dict:
    side = int(round(math.sqrt(n_points)))
    return dict(
        circuit_template=TEMPLATE,
        param_grid={"eta_pc": np.linspace(-5, 5, side), "eta_iin": np.linspace(-5, 5, side)},
        param_map={
            "eta_pc": {"vars": ["qif_op/eta"], "nodes": ["PC"]},
            "eta_iin": {"vars": ["qif_op/eta"], "nodes": ["IIN"]},
        },
        simulation_time=5.0,
        dt=1e-4,
        sampling_step_size=1e-3,
        inputs={"PC/qif_op/I_ext": 1.0},
        outputs={"r": "PC/qif_op/r"},
        permute_grid=True,
        summaries=["mean", "std", "max"],
        cutoff=1.0,
    )


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, client=None) -> tuple[float, float]:
    """Wall seconds of ``fn()`` and the CPU seconds it cost: this process (for the cluster
    also the scheduler, which LocalCluster runs here) plus the workers'. CPU seconds do not
    depend on what else the shared machine runs; on 2 idle cores, wall ≈ CPU / 2 when the
    work is balanced."""
    workers = (lambda: sum(client.run(cpu_seconds).values())) if client is not None else (lambda: 0.0)
    c0, w0, t0 = cpu_seconds(), workers(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    return wall, cpu_seconds() - c0 + workers() - w0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    chunk = (int(sys.argv[2]) or None) if len(sys.argv) > 2 else None
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    s = sweep(n)
    n = len(s["param_grid"]["eta_pc"]) ** 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))

    dask_defaults = len(sys.argv) > 4 and sys.argv[4] == "dask-defaults"
    if dask_defaults:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
        cgs = ClusterGridSearch(Client(cluster), progress=False)
    else:
        cluster = None
        cgs = ClusterGridSearch(2, progress=False)
    client = cgs.client
    client.run(lambda: __import__("rustrates"))  # start-up: worker imports
    counter = iter(range(10**6))

    def cluster_run():
        cgs.compute_dir = tmp / f"cgs_{next(counter)}"
        cgs.run(chunk_size=chunk, **s)

    cluster_run()  # warm-up: the first task on each worker loads the template
    # Interleaved rounds: the machine is shared, so load changes between runs; each round
    # gives one ratio, and the spread of the ratios shows how much the load moved.
    t_mem, t_file, t_cgs = [], [], []
    for _ in range(repeats):
        t_mem.append(timed(lambda: grid_search(n_threads=2, **s)))
        # keep_traces=False: with out= grid_search keeps traces by default, the cluster does not.
        t_file.append(
            timed(lambda: grid_search(n_threads=2, out=tmp / f"gs_{next(counter)}.h5", keep_traces=False, **s))
        )
        t_cgs.append(timed(cluster_run, client))
    client.close()
    cgs.close()
    if cluster is not None:
        cluster.close()
    shutil.rmtree(tmp, ignore_errors=True)

    def row(name: str, runs: list[tuple[float, float]]) -> str:
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        return (
            f"{name}: wall best {min(wall):6.3f} s, median {statistics.median(wall):6.3f} s, "
            f"worst {max(wall):6.3f} s; CPU median {statistics.median(cpu):6.3f} s"
        )

    def median(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(r[i] for r in runs)

    ratios = sorted(m[0] / c[0] for m, c in zip(t_mem, t_cgs))
    tasks = "default chunk_size" if chunk is None else f"chunk_size {chunk}"
    settings = "a LocalCluster with Dask's defaults" if dask_defaults else "ClusterGridSearch(2)'s LocalCluster"
    print(f"{n} points, summaries only, {tasks}, {repeats} interleaved rounds, {settings}")
    print(row("grid_search n_threads=2 (memory)", t_mem))
    print(row("grid_search n_threads=2 (out=)  ", t_file))
    print(row("ClusterGridSearch 2 workers x 1 ", t_cgs))
    print(
        f"cluster throughput / grid_search (memory): wall best vs best {min(t_mem)[0] / min(t_cgs)[0]:.2f}x, "
        f"per round {ratios[0]:.2f}..{ratios[-1]:.2f}x (median {statistics.median(ratios):.2f}x); "
        f"CPU seconds {median(t_mem, 1) / median(t_cgs, 1):.2f}x"
    )
    print(
        f"cluster throughput / grid_search (out=)  : wall best vs best {min(t_file)[0] / min(t_cgs)[0]:.2f}x; "
        f"CPU seconds {median(t_file, 1) / median(t_cgs, 1):.2f}x"
    )


if __name__ == "__main__":
    main()
