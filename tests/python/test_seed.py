"""The seed's grid_search cell (PyRates "Parameter Sweeps" page), copied as it stands with
only the import changed, against an independent numpy integration of Net3."""

import pandas as pd

from conftest import integrate, net3_rhs


def test_seed_cell_runs_with_only_the_import_changed():
    # --- the seed's cell, verbatim except `pyrates` -> `rustrates` (and no .plot()) ---
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
    # --- end of the seed's cell ---

    labels = [f"Net3_{i}" for i in range(25)]
    assert isinstance(results, pd.DataFrame)
    assert results.shape == (5000, 25)
    assert list(results.columns) == [(label, "PC", "r") for label in labels]
    assert np.allclose(results.index.to_numpy(), np.arange(5000) * 1e-3, rtol=0, atol=1e-12)

    # PyRates' order: np.stack(np.meshgrid(*values), -1).reshape(-1, 2) (first key fastest).
    expected = np.stack(np.meshgrid(*param_grid.values()), -1).reshape(-1, 2)
    assert list(result_map.index) == labels
    assert list(result_map.columns) == ["eta_op", "eta_iin"]
    np.testing.assert_array_equal(result_map.to_numpy(), expected)

    assert isinstance(t_, float) and 0.0 < t_ < 600.0

    # Traces: the same Euler scheme in numpy. Both sum the same terms in different orders,
    # so they differ by rounding (~1e-16 per step); the system settles onto fixed points or
    # a limit cycle, which keeps that drift far below 1e-9 over 50,000 steps.
    eta_e, eta_i = expected[:, 0], expected[:, 1]
    y0 = np.zeros((4, 25))
    ref = integrate(net3_rhs, y0, np.ones((50000, 25)), dt, dts, T, "euler", eta_e=eta_e, eta_i=eta_i)
    np.testing.assert_allclose(results.to_numpy(), ref[:, 0, :], rtol=0, atol=1e-9)
