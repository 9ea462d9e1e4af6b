"""The seed's grid_search cell (PyRates "Parameter Sweeps" page), copied as it stands with
only the import changed, against an independent numpy integration of Net3. The cell is
examples/parameter_sweep.py's ``seed_cell`` (one copy: the example plots what this checks)."""

import importlib.util

import numpy as np
import pandas as pd

from conftest import REPO, integrate, net3_rhs


def load_example(name: str):
    """examples/<name>.py as a module (the examples are files, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_cell_runs_with_only_the_import_changed():
    results, result_map, t_, param_grid = load_example("parameter_sweep").seed_cell()

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
    # The cell's dt = 1e-4 s, sampling 1e-3 s, T = 5 s, input 1.
    ref = integrate(net3_rhs, y0, np.ones((50000, 25)), 1e-4, 1e-3, 5.0, "euler", eta_e=eta_e, eta_i=eta_i)
    np.testing.assert_allclose(results.to_numpy(), ref[:, 0, :], rtol=0, atol=1e-9)
