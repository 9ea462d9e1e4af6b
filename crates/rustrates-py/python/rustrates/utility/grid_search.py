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

#: PyRates keywords accepted and ignored (one list for every front: :mod:`rustrates._core`).
PYRATES_IGNORED_KWARGS = _core.PYRATES_IGNORED_KWARGS


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
    trace_precision: str = "float64",
    compress: bool = False,
    regime: Mapping[str, float] | None = None,
    initial_conditions: list[Mapping[str, float]] | None = None,
    random_starts: Mapping[str, Any] | None = None,
    refine: Mapping[str, Any] | None = None,
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
        ``{key: {'vars': ['Op/var' | 'var'], 'nodes': [node, ...]}}`` (a node may be ``'all'``:
        every node having the var, or ``'c1/all'``: those of circuit ``c1``) or
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
    random_starts
        ``{'n': 8, 'seed': 0, 'bounds': {'node/op/var': (low, high)}}``: ``n`` more starts per
        point (after ``initial_conditions``), each bounded state uniform in [low, high), drawn
        from (seed, point index, start, state) alone, so results do not depend on threads,
        blocks or chunks; unbounded states keep the point's initial value.
    refine
        Adaptive refinement of a 1-D or 2-D Cartesian grid, e.g. ``{'levels': 5,
        'criterion': 'regime'}`` (or a summary name with ``'tolerance'``): ``param_grid`` is
        the coarse level; cells whose points differ are halved down to ``levels`` below it,
        computing only new points. The results list every computed point; ``result_map``
        has a ``refine_level`` column (0 = coarse). See the README's "Refined regime maps".
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
    trace_precision
        ``'float32'`` stores the traces in ``out`` as single precision: half the bytes,
        each value rounded to the nearest single (default ``'float64'``, as computed).
    compress
        Deflate the traces in ``out`` when they reach 64 MiB (HDF5's shuffle + deflate, read
        with no plugin): ≈ 1.4× smaller float64 files (1.8× float32) at several times the
        sweep's own time, hence off by default.
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
    req = _core.build_request(
        "grid_search",
        circuit_template,
        param_grid,
        param_map,
        simulation_time=simulation_time,
        dt=dt,
        step_size=step_size,
        inputs=inputs,
        outputs=outputs,
        sampling_step_size=sampling_step_size,
        permute_grid=permute_grid,
        cutoff=cutoff,
        summaries=summaries,
        keep_traces=keep_traces,
        n_threads=n_threads,
        profile=profile,
        solver=solver,
        backend=backend,
        float_precision=float_precision,
        init_kwargs=init_kwargs,
        extra=dict(pyrates_1x_kwargs, njit=njit, parallel=parallel),
        out=out,
        overwrite=overwrite,
        trace_precision=trace_precision,
        compress=compress,
        regime=regime,
        initial_conditions=initial_conditions,
        random_starts=random_starts,
        refine=refine,
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
    if req.out is not None:
        add_pandas_keys(req.out, res, result_map)
        first = req.out
    elif req.summaries:
        first = _core.summaries_frame(res)
    else:
        first = _core.traces_frame(res)

    if req.profile is None:
        return first, result_map
    seconds = time.perf_counter() - t_start
    # ru_maxrss is in KiB on Linux: the process' peak, which includes the engine's buffers.
    megabytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    prof: Any = {"t": seconds, "m": megabytes}.get(req.profile, (seconds, megabytes))
    return first, result_map, prof


# ClusterGridSearch (Dask) is defined in rustrates.utility.cluster and re-exported here by
# the cluster task:  from .cluster import ClusterGridSearch
from ..cluster import ClusterGridSearch  # noqa: E402, F401 - the seed's import site
