"""Argument handling shared by every front (``grid_search``, ``simulate``,
``CircuitTemplate.run`` and the cluster mode): PyRates-style arguments in, one call of the
extension's ``run_sweep`` out, and its arrays turned into pandas objects.

Only checks that need nothing but the arguments live here (shapes, lengths, types), so that
an error names the argument the user wrote; everything that needs the circuit (unknown
variables, nodes, edges) is the engine's and arrives as a :class:`RustratesError` carrying
its diagnostics.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import _rustrates
from ._rustrates import SweepError


class RustratesWarning(UserWarning):
    """Something in a run the user should know about (e.g. grid points that diverged)."""


def argument_error(argument: str, message: str) -> SweepError:
    """A :class:`SweepError` for a bad argument, with the same ``diagnostics`` shape as the
    engine's errors (``path`` names the argument)."""
    # Rendered as the engine renders a problem without a location: `code: message`.
    err = SweepError(f"argument/invalid: {message}")
    err.diagnostics = [
        {"code": "argument/invalid", "message": message, "file": None, "line": None, "col": None, "path": argument}
    ]
    return err


# ---------------------------------------------------------------------------------------
# names PyRates users pass

_PRECISIONS = {
    "float64": "float64",
    "double": "float64",
    "float32": "float32",
    "single": "float32",
    # PyRates' complex precisions: complex variables are computed as pairs of reals
    # of this width whatever the precision names, so these name the real width.
    "complex128": "float64",
    "complex64": "float32",
}


def precision_name(value: Any) -> str:
    """``'float64'``/``'float32'`` from a name or a numpy dtype (PyRates accepted both;
    ``complex128``/``complex64`` name the width of a complex value's parts)."""
    if value is None:
        return "float64"
    if isinstance(value, str) and value.lower() in _PRECISIONS:
        return _PRECISIONS[value.lower()]
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    if name in _PRECISIONS:
        return _PRECISIONS[name]
    raise argument_error(
        "float_precision",
        f"float_precision must be 'float64', 'float32', 'complex128' or 'complex64', got {value!r}",
    )


def _name(argument: str, value: Any, default: str) -> str:
    """A name the engine parses (None: `default`); only its type is checked here."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise argument_error(argument, f"{argument} must be a string, got {value!r}")
    return value


def backend_name(value: Any) -> str:
    """The engine parses PyRates' backend names ('numpy', 'default', ... mean auto)."""
    return _name("backend", value, "auto")


def solver_name(value: Any) -> str:
    return _name("solver", value, "euler")


#: PyRates 1.x / 0.8 keywords that have no meaning here, for every front. They are accepted
#: so existing code runs, and ignored: rustrates always compiles once and vectorizes over grid
#: points (``vectorize``, ``njit``, ``parallel``, ``matrix_sparseness``, ``adaptive_steps``),
#: keeps nothing to clear (``clear``, ``clear_template``), writes no build files
#: (``file_name``, ``build_dir``, ``func_name``, ``in_place``, ``build_in_place``,
#: ``decorator``, ``float_format``, ``backend_kwargs``) and prints nothing (``verbose``; use
#: ``progress=True``).
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
        "njit",
        "parallel",
        "adaptive_steps",
        "float_format",
        "backend_kwargs",
    }
)

#: Keys of the seed's ``init_kwargs`` that mean something here.
_INIT_KWARGS_USED = frozenset({"backend", "solver", "float_precision", "step_size", "dt"})

#: Keywords every front takes flat (PyRates 1.x passes them to ``run``/``grid_search``).
_FLAT_SETTINGS = frozenset({"rtol", "atol", "float_precision", "backend", "solver"})

_PROFILES = {"t", "m", "mt", "tm"}


