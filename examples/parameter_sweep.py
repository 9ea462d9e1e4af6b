"""The seed's parameter sweep (PyRates' "Parameter Sweeps" page) on rustrates, then a
heatmap of the mean PC rate over the two excitabilities and the traces.

    python examples/parameter_sweep.py [OUTPUT_DIR]

writes OUTPUT_DIR/parameter_sweep_heatmap.png and OUTPUT_DIR/parameter_sweep_traces.png
(default: the current directory). ``seed_cell`` is also what tests/python/test_seed.py runs.
"""

import sys
from pathlib import Path


def seed_cell():
    """The seed's grid_search cell, as it stands on the page with only the import changed
    (``pyrates`` -> ``rustrates``) and without its ``results.plot()``; returns its results."""
    import numpy as np

    from rustrates.utility.grid_search import grid_search

    circuit_template = "model_templates.montbrio.simple_montbrio.Net3"
    dt = 1e-4  # integration step size in s
    dts = 1e-3  # variable storage sub-sampling step size in s
    T = 5.0  # total simulation time in s
    inp = np.ones((int(T / dt), 1))  # external input to the population
    inputs = {"PC/Op_e/inp": inp}
    outputs = {"r": "PC/Op_e/r"}  # model output parameters

    param_grid = {"eta_op": np.linspace(-5, 5, 5), "eta_iin": np.linspace(-5, 5, 5)}

    param_map = {"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}, "eta_iin": {"vars": ["Op_i/eta"], "nodes": ["IIN"]}}

    # Execution
    results, result_map, t_ = grid_search(
        circuit_template=circuit_template,
        param_grid=param_grid,
        param_map=param_map,
        simulation_time=T,
        dt=dt,
        sampling_step_size=dts,
        inputs=inputs.copy(),
        outputs=outputs.copy(),
        permute_grid=True,  # Creates all permutations of the param_grid values if set to True
        init_kwargs={  # Additional keyword arguments for the compute graph
            "backend": "numpy",  # Can be either 'numpy' or 'tensorflow'
            "solver": "euler",  # Solver for the differential equation approximation.
        },
        profile="t",  # Automated runtime tracking
        njit=True,  # Uses Numba's njit compiler if set to True
        parallel=False,
    )
    return results, result_map, t_, param_grid


def main(out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: runs without a display (CI, clusters)
    import matplotlib.pyplot as plt
    import numpy as np

    results, result_map, t_, param_grid = seed_cell()
    print(f"{results.shape[1]} grid points simulated in {t_:.3f} s")

    # --- heatmap of the mean rate after the initial transient (t >= 1 s) ---
    etas_op, etas_iin = param_grid["eta_op"], param_grid["eta_iin"]
    mean_rate = results.loc[1.0:].mean()
    heat = np.empty((len(etas_iin), len(etas_op)))
    for label, (eta_op, eta_iin) in result_map[["eta_op", "eta_iin"]].iterrows():
        i, j = np.argmin(np.abs(etas_iin - eta_iin)), np.argmin(np.abs(etas_op - eta_op))
        heat[i, j] = mean_rate[(label, "PC", "r")]

    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(
        heat,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        extent=(etas_op[0] - 1.25, etas_op[-1] + 1.25, etas_iin[0] - 1.25, etas_iin[-1] + 1.25),
    )
    ax.set_xlabel("eta_op (PC)")
    ax.set_ylabel("eta_iin (IIN)")
    ax.set_title("Net3: mean PC rate r, t ≥ 1 s")
    fig.colorbar(im, ax=ax, label="mean r")
    fig.tight_layout()
    heatmap = out_dir / "parameter_sweep_heatmap.png"
    fig.savefig(heatmap, dpi=100)
    plt.close(fig)

    # --- the traces (as the seed's results.plot()) ---
    fig, ax = plt.subplots(figsize=(8, 4))
    for label in result_map.index:
        ax.plot(results.index, results[(label, "PC", "r")], lw=0.8, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("r (PC)")
    ax.legend(ncol=5, fontsize=6)
    fig.tight_layout()
    traces = out_dir / "parameter_sweep_traces.png"
    fig.savefig(traces, dpi=100)
    plt.close(fig)
    print(f"wrote {heatmap} and {traces}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
