"""Runs PyRates 1.2.3's grid_search in its own venv (called by test_pyrates_parity.py):
``python pyrates_reference.py spec.json out.npz``. The spec holds the template path, grid,
param_map, inputs (constants expanded to arrays here), outputs and settings."""

import json
import sys
import time

import numpy as np
from pyrates import grid_search


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    steps = int(round(spec["simulation_time"] / spec["step_size"]))
    inputs = {k: np.full(steps, float(v)) for k, v in spec["inputs"].items()}
    param_map = {
        k: ({"vars": v["vars"], "edges": [tuple(e) for e in v["edges"]]} if "edges" in v else v)
        for k, v in spec["param_map"].items()
    }
    start = time.perf_counter()
    results, result_map = grid_search(
        spec["template"],
        param_grid={k: np.asarray(v, dtype=np.float64) for k, v in spec["param_grid"].items()},
        param_map=param_map,
        step_size=spec["step_size"],
        simulation_time=spec["simulation_time"],
        sampling_step_size=spec["sampling_step_size"],
        permute_grid=spec["permute_grid"],
        inputs=inputs,
        outputs=spec["outputs"],
        solver="euler",
        backend="default",
        float_precision="float64",
        # A time-series input feeding many nodes crashes PyRates 1.2.3 without this
        # (SPEC §10); results do not depend on it.
        matrix_sparseness=0.0,
        clear=True,
        verbose=False,
    )
    seconds = time.perf_counter() - start
    # PyRates' columns are (output key, circuit label, node, op/var).
    columns = [list(map(str, c)) for c in results.columns]
    np.savez(
        sys.argv[2],
        time=results.index.to_numpy(dtype=np.float64),
        traces=results.to_numpy(dtype=np.float64),
        columns=np.array(json.dumps(columns)),
        labels=np.array(json.dumps([str(x) for x in result_map.index])),
        grid_keys=np.array(json.dumps([str(c) for c in result_map.columns])),
        grid=result_map.to_numpy(dtype=np.float64),
        seconds=np.array(seconds),
    )


if __name__ == "__main__":
    main()
