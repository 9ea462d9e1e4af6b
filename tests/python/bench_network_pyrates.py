"""Benchmark (not collected by pytest): a network written as a PyRates YAML edge list, swept
end to end by PyRates 1.2.3 and by the rustrates CLI in the same run (issue 15's measurement).

    python tests/python/bench_network_pyrates.py PYRATES_VENV [--n 200] [--points 2] [--time 1]
        [--rustrates target/release/rustrates] [--repeats 1]

The circuit: N of PyRates' own `qif_pop` (model_templates.neural_mass_models.qif) all-to-all,
`n_j/qif_op/r -> n_i/qif_op/r_in` with network_grid.c's weights
W[i, j] = 0.5 (1 + sin(7i + 13j)) 15 / N, no delays; `eta` of every node swept over `points`
values in [-6, -4]; Euler, dt 1e-4, r of every node every 1e-3. Each tool runs as a whole
process (start, template loading, compiling, the run, its result written or returned), timed
from outside. The two results must agree: same integrator, same float64 operations up to
summation order (stated tolerance 1e-9 relative to the largest rate).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DT, DTS = 1e-4, 1e-3

PYRATES_RUN = """
import sys
import numpy as np
from _common import FORWARD_EULER_FLOAT64
from pyrates import grid_search
template, n, points, T, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
dt, dts = float(sys.argv[6]), float(sys.argv[7])
res, res_map = grid_search(
    template,
    param_grid={"eta": np.linspace(-6.0, -4.0, points)},
    param_map={"eta": {"vars": ["qif_op/eta"], "nodes": [f"n{i}" for i in range(n)]}},
    step_size=dt,
    simulation_time=T,
    sampling_step_size=dts,
    outputs={"r": "all/qif_op/r"},
    clear=True,
    **FORWARD_EULER_FLOAT64,
)
# (point, time, node) in the grid's order and node order, whatever PyRates' column order.
cols = [tuple(map(str, c)) for c in res.columns]
labels = [str(x) for x in res_map.index]
node_of = lambda c: int(next(p for p in c if p.startswith("n") and p[1:].isdigit())[1:])
traces = np.full((len(labels), len(res.index), n), np.nan)
for k, c in enumerate(cols):
    traces[labels.index(next(p for p in c if p in labels)), :, node_of(c)] = res.iloc[:, k].to_numpy()
np.save(out, traces)
"""


def network_yaml(n: int) -> str:
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    weights = 0.5 * (1 + np.sin(7 * i + 13 * j)) * 15.0 / n
    lines = ["Net:", "  base: CircuitTemplate", "  nodes:"]
    lines += [f"    n{k}: model_templates.neural_mass_models.qif.qif_pop" for k in range(n)]
    lines.append("  edges:")
    lines += [
        f"    - [n{s}/qif_op/r, n{t}/qif_op/r_in, null, {{weight: {float(weights[t, s])!r}}}]"
        for t in range(n)
        for s in range(n)
    ]
    return "\n".join(lines) + "\n"


def spec_yaml(template: str, n: int, points: int, t_end: float) -> str:
    return f"""template: {template}
simulation_time: {t_end}
step_size: {DT}
sampling_step_size: {DTS}
solver: euler
float_precision: float64
param_grid:
  eta: {{linspace: [-6.0, -4.0, {points}]}}
param_map:
  eta: {{vars: [qif_op/eta], nodes: [all]}}
outputs:
  r: all/qif_op/r
keep_traces: true
"""


def rustrates_traces(path: Path, n: int) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        traces = f["traces"][...]  # (points, time, columns)
        nodes = [x.decode() if isinstance(x, bytes) else str(x) for x in f["columns/node"][...]]
    order = [nodes.index(f"n{node}") for node in range(n)]
    return traces[:, :, order]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pyrates_venv", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--points", type=int, default=2)
    ap.add_argument("--time", type=float, default=1.0)
    ap.add_argument("--rustrates", type=Path, default=REPO / "target/release/rustrates")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "net.yaml").write_text(network_yaml(args.n))
        (tmp / "spec.yaml").write_text(spec_yaml(str(tmp / "net") + "/Net", args.n, args.points, args.time))
        (tmp / "run_pyrates.py").write_text(PYRATES_RUN)
        # The drop-in scripts' settings module, beside the script that imports it.
        (tmp / "_common.py").write_text((HERE / "pyrates_scripts/_common.py").read_text())
        ours, theirs = [], []
        for repeat in range(max(args.repeats, 1)):
            # Interleaved, so both come from the same minutes of a shared machine. The kernel
            # cache is emptied per run: the time includes rustrates' compile.
            cache = tmp / f"cache{repeat}"
            start = time.perf_counter()
            subprocess.run(
                [str(args.rustrates), "sweep", str(tmp / "spec.yaml"), "--out", str(tmp / "out.h5"), "--overwrite"],
                check=True,
                capture_output=True,
                env={"PATH": "/usr/bin:/bin", "RUSTRATES_CACHE_DIR": str(cache), "HOME": str(tmp)},
            )
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(
                [
                    str(args.pyrates_venv / "bin/python"),
                    str(tmp / "run_pyrates.py"),
                    str(tmp / "net") + "/Net",
                    str(args.n),
                    str(args.points),
                    str(args.time),
                    str(tmp / "pyrates.npy"),
                    repr(DT),
                    repr(DTS),
                ],
                check=True,
                capture_output=True,
                cwd=tmp,
            )
            theirs.append(time.perf_counter() - start)
        a, b = rustrates_traces(tmp / "out.h5", args.n), np.load(tmp / "pyrates.npy")
        # PyRates samples from t = dts on; rustrates' file holds the same sample times.
        worst = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        print(
            f"N = {args.n} ({args.n**2} edges), {args.points} points, T = {args.time}: "
            f"rustrates {min(ours):.2f} s, PyRates 1.2.3 {min(theirs):.2f} s "
            f"-> {min(theirs) / min(ours):.1f}x; results differ by {worst:.1e} (relative to max r)"
        )
        if not worst <= 1e-9:
            sys.exit(f"results differ beyond 1e-9: {worst:e}")


if __name__ == "__main__":
    main()
