"""Argument handling shared by every front (``grid_search``, ``simulate``,
``CircuitTemplate.run`` and the cluster mode): PyRates-style arguments in, one call of the
extension's ``run_sweep`` out, and its arrays turned into pandas objects.

Only checks that need nothing but the arguments live here (shapes, lengths, types), so that
an error names the argument the user wrote; everything that needs the circuit (unknown
variables, nodes, edges) is the engine's and arrives as a :class:`RustratesError` carrying
its diagnostics.
"""

from __future__ import annotations

import math
import numbers
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
    err = SweepError(message)
    err.diagnostics = [
        {"code": "argument/invalid", "message": message, "file": None, "line": None,
         "col": None, "path": argument}
    ]
    return err


# ---------------------------------------------------------------------------------------
# names PyRates users pass

_PRECISIONS = {"float64": "float64", "double": "float64", "float32": "float32", "single": "float32"}


def precision_name(value: Any) -> str:
    """``'float64'``/``'float32'`` from a name or a numpy dtype (PyRates accepted both)."""
    if value is None:
        return "float64"
    if isinstance(value, str) and value.lower() in _PRECISIONS:
        return _PRECISIONS[value.lower()]
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    if name in ("float64", "float32"):
        return name
    raise argument_error(
        "float_precision", f"float_precision must be 'float64' or 'float32', got {value!r}"
    )


def backend_name(value: Any) -> str:
    """The engine parses PyRates' backend names ('numpy', 'default', ... mean auto)."""
    if value is None:
        return "auto"
    if not isinstance(value, str):
        raise argument_error("backend", f"backend must be a string, got {value!r}")
    return value


def solver_name(value: Any) -> str:
    if value is None:
        return "euler"
    if not isinstance(value, str):
        raise argument_error("solver", f"solver must be a string, got {value!r}")
    return value


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
        if (nodes is None) == (edges is None):
            raise argument_error(
                f"param_map[{key!r}]",
                f"param_map[{key!r}] needs exactly one of 'nodes' and 'edges'",
            )
        item: dict[str, list] = {"vars": [str(v) for v in vars_]}
        if nodes is not None:
            item["nodes"] = [nodes] if isinstance(nodes, str) else [str(n) for n in nodes]
        else:
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


def n_steps(simulation_time: float, step_size: float) -> int:
    return int(round(simulation_time / step_size))


def make_inputs(inputs: Any, steps: int, n_points: int) -> dict[str, Any]:
    """numpy arrays of shape (steps,), (steps, 1) or (steps, n_points), or numbers. One row
    fewer than ``steps`` is accepted (the seed builds ``int(T/dt)`` rows)."""
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
            raise argument_error(arg, f"{arg} must have shape (steps,), (steps, 1) or (steps, n_points), got {arr.shape}")
        if arr.shape[0] not in (steps, steps - 1):
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


def number(name: str, value: Any, *, positive: bool = True) -> float:
    if value is None:
        raise argument_error(name, f"{name} is required")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise argument_error(name, f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0.0):
        raise argument_error(name, f"{name} must be a positive finite number, got {value!r}")
    return v


# ---------------------------------------------------------------------------------------
# the run


@dataclass
class RunRequest:
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
    regime: dict[str, float] | None = None
    initial_conditions: list[dict[str, float]] = field(default_factory=list)


def execute(req: RunRequest, progress: Any = None) -> dict[str, Any]:
    """One call of the engine. The GIL is released inside; Ctrl-C stops it between blocks."""
    return _rustrates.run_sweep(
        req.template,
        grid_keys=req.grid.keys,
        grid_values=req.grid.values,
        grid_rows=req.grid.rows,
        permute=req.grid.permute,
        param_map=req.param_map,
        simulation_time=req.simulation_time,
        step_size=req.step_size,
        sampling_step_size=req.sampling_step_size,
        inputs=req.inputs,
        outputs=req.outputs,
        solver=req.solver,
        backend=req.backend,
        precision=req.precision,
        cutoff=req.cutoff,
        summaries=req.summaries,
        keep_traces=req.keep_traces,
        threads=req.threads,
        out=req.out,
        progress=progress,
        rtol=req.rtol,
        atol=req.atol,
        overwrite=req.overwrite,
        regime=None if req.regime is None else [(str(k), float(v)) for k, v in req.regime.items()],
        initial_conditions=[[(str(k), float(v)) for k, v in start.items()] for start in req.initial_conditions],
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
    columns = pd.MultiIndex.from_tuples(
        [(label, node, key) for label in res["labels"] for (node, key) in res["columns"]],
        names=["circuit", "node", "output"],
    )
    index = pd.Index(np.asarray(res["time"], dtype=np.float64), name="time")
    return pd.DataFrame(block.T, index=index, columns=columns, copy=False)


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
    frame = pd.DataFrame(
        summ.reshape(n_points, n_cols * n_stats), index=pd.Index(list(res["labels"])), columns=columns
    )
    if "regime" in stats:
        # Codes → names (the engine's `Regime`), a categorical with every regime as a category.
        names = dict(_rustrates.REGIME_CODES)
        categories = [names[c] for c in sorted(names)]
        for col in [c for c in frame.columns if c[1] == "regime"]:
            frame[col] = pd.Categorical(frame[col].map(lambda x: names.get(int(x)) if x == x else None),
                                        categories=categories)
    return frame
