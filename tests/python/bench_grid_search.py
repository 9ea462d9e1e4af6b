"""Benchmark (not collected by pytest): the reference sweep of bench/README.md through
``rustrates.grid_search`` at 5×5, 20×20 and 100×100 and through PyRates 1.2.3's
``grid_search`` at 5×5, 10×10 and 20×20, in the same run.

    python tests/python/bench_grid_search.py PYRATES_VENV [--no-pyrates]

Euler, dt 1e-4, T 5, r of PC every 10 steps, constant input 1 into PC, float64. Times are
wall seconds of the grid_search call (PyRates: measured inside its venv, import excluded).
Use a release build of the extension (``pip install .`` or ``maturin develop --release``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
T, DT, DTS = 5.0, 1e-4, 1e-3
PARAM_MAP = {"eta_pc": {"vars": ["qif_op/eta"], "nodes": ["PC"]}, "eta_iin": {"vars": ["qif_op/eta"], "nodes": ["IIN"]}}


def grid(n: int) -> dict:
    return {"eta_pc": list(np.linspace(-5, 5, n)), "eta_iin": list(np.linspace(-5, 5, n))}


def rustrates_seconds(n: int) -> float:
    import rustrates

    start = time.perf_counter()
    rustrates.grid_search(
        str(REPO / "examples/models/reference_qif.yaml") + "/pc_iin",
        grid(n),
        PARAM_MAP,
        dt=DT,
        simulation_time=T,
        sampling_step_size=DTS,
        permute_grid=True,
        inputs={"PC/qif_op/I_ext": np.ones(int(round(T / DT)))},
        outputs={"r": "PC/qif_op/r"},
        solver="euler",
        backend="default",
        float_precision="float64",
    )
    return time.perf_counter() - start


def pyrates_seconds(python: Path, n: int) -> float:
    spec = {
        "template": "examples/models/reference_qif/pc_iin",
        "param_grid": grid(n),
        "param_map": PARAM_MAP,
        "step_size": DT,
        "simulation_time": T,
        "sampling_step_size": DTS,
        "permute_grid": True,
        "inputs": {"PC/qif_op/I_ext": 1.0},
        "outputs": {"r": "PC/qif_op/r"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        out = Path(tmp) / "out.npz"
        subprocess.run(
            [str(python), str(HERE / "pyrates_reference.py"), str(spec_file), str(out)],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        with np.load(out) as z:
            return float(z["seconds"])


def main() -> None:
    use_pyrates = "--no-pyrates" not in sys.argv
    venv = next((a for a in sys.argv[1:] if not a.startswith("--")), None)
    rustrates_seconds(2)  # compile and cache the kernel once, as a notebook session would
    for n in (5, 10, 20, 100):
        rs = rustrates_seconds(n) if n != 10 else None
        ps = pyrates_seconds(Path(venv) / "bin" / "python", n) if use_pyrates and venv and n <= 20 else None
        ratio = f"{ps / rs:8.1f}x" if ps and rs else "        -"
        rs_text = f"{rs:8.3f} s" if rs is not None else "       - "
        ps_text = f"{ps:8.2f} s" if ps is not None else "       - "
        print(f"{n:>3}x{n:<3} rustrates {rs_text}   PyRates {ps_text}   {ratio}", flush=True)


if __name__ == "__main__":
    main()
