"""``grid_search``: the seed's parameter sweep (PyRates' ``pyrates.utility.grid_search``),
run by the rustrates engine.

This module is the import site PyRates users know
(``from rustrates.utility.grid_search import grid_search``); the cluster mode
(``ClusterGridSearch``) is added here as well.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping
from typing import Any

from .. import _core
from .._progress import make_progress
from .._results import add_pandas_keys

#: PyRates 1.x / 0.8 keywords that have no meaning here. They are accepted so existing code
#: runs, and ignored: rustrates always compiles once and vectorizes over grid points
#: (``vectorize``, ``njit``, ``parallel``, ``matrix_sparseness``), keeps nothing to clear
#: (``clear``, ``clear_template``), writes no build files (``file_name``, ``build_dir``,
#: ``func_name``, ``in_place``, ``build_in_place``, ``decorator``) and prints nothing
#: (``verbose``; use ``progress=True``).
PYRATES_IGNORED_KWARGS = frozenset(
    {
        "vectorize",
        "vectorization",
        "matrix_sparseness",
        "verbose",
        "clear",
        "clear_template",
        "file_name",
        "build_dir",
        "func_name",
        "in_place",
        "build_in_place",
        "decorator",
        "apply_kwargs",
        "name",
    }
)

#: Keys of the seed's ``init_kwargs`` that mean something here.
_INIT_KWARGS_USED = frozenset({"backend", "solver", "float_precision", "step_size", "dt"})

_PROFILES = {"t", "m", "mt", "tm"}


def _split_kwargs(init_kwargs: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Settings from the seed's ``init_kwargs`` dict and PyRates 1.x flat keywords; anything
    unknown is a TypeError, as Python does for a misspelt keyword."""
    settings: dict[str, Any] = {}
    if init_kwargs is not None:
        if not isinstance(init_kwargs, Mapping):
            raise TypeError(f"init_kwargs must be a dict, got {type(init_kwargs).__name__}")
        for key, value in init_kwargs.items():
            if key in _INIT_KWARGS_USED:
                settings[key] = value
            elif key not in PYRATES_IGNORED_KWARGS:
                raise TypeError(f"grid_search() got an unexpected key {key!r} in init_kwargs")
    for key, value in extra.items():
        if key in ("rtol", "atol"):
            settings[key] = value
        elif key == "method":
            # PyRates 1.x passes scipy's solve_ivp method with solver='scipy'; only its
            # default RK45 is what rustrates' rk45 computes.
            if str(value).upper() != "RK45":
                raise ValueError(f"method={value!r} is not supported; rustrates' adaptive solver is RK45 (Dormand-Prince)")
        elif key not in PYRATES_IGNORED_KWARGS:
            raise TypeError(f"grid_search() got an unexpected keyword argument {key!r}")
    return settings


