"""Throughput of ClusterGridSearch against grid_search (issue 7's benchmark).

    python examples/cluster/bench_cluster.py [N_POINTS] [CHUNK_SIZE] [REPEATS]

The reference circuit of bench/README.md (two qif_pop populations, edges 15/10/-10, constant
input 1 into PC), a sqrt(N) x sqrt(N) grid of eta_PC, eta_IIN in linspace(-5, 5), Euler,
dt 1e-4, T 5, summaries only (mean, std, max of PC's r after 1 s of transient):

- grid_search(..., n_threads=2), in memory and with out= (a file, as the cluster writes);
- ClusterGridSearch(LocalCluster 2 workers x 1 thread).run(...), end to end: tasks, part
  files shipped back, manifest, merge, pandas keys. Cluster start-up (processes, imports) is
  excluded; every repetition uses a fresh compute_dir so nothing is resumed.

Prints seconds (best of REPEATS) and the cluster's throughput relative to grid_search.
"""

import math
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
        param_map={"eta_pc": {"vars": ["qif_op/eta"], "nodes": ["PC"]},
                   "eta_iin": {"vars": ["qif_op/eta"], "nodes": ["IIN"]}},
        simulation_time=5.0,
        dt=1e-4,
        sampling_step_size=1e-3,
        inputs={"PC/qif_op/I_ext": 1.0},
        outputs={"r": "PC/qif_op/r"},
        permute_grid=True,
        summaries=["mean", "std", "max"],
        cutoff=1.0,
    )


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    s = sweep(n)
    n = len(s["param_grid"]["eta_pc"]) ** 2
    chunk = chunk or -(-n // 2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.run(lambda: __import__("rustrates"))  # start-up: worker imports
    cgs = ClusterGridSearch(client, progress=False)
    counter = iter(range(10**6))

    def cluster_run():
        cgs.compute_dir = tmp / f"cgs_{next(counter)}"
        cgs.run(chunk_size=chunk, **s)

    cluster_run()  # warm-up: the first task on each worker loads the template
    # Interleaved, best of each: the machine is shared, so load changes between runs.
    t_mem = t_file = t_cgs = math.inf
    for _ in range(repeats):
        t_mem = min(t_mem, best(lambda: grid_search(n_threads=2, **s), 1))
        # keep_traces=False: with out= grid_search keeps traces by default, the cluster does not.
        t_file = min(t_file, best(lambda: grid_search(n_threads=2, out=tmp / f"gs_{next(counter)}.h5",
                                                      keep_traces=False, **s), 1))
        t_cgs = min(t_cgs, best(cluster_run, 1))
    client.close()
    cluster.close()

    print(f"{n} points, summaries only, chunk_size {chunk} ({-(-n // chunk)} tasks), best of {repeats}")
    print(f"grid_search n_threads=2 (memory) : {t_mem:7.3f} s")
    print(f"grid_search n_threads=2 (out=)   : {t_file:7.3f} s")
    print(f"ClusterGridSearch 2 workers x 1  : {t_cgs:7.3f} s")
    print(f"cluster throughput / grid_search : {t_mem / t_cgs:5.2f}x (memory), {t_file / t_cgs:5.2f}x (out=)")


if __name__ == "__main__":
    main()