def split_kwargs(front: str, init_kwargs: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from the seed's ``init_kwargs`` dict and PyRates 1.x flat keywords (flat ones
    win); ignored PyRates keywords are dropped and anything else is a TypeError, as Python
    raises for a misspelt keyword."""
    settings: dict[str, Any] = {}
    if init_kwargs is not None:
        if not isinstance(init_kwargs, Mapping):
            raise TypeError(f"init_kwargs must be a dict, got {type(init_kwargs).__name__}")
        for key, value in init_kwargs.items():
            if key in _INIT_KWARGS_USED:
                settings[key] = value
            elif key not in PYRATES_IGNORED_KWARGS:
                raise TypeError(f"{front}() got an unexpected key {key!r} in init_kwargs")
    for key, value in extra.items():
        if key in _FLAT_SETTINGS:
            if value is not None:
                settings[key] = value
        elif key == "method":
            # PyRates 1.x passes scipy's solve_ivp method with solver='scipy'; only its
            # default RK45 is what rustrates' rk45 computes.
            if str(value).upper() != "RK45":
                raise ValueError(
                    f"method={value!r} is not supported; rustrates' adaptive solver is RK45 (Dormand-Prince)"
                )
        elif key not in PYRATES_IGNORED_KWARGS:
            raise TypeError(f"{front}() got an unexpected keyword argument {key!r}")
    return settings


# ---------------------------------------------------------------------------------------
# grids


@dataclass
class Grid:
    """A parameter grid as the engine takes it: value axes (permuted or zipped) or explicit
    rows (one per point, a DataFrame's rows)."""

    keys: list[str]
    values: list[np.ndarray] | None = None
    rows: np.ndarray | None = None
    permute: bool = False

    @property
    def n_points(self) -> int:
        if self.rows is not None:
            return int(self.rows.shape[0])
        assert self.values is not None
        if not self.values:
            return 1
        if self.permute:
            return math.prod(len(v) for v in self.values)
        return len(self.values[0])


def make_grid(param_grid: Any, permute_grid: bool) -> Grid:
    if isinstance(param_grid, pd.DataFrame):
        keys = [str(c) for c in param_grid.columns]
        try:
            rows = param_grid.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise argument_error("param_grid", f"param_grid: every value must be a number ({exc})") from None
        return Grid(keys=keys, rows=np.ascontiguousarray(rows.reshape(len(param_grid), len(keys))))
    if not isinstance(param_grid, Mapping):
        raise TypeError(
            f"param_grid must be a dict of value lists or a pandas DataFrame, got {type(param_grid).__name__}"
        )
    keys: list[str] = []
    values: list[np.ndarray] = []
    for key, v in param_grid.items():
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise argument_error(
                f"param_grid[{key!r}]", f"param_grid[{key!r}] must be a list of numbers, got {v!r}"
            ) from None
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1:
            raise argument_error(
                f"param_grid[{key!r}]",
                f"param_grid[{key!r}] must be one-dimensional, got shape {arr.shape}",
            )
        keys.append(str(key))
        values.append(np.ascontiguousarray(arr))
    if not permute_grid and values:
        lengths = {k: len(v) for k, v in zip(keys, values)}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
            raise argument_error(
                "param_grid",
                "param_grid: with permute_grid=False the value lists are zipped and must have "
                f"equal lengths, got {listed} (pass permute_grid=True for every combination)",
            )
    return Grid(keys=keys, values=values, permute=bool(permute_grid))


def make_param_map(param_map: Any, keys: Sequence[str]) -> dict[str, dict[str, list]]:
    """Checks the shape of a param_map and keeps the entries of the grid's keys."""
    if not isinstance(param_map, Mapping):
        raise TypeError(f"param_map must be a dict, got {type(param_map).__name__}")
    out: dict[str, dict[str, list]] = {}
    for key in keys:
        if key not in param_map:
            raise argument_error(
                "param_map",
                f"param_map has no entry for param_grid key {key!r} "
                f"(param_map keys: {', '.join(map(repr, param_map)) or 'none'})",
            )
        entry = param_map[key]
        if not isinstance(entry, Mapping) or "vars" not in entry:
            raise argument_error(
                f"param_map[{key!r}]",
                f"param_map[{key!r}] must be a dict with 'vars' and 'nodes' or 'edges', got {entry!r}",
            )
        unknown = set(entry) - {"vars", "nodes", "edges"}
        if unknown:
            raise argument_error(
                f"param_map[{key!r}]",
                f"param_map[{key!r}] has unknown field(s) {sorted(unknown)}; expected 'vars' and 'nodes' or 'edges'",
            )
        vars_ = [entry["vars"]] if isinstance(entry["vars"], str) else list(entry["vars"])
        nodes = entry.get("nodes")
        edges = entry.get("edges")
        if nodes is not None and edges is not None:
            raise argument_error(
                f"param_map[{key!r}]",
                f"param_map[{key!r}] takes 'nodes' or 'edges', not both "
                "(without either, each var is a full path such as 'C/scale')",
            )
        item: dict[str, list] = {"vars": [str(v) for v in vars_]}
        if nodes is not None:
            item["nodes"] = [nodes] if isinstance(nodes, str) else [str(n) for n in nodes]
        elif edges is not None:
            edge_list = []
            for e in edges:
                if isinstance(e, str) or len(e) not in (2, 3):
                    raise argument_error(
                        f"param_map[{key!r}]['edges']",
                        f"param_map[{key!r}]['edges']: each edge is (source, target) or "
                        f"(source, target, idx), got {e!r}",
                    )
                edge_list.append((str(e[0]), str(e[1])) + ((int(e[2]),) if len(e) == 3 else ()))
            item["edges"] = edge_list
        out[key] = item
    return out


# ---------------------------------------------------------------------------------------
# inputs and outputs


def make_inputs(inputs: Any, steps: int | None, n_points: int) -> dict[str, Any]:
    """numpy arrays of shape (steps,), (steps, 1) or (steps, n_points), or numbers. One row
    fewer than ``steps`` is accepted (the seed builds ``int(T/dt)`` rows); without ``steps``
    (time settings the engine refuses) rows are not counted."""
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a dict 'node/op/var' -> array, got {type(inputs).__name__}")
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        arg = f"inputs[{name!r}]"
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[str(name)] = float(value)
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise argument_error(arg, f"{arg} must be a number or an array of numbers") from None
        if arr.ndim == 0:
            out[str(name)] = float(arr)
            continue
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim > 2:
            raise argument_error(
                arg, f"{arg} must have shape (steps,), (steps, 1) or (steps, n_points), got {arr.shape}"
            )
        if steps is not None and arr.shape[0] not in (steps, steps - 1):
            raise argument_error(
                arg,
                f"{arg} has {arr.shape[0]} rows; expected {steps} "
                f"(= round(simulation_time / step_size)) or {steps - 1}",
            )
        if arr.ndim == 2 and arr.shape[1] != n_points:
            raise argument_error(
                arg,
                f"{arg} has {arr.shape[1]} columns; expected 1 or one per grid point ({n_points})",
            )
        out[str(name)] = np.ascontiguousarray(arr)
    return out


def make_outputs(outputs: Any) -> dict[str, str]:
    if outputs is None:
        raise argument_error("outputs", "outputs is required: a dict key -> 'node/op/var'")
    if not isinstance(outputs, Mapping) or not outputs:
        raise argument_error("outputs", f"outputs must be a non-empty dict key -> 'node/op/var', got {outputs!r}")
    out = {}
    for key, path in outputs.items():
        if not isinstance(path, str):
            raise argument_error(f"outputs[{key!r}]", f"outputs[{key!r}] must be a 'node/op/var' string, got {path!r}")
        out[str(key)] = path
    return out


def number(name: str, value: Any) -> float:
    """``value`` as a float, or an error naming ``name`` when it is missing or no number.
    Whether the number makes sense (a positive step, a cutoff inside the run) is the
    engine's rule (``sweep::checks``), reported with the same argument name."""
    if value is None:
        raise argument_error(name, f"{name} is required")
    if isinstance(value, bool):
        raise argument_error(name, f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise argument_error(name, f"{name} must be a number, got {value!r}") from None


def step_count(simulation_time: float, step_size: float) -> int | None:
    """Steps of a run, or None when the engine will refuse the time settings anyway."""
    if not (math.isfinite(step_size) and step_size > 0.0 and math.isfinite(simulation_time)):
        return None
    return int(round(simulation_time / step_size))


# ---------------------------------------------------------------------------------------
# the run


@dataclass
class RunRequest:
    """One sweep's arguments, normalised once for every front; :meth:`engine_args` are the
    keywords of the extension's ``SweepArgs`` (what ``run_sweep`` and ``ClusterSweep`` take)."""

    template: str
    grid: Grid
    param_map: dict[str, dict[str, list]]
    simulation_time: float
    step_size: float
    outputs: dict[str, str]
    inputs: dict[str, Any] = field(default_factory=dict)
    sampling_step_size: float | None = None
    solver: str = "euler"
    backend: str = "auto"
    precision: str = "float64"
    cutoff: float = 0.0
    summaries: list[str] = field(default_factory=list)
    keep_traces: bool = True
    threads: int | None = None
    out: str | None = None
    overwrite: bool = False
    rtol: float | None = None
    atol: float | None = None
    profile: str | None = None
    trace_precision: str = "float64"
    compress: bool = False
    regime: dict[str, float] | None = None
    initial_conditions: list[dict[str, float]] = field(default_factory=list)
    random_starts: tuple[int, int, list[tuple[str, float, float]]] | None = None
    refine: tuple[int, str, float] | None = None

    def engine_args(self) -> dict[str, Any]:
        return {
            "grid_keys": self.grid.keys,
            "grid_values": self.grid.values,
            "grid_rows": self.grid.rows,
            "permute": self.grid.permute,
            "param_map": self.param_map,
            "simulation_time": self.simulation_time,
            "step_size": self.step_size,
            "sampling_step_size": self.sampling_step_size,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "solver": self.solver,
            "backend": self.backend,
            "precision": self.precision,
            "cutoff": self.cutoff,
            "summaries": self.summaries,
            "keep_traces": self.keep_traces,
            "threads": self.threads,
            "rtol": self.rtol,
            "atol": self.atol,
            "regime": None if self.regime is None else [(str(k), float(v)) for k, v in self.regime.items()],
            "initial_conditions": [[(str(k), float(v)) for k, v in start.items()] for start in self.initial_conditions],
            "random_starts": self.random_starts,
            "refine": self.refine,
        }


def _step_size(dt: Any, step_size: Any, settings: Mapping[str, Any]) -> Any:
    """``dt`` and ``step_size`` are one setting under two names: both may be given when their
    values agree (compared as numbers, so ``1e-3`` and ``np.float64(1e-3)`` agree)."""
    if dt is not None and step_size is not None:
        if number("step_size", dt) != number("step_size", step_size):
            raise argument_error("step_size", f"dt={dt} and step_size={step_size} disagree; pass one of them")
        return step_size
    if dt is not None:
        return dt
    if step_size is not None:
        return step_size
    return settings.get("step_size", settings.get("dt"))


def build_request(
    front: str,
    template: str | os.PathLike[str],
    param_grid: Any,
    param_map: Any,
    *,
    simulation_time: Any,
    dt: Any = None,
    step_size: Any = None,
    inputs: Any = None,
    outputs: Any = None,
    sampling_step_size: Any = None,
    permute_grid: bool = False,
    cutoff: Any = 0.0,
    summaries: Any = None,
    keep_traces: bool | None = None,
    n_threads: Any = None,
    profile: Any = None,
    solver: Any = None,
    backend: Any = None,
    float_precision: Any = None,
    init_kwargs: Any = None,
    extra: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    trace_precision: str = "float64",
    compress: bool = False,
    regime: Mapping[str, float] | None = None,
    initial_conditions: Sequence[Mapping[str, float]] | None = None,
    random_starts: Mapping[str, Any] | None = None,
    default_precision: str = "float64",
    refine: Mapping[str, Any] | None = None,
) -> RunRequest:
    """The PyRates arguments of any front (``grid_search``, ``ClusterGridSearch.run``,
    ``CircuitTemplate.run``, ``rustrates.pyrates``) as one :class:`RunRequest`. Only types and
    shapes are checked here; what the values mean (a step that is not positive, a cutoff
    outside the run, unknown nodes) is the engine's, which reports it with the same argument
    name from every front. ``front`` names the caller in TypeErrors; ``extra`` holds the
    caller's remaining keywords (flat PyRates settings, ``method``, ignored keywords)."""
    settings = split_kwargs(front, init_kwargs, extra or {})
    if not isinstance(template, (str, os.PathLike)):
        raise TypeError(f"circuit_template must be a template path string, got {type(template).__name__}")
    t_value = number("simulation_time", simulation_time)
    dt_value = number("step_size", _step_size(dt, step_size, settings))
    dts = None if sampling_step_size is None else number("sampling_step_size", sampling_step_size)
    cutoff_value = 0.0 if cutoff is None else number("cutoff", cutoff)
    if profile is not None and profile not in _PROFILES:
        raise argument_error("profile", f"profile must be 't', 'm' or 'mt', got {profile!r}")
    if summaries is not None and (isinstance(summaries, str) or not all(isinstance(s, str) for s in summaries)):
        raise argument_error("summaries", f"summaries must be a list of statistic names, got {summaries!r}")
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads < 1
    ):
        raise argument_error("n_threads", f"n_threads must be a positive integer, got {n_threads!r}")
    grid = make_grid(param_grid, permute_grid)
    stats = list(summaries or [])
    if keep_traces is None:
        # Traces unless only summaries were asked for and nothing is written to a file.
        keep_traces = out is not None or not stats
    return RunRequest(
        template=os.fspath(template),
        grid=grid,
        param_map=make_param_map(param_map, grid.keys),
        simulation_time=t_value,
        step_size=dt_value,
        sampling_step_size=dts,
        inputs=make_inputs(inputs, step_count(t_value, dt_value), grid.n_points),
        outputs=make_outputs(outputs),
        solver=solver_name(solver if solver is not None else settings.get("solver")),
        backend=backend_name(backend if backend is not None else settings.get("backend")),
        precision=precision_name(
            float_precision if float_precision is not None else settings.get("float_precision", default_precision)
        ),
        cutoff=cutoff_value,
        summaries=stats,
        keep_traces=bool(keep_traces),
        threads=None if n_threads is None else int(n_threads),
        out=None if out is None else os.fspath(out),
        overwrite=bool(overwrite),
        rtol=settings.get("rtol"),
        atol=settings.get("atol"),
        profile=profile,
        trace_precision=trace_precision,
        compress=bool(compress),
        regime=None if regime is None else dict(regime),
        initial_conditions=[dict(start) for start in (initial_conditions or [])],
        random_starts=None if random_starts is None else _random_starts(random_starts),
        refine=_refine(refine),
    )


#: The keywords :func:`build_request` takes by name. A front whose parameters carry these
#: names hands them over with :func:`request_keywords` instead of listing them again, so a
#: new option is added to the builder and to the front's signature, nowhere else.
REQUEST_KEYWORDS = frozenset(
    name
    for name, p in inspect.signature(build_request).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in {"extra", "default_precision"}
)


def request_keywords(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a front's arguments (its ``locals()`` where it starts, or its
    ``**kwargs``) that :func:`build_request` takes under the same name."""
    return {name: value for name, value in arguments.items() if name in REQUEST_KEYWORDS}


def _random_starts(arg: Any) -> tuple[int, int, list[tuple[str, float, float]]]:
    """``{"n": 8, "seed": 0, "bounds": {"PC/Op_e/r": (0, 3)}}`` as the engine takes it (the
    engine checks the values and the state names)."""
    usage = 'random_starts is {"n": starts per point, "seed": int (default 0), "bounds": {state: (low, high)}}'
    if not isinstance(arg, Mapping) or "n" not in arg or set(arg) - {"n", "seed", "bounds"}:
        raise argument_error("random_starts", f"{usage}; got {arg!r}")
    n, seed, bounds = arg["n"], arg.get("seed", 0), arg.get("bounds", {})
    for name, v in (("n", n), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise argument_error("random_starts", f"random_starts[{name!r}] must be an integer >= 0, got {v!r}")
    if not isinstance(bounds, Mapping) or not all(
        isinstance(b, Sequence) and not isinstance(b, str) and len(b) == 2 for b in bounds.values()
    ):
        raise argument_error("random_starts", f"{usage}; bounds got {bounds!r}")
    return (
        int(n),
        int(seed),
        [(str(k), number("random_starts", lo), number("random_starts", hi)) for k, (lo, hi) in bounds.items()],
    )


def _refine(refine: Mapping[str, Any] | None) -> tuple[int, str, float] | None:
    """``refine={'levels': 5, 'criterion': 'regime', 'tolerance': 0.0}`` as the engine's
    ``(levels, criterion, tolerance)``; the engine checks the values."""
    if refine is None:
        return None
    if not isinstance(refine, Mapping):
        raise argument_error("refine", f"refine must be a dict such as {{'levels': 5}}, got {refine!r}")
    unknown = set(refine) - {"levels", "criterion", "tolerance"}
    if unknown:
        raise argument_error("refine", f"unknown refine setting(s) {sorted(unknown)}; use levels, criterion, tolerance")
    levels = refine.get("levels")
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or not 0 <= levels < 2**32:
        raise argument_error("refine", f"refine['levels'] must be a whole number such as 5, got {levels!r}")
    criterion = refine.get("criterion", "regime")
    if not isinstance(criterion, str):
        raise argument_error("refine", f"refine['criterion'] must be a summary name, got {criterion!r}")
    return int(levels), criterion, number("refine", refine.get("tolerance", 0.0))


def execute(req: RunRequest, progress: Any = None) -> dict[str, Any]:
    """One call of the engine. The GIL is released inside; Ctrl-C stops it between blocks."""
    args = _rustrates.SweepArgs(**req.engine_args())
    return _rustrates.run_sweep(
        req.template,
        args,
        out=req.out,
        progress=progress,
        overwrite=req.overwrite,
        trace_precision=req.trace_precision,
        compress=req.compress,
    )


def warn_status(res: Mapping[str, Any]) -> None:
    """The engine's notes (e.g. threads capped at the cores), then one warning naming the grid
    points that diverged (their outputs are NaN from then)."""
    for note in res.get("notes", ()):
        warnings.warn(note, RustratesWarning, stacklevel=3)
    status = list(res["status"])
    bad = [(label, s, t) for label, s, t in zip(res["labels"], status, res["status_time"]) if s != "ok"]
    if not bad:
        return
    shown = ", ".join(f"{label} ({s} at t={t:g})" for label, s, t in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    warnings.warn(
        f"{len(bad)} of {len(status)} grid points stopped early: {shown}{more}; "
        "their outputs are NaN from that time on",
        RustratesWarning,
        stacklevel=3,
    )


def traces_frame(res: Mapping[str, Any]) -> pd.DataFrame:
    """Traces (points, time, columns) as PyRates' frame: time index, columns
    ``(circuit_label, node, output_key)``, label-major. One copy at most (none for one column)."""
    traces = res["traces"]
    if traces is None:
        raise ValueError("the run kept no traces")
    n_points, n_time, n_cols = traces.shape
    # pandas keeps a 2-D float block as (columns, rows): build exactly that layout.
    block = np.ascontiguousarray(traces.transpose(0, 2, 1)).reshape(n_points * n_cols, n_time)
    columns, index = traces_axes(res)
    return pd.DataFrame(block.T, index=index, columns=columns, copy=False)


def traces_axes(res: Mapping[str, Any]) -> tuple[pd.MultiIndex, pd.Index]:
    """The columns ``(circuit_label, node, output_key)``, label-major, and the time index of
    the traces frame of ``res`` (also when ``res`` holds no traces)."""
    columns = pd.MultiIndex.from_tuples(
        [(label, node, key) for label in res["labels"] for (node, key) in res["columns"]],
        names=["circuit", "node", "output"],
    )
    return columns, pd.Index(np.asarray(res["time"], dtype=np.float64), name="time")


def result_map_frame(res: Mapping[str, Any]) -> pd.DataFrame:
    grid = np.asarray(res["grid"], dtype=np.float64).reshape(len(res["labels"]), len(res["grid_keys"]))
    return pd.DataFrame(grid, index=pd.Index(list(res["labels"])), columns=list(res["grid_keys"]))


def column_names(columns: Sequence[tuple[str, str]]) -> list[str]:
    """Output keys, or ``node/key`` where one key covers several nodes (``all/...`` outputs)."""
    keys = [key for _, key in columns]
    if len(set(keys)) == len(keys):
        return keys
    return [f"{node}/{key}" for node, key in columns]


def summaries_frame(res: Mapping[str, Any]) -> pd.DataFrame:
    """Summaries (points, columns, statistics) as a frame: index = labels, columns
    ``(output_key, statistic)``."""
    summ = res["summaries"]
    stats = list(res["summary_names"])
    n_points, n_cols, n_stats = summ.shape
    columns = pd.MultiIndex.from_tuples(
        [(name, stat) for name in column_names(res["columns"]) for stat in stats],
        names=["output", "statistic"],
    )
    frame = pd.DataFrame(summ.reshape(n_points, n_cols * n_stats), index=pd.Index(list(res["labels"])), columns=columns)
    if "regime" in stats:
        # Codes → names (the engine's `Regime`), a categorical with every regime as a category.
        names = dict(_rustrates.REGIME_CODES)
        categories = [names[c] for c in sorted(names)]
        for col in [c for c in frame.columns if c[1] == "regime"]:
            frame[col] = pd.Categorical(
                frame[col].map(lambda x: names.get(int(x)) if x == x else None), categories=categories
            )
    return frame
