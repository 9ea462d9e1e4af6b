"""The seed's ClusterGridSearch cell on rustrates (Dask instead of PyRates' SSH threads).

    python examples/cluster/cluster_sweep.py [NODES [WORKER_PYTHON]]

NODES: a number of local worker processes (default 2), a scheduler address
(tcp://host:8786) or comma-separated host names (SSH; the first runs the scheduler, the
others one worker each: `ws1,ws1,ws2`). WORKER_PYTHON: the Python with rustrates on the SSH
hosts (default: this Python's path).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rustrates.utility.grid_search import ClusterGridSearch  # the seed's import site


def main(nodes_arg: str, worker_env: str | None = None) -> None:
    if nodes_arg.isdigit():
        nodes = int(nodes_arg)
    elif "://" in nodes_arg:
        nodes = nodes_arg
    else:
        nodes = nodes_arg.split(",")
    compute_dir = Path("cgs_benchmark")

    circuit_template = "model_templates.montbrio.simple_montbrio.Net3"
    dt = 1e-4
    dts = 1e-3
    T = 5.0
    inp = np.ones((int(T / dt), 1))
    inputs = {"PC/Op_e/inp": inp}
    outputs = {"r": "PC/Op_e/r"}
    param_grid = {"eta_op": np.linspace(-5, 5, 5), "eta_iin": np.linspace(-5, 5, 5)}
    param_map = {"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}, "eta_iin": {"vars": ["Op_i/eta"], "nodes": ["IIN"]}}

    with ClusterGridSearch(nodes, compute_dir=compute_dir, worker_env=worker_env) as cgs:
        res_file = cgs.run(
            circuit_template=circuit_template,
            params=param_grid,
            param_map=param_map,
            simulation_time=T,
            dt=dt,
            permute=True,
            sampling_step_size=dts,
            inputs=inputs,
            outputs=outputs,
            chunk_size=5,
            worker_file=Path(__file__).with_name("worker_template.py"),
            add_template_info=False,
            config_kwargs={"init_kwargs": {"backend": "numpy", "solver": "euler"}},
        )
    results = pd.read_hdf(res_file, key="Results/results")
    result_map = pd.read_hdf(res_file, key="Results/result_map")
    peak = results.loc[0.5:].idxmax()  # dominant frequency (Hz) per grid point
    print(f"{res_file}: spectra of {results.shape[1]} grid points")
    print(pd.concat([result_map, peak.droplevel([1, 2]).rename("peak_hz")], axis=1))


if __name__ == "__main__":
    main(*(sys.argv[1:3] or ["2"]))