def grid_search(
    circuit_template: str,
    param_grid: Any,
    param_map: Mapping[str, Any],
    dt: float | None = None,
    simulation_time: float | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, str] | None = None,
    sampling_step_size: float | None = None,
    permute_grid: bool = False,
    init_kwargs: Mapping[str, Any] | None = None,
    *,
    step_size: float | None = None,
    profile: str | None = None,
    njit: Any = None,
    parallel: Any = None,
    cutoff: float = 0.0,
    summaries: list[str] | None = None,
    keep_traces: bool | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    n_threads: int | None = None,
    progress: bool = False,
    backend: str | None = None,
    solver: str | None = None,
    float_precision: Any = None,
    regime: Mapping[str, float] | None = None,
    initial_conditions: list[Mapping[str, float]] | None = None,
    **pyrates_1x_kwargs: Any,
) -> tuple[Any, ...]:
    """Simulate one circuit at many parameter points at once.

    The circuit is compiled once; the grid points are lanes of one vectorized simulation
    spread over all cores.

    Parameters
    ----------
    circuit_template
        Template path: dotted (``model_templates.montbrio.simple_montbrio.Net3``) or a file
        path with the template name last (``path/to/file.yaml/Net``).
    param_grid
        ``{key: values}`` or a DataFrame with one row per point.
    param_map
        ``{key: {'vars': ['Op/var' | 'var'], 'nodes': [node, ...]}}`` or
        ``{key: {'vars': ['weight' | 'delay' | ...], 'edges': [(source, target[, idx])]}}``.
    dt, step_size
        Integration step in seconds (``step_size`` is PyRates 1.x's name).
    simulation_time
        Simulated time T in seconds.
    inputs
        ``{'node/op/var': array}``, arrays of shape (steps,), (steps, 1) — the same for every
        point — or (steps, n_points), or a number; steps = round(T/dt) (one row fewer is
        accepted and holds its last value).
    outputs
        ``{'key': 'node/op/var'}``; ``node`` may be ``all``.
    sampling_step_size
        Sampling step (default ``dt``); must be a whole multiple of dt for fixed-step solvers.
    permute_grid
        True: every combination, in PyRates' order (the first key varies fastest); False:
        the value lists are zipped.
    init_kwargs
        The seed's dict: ``backend`` (PyRates' names such as 'numpy' mean 'auto'), ``solver``
        and ``float_precision``.
    profile
        ``'t'``: also return the wall time in seconds; ``'m'``: the process' peak resident
        memory in MB; ``'mt'``: the tuple ``(seconds, megabytes)``.
    njit, parallel
        Accepted and ignored (the engine is always compiled and parallel).
    cutoff
        Samples before this time are dropped (and not used by summaries).
    summaries
        Statistics computed inside the run (``mean``, ``std``, ``min``, ``max``, ``last``,
        ``ptp``, ``dominant_frequency``, ...): the first return value is then a DataFrame of
        them (index: labels, columns ``(output_key, statistic)``) and no traces are kept.
        ``regime`` classifies each point (fixed point and its stability, cycle, divergence;
        brings ``period``, ``amplitude``, ``eig_re``, ``eig_im``; see the README's "Regime
        maps"); ``multistable`` (1/0) compares the ends of ``initial_conditions``.
    regime
        Thresholds of the ``regime`` summary, e.g. ``{'stationary_tol': 1e-8}``
        (``stationary_tol``, ``period_rtol``, ``min_cycles``, ``flat_tol``,
        ``attractor_rtol``).
    initial_conditions
        Several starts per point: a list of ``{'node/op/var': initial value}``; every point
        runs once per start, traces and statistics are the first start's.
    keep_traces
        Keep traces as well as summaries (default: traces unless ``summaries`` is given
        without ``out``).
    out
        Write everything to this HDF5 file (resumed if an interrupted run left its parts)
        and return its path first; :func:`rustrates.read_results` loads it, and
        ``pd.read_hdf(out, 'Results/results')`` works for sweeps that fit in memory. An
        existing file is an error unless ``overwrite=True``; ``out`` is checked (not a
        folder, a writable place, not locked by another sweep) before anything runs.
    overwrite
        Replace an existing file at ``out``.
    n_threads
        Threads (default: all cores; more than the cores are capped at the cores, with a
        warning).
    progress
        Show a progress bar (tqdm if installed, otherwise a line on stderr).
    backend, solver, float_precision
        As in ``init_kwargs`` (PyRates 1.x passes them as keywords); solvers ``euler``,
        ``heun``, ``rk4``, ``rk45`` (alias ``scipy``; ``rtol``/``atol`` keywords).
    **pyrates_1x_kwargs
        PyRates keywords without meaning here (:data:`PYRATES_IGNORED_KWARGS`) are accepted
        and ignored; any other keyword is a TypeError.

    Returns
    -------
    tuple
        ``(results, result_map)`` or, with ``profile``, ``(results, result_map, profile)``.
        ``results``: DataFrame, time index, columns ``(circuit_label, node, output_key)``
        with labels ``f"{template_name}_{i}"``; ``result_map``: DataFrame indexed by the
        labels, one column per grid key. With ``summaries`` the first value is the summaries
        DataFrame; with ``out`` it is the file's path.
    """
    t_start = time.perf_counter()
    settings = _split_kwargs(init_kwargs, pyrates_1x_kwargs)
    del njit, parallel  # accepted for the seed's code; see PYRATES_IGNORED_KWARGS

    if dt is not None and step_size is not None and float(dt) != float(step_size):
        raise _core.argument_error("step_size", f"dt={dt} and step_size={step_size} disagree; pass one of them")
    if dt is None:
        dt = step_size if step_size is not None else settings.get("step_size", settings.get("dt"))
    dt_value = _core.number("dt", dt)
    t_value = _core.number("simulation_time", simulation_time)
    dts = None if sampling_step_size is None else _core.number("sampling_step_size", sampling_step_size)
    cutoff_value = _core.number("cutoff", cutoff, positive=False)
    if cutoff_value < 0.0:
        raise _core.argument_error("cutoff", f"cutoff must not be negative, got {cutoff}")
    if profile is not None and profile not in _PROFILES:
        raise _core.argument_error("profile", f"profile must be 't', 'm' or 'mt', got {profile!r}")
    if summaries is not None and (isinstance(summaries, str) or not all(isinstance(s, str) for s in summaries)):
        raise _core.argument_error("summaries", f"summaries must be a list of statistic names, got {summaries!r}")
    if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
        raise _core.argument_error("n_threads", f"n_threads must be a positive integer, got {n_threads!r}")
    if not isinstance(circuit_template, (str, os.PathLike)):
        raise TypeError(f"circuit_template must be a template path string, got {type(circuit_template).__name__}")

    grid = _core.make_grid(param_grid, permute_grid)
    pmap = _core.make_param_map(param_map, grid.keys)
    steps = _core.n_steps(t_value, dt_value)
    ins = _core.make_inputs(inputs, steps, grid.n_points)
    outs = _core.make_outputs(outputs)
    stats = list(summaries or [])
    if keep_traces is None:
        keep_traces = out is not None or not stats

    req = _core.RunRequest(
        template=os.fspath(circuit_template),
        grid=grid,
        param_map=pmap,
        simulation_time=t_value,
        step_size=dt_value,
        sampling_step_size=dts,
        inputs=ins,
        outputs=outs,
        solver=_core.solver_name(solver if solver is not None else settings.get("solver")),
        backend=_core.backend_name(backend if backend is not None else settings.get("backend")),
        precision=_core.precision_name(
            float_precision if float_precision is not None else settings.get("float_precision")
        ),
        cutoff=cutoff_value,
        summaries=stats,
        keep_traces=bool(keep_traces),
        threads=n_threads,
        out=None if out is None else os.fspath(out),
        overwrite=bool(overwrite),
        rtol=settings.get("rtol"),
        atol=settings.get("atol"),
        regime=None if regime is None else dict(regime),
        initial_conditions=[dict(start) for start in (initial_conditions or [])],
    )
    bar = make_progress(progress, "grid_search")
    try:
        res = _core.execute(req, bar)
    finally:
        if bar is not None:
            bar.close()
    _core.warn_status(res)

    result_map = _core.result_map_frame(res)
    first: Any
    if out is not None:
        add_pandas_keys(req.out, res, result_map)
        first = req.out
    elif stats:
        first = _core.summaries_frame(res)
    else:
        first = _core.traces_frame(res)

    if profile is None:
        return first, result_map
    seconds = time.perf_counter() - t_start
    # ru_maxrss is in KiB on Linux: the process' peak, which includes the engine's buffers.
    megabytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    prof: Any = {"t": seconds, "m": megabytes}.get(profile, (seconds, megabytes))
    return first, result_map, prof


# ClusterGridSearch (Dask) is defined in rustrates.utility.cluster and re-exported here by
# the cluster task:  from .cluster import ClusterGridSearch
from ..cluster import ClusterGridSearch  # noqa: E402, F401 - the seed's import site
