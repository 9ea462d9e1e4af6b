import sys
import time

import numpy as np

t0 = time.perf_counter()
from pyrates import grid_search  # noqa: E402 (the import is part of what is timed)

n = int(sys.argv[2])
e = np.linspace(-5, 5, n)
T, dt = 5.0, 1e-4
inp = np.ones((int(round(T / dt)), 1))
grid_search(
    sys.argv[1],
    param_grid={"eta_pc": e, "eta_iin": e},
    param_map={
        "eta_pc": {"vars": ["qif_op/eta"], "nodes": ["PC"]},
        "eta_iin": {"vars": ["qif_op/eta"], "nodes": ["IIN"]},
    },
    simulation_time=T,
    step_size=dt,
    sampling_step_size=1e-3,
    permute_grid=True,
    inputs={"PC/qif_op/I_ext": inp},
    outputs={"r": "PC/qif_op/r"},
    solver="euler",
    backend="default",
    float_precision="float64",
    matrix_sparseness=0.0,
)
print(time.perf_counter() - t0)
