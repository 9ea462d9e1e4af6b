"""rustrates: PyRates-compatible neural population models and parameter sweeps, run by a
Rust engine.

The seed's code runs with only the import changed::

    from rustrates import grid_search            # or: from rustrates.utility.grid_search import grid_search
    results, result_map, t_ = grid_search(circuit_template, param_grid, param_map, dt=dt,
                                          simulation_time=T, inputs=inputs, outputs=outputs,
                                          sampling_step_size=dts, permute_grid=True,
                                          init_kwargs={'backend': 'numpy', 'solver': 'euler'},
                                          profile='t')

Errors are :class:`RustratesError` subclasses whose message carries file:line:col
diagnostics and whose ``diagnostics`` attribute lists them as dicts.
"""

from ._core import RustratesWarning
from ._regimes import plot_regimes
from ._results import read_results
from ._rustrates import (
    EquationError,
    RustratesError,
    SolverError,
    SweepError,
    TemplateError,
    __version__,
)
from .cluster import ClusterGridSearch  # noqa: F401 - cluster mode (rustrates.cluster)
from .template import CircuitTemplate, jacobian, simulate
from .utility.grid_search import grid_search

__all__ = [
    "CircuitTemplate",
    "EquationError",
    "RustratesError",
    "RustratesWarning",
    "SolverError",
    "SweepError",
    "TemplateError",
    "__version__",
    "grid_search",
    "jacobian",
    "plot_regimes",
    "read_results",
    "simulate",
]
