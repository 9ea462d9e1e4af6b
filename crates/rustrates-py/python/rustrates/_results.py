"""Result files: reading the engine's HDF5 layout back into pandas, and adding the
pandas-readable keys of the seed's cluster mode (``Results/results``, ``Results/result_map``,
``ParameterGrid/Grid_df``) beside it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from . import _core, _pandas_keys, _rustrates

#: Traces larger than this are not copied into the pandas keys (PyTables stores a frame in
#: one piece, so it must fit in memory twice); ``read_results`` reads them instead.
PANDAS_KEYS_MAX_BYTES = 2 * 1024**3


class Results(tuple[pd.DataFrame | None, pd.DataFrame, pd.DataFrame | None]):
    """``(results, result_map, summaries)`` of a results file (unpacks like the tuple
    ``grid_search`` returns), and :meth:`to_xarray`."""

    _path: str
    _selection: dict[str, Any]

    def __new__(
        cls,
        frames: tuple[pd.DataFrame | None, pd.DataFrame, pd.DataFrame | None],
        path: str,
        selection: dict[str, Any],
    ) -> Results:
        obj = super().__new__(cls, frames)
        obj._path, obj._selection = path, selection
        return obj

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        # Pickling (e.g. a result handed between processes) rebuilds it with its file.
        return (tuple(self), self._path, self._selection)

    def to_xarray(self) -> Any:
        """The file as an ``xarray.Dataset`` (read again from the file, so the frames are not
        held twice in memory).

        Dimensions: one per grid key when the grid is a Cartesian product (every combination
        of the keys' distinct values exactly once, in any order; the coordinates are the sorted
        values), else ``point`` with the grid keys as coordinates along it; ``label`` (the
        circuit labels of ``result_map``) is a coordinate over the same dimensions. Variables:
        one per summary statistic over the grid dimensions and ``output``; the regime as
        ``regime`` (the engine's code, NaN where there is none) and ``regime_name``; ``traces``
        over the grid dimensions, ``time`` and ``output`` when the file keeps traces; the
        ``status`` of each point.

        Needs xarray (``pip install 'rustrates[xarray]'``).
        """
        try:
            import xarray as xr
        except ImportError as err:
            raise ImportError(
                "read_results(...).to_xarray() needs xarray, which is not installed: "
                "pip install 'rustrates[xarray]' (or pip install xarray)"
            ) from err
        res = _rustrates.read_results(self._path, **self._selection)
        return results_dataset(xr, res)


def _cartesian(keys: list[str], grid: np.ndarray) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Per key its sorted distinct values, and per point its flat index in the product of
    them; None unless every combination occurs exactly once."""
    n_points = grid.shape[0]
    if not keys or n_points == 0:
        return None
    axes, inverse = [], []
    for k in range(len(keys)):
        values, inv = np.unique(grid[:, k], return_inverse=True)
        axes.append(values)
        inverse.append(inv.reshape(-1))
    shape = tuple(len(a) for a in axes)
    if int(np.prod(shape)) != n_points:
        return None
    flat = np.ravel_multi_index(tuple(inverse), shape)
    if len(np.unique(flat)) != n_points:
        return None
    return axes, flat


def results_dataset(xr: Any, res: dict[str, Any]) -> Any:
    """The engine's result dict as an ``xarray.Dataset`` (see :meth:`Results.to_xarray`)."""
    keys = list(res["grid_keys"])
    labels = np.asarray(list(res["labels"]), dtype=object)
    grid = np.asarray(res["grid"], dtype=np.float64).reshape(len(labels), len(keys))
    outputs = _core.column_names(res["columns"])
    cart = _cartesian(keys, grid)
    if cart is None:
        dims: list[str] = ["point"]
        shape: tuple[int, ...] = (len(labels),)
        coords: dict[str, Any] = {k: ("point", grid[:, i]) for i, k in enumerate(keys)}

        def lay(data: np.ndarray) -> np.ndarray:
            return data
    else:
        axes, flat = cart
        dims, shape = keys, tuple(len(a) for a in axes)
        coords = {k: a for k, a in zip(keys, axes)}

        def lay(data: np.ndarray) -> np.ndarray:
            fill: Any = None if data.dtype == object else np.nan
            out = np.full((int(np.prod(shape)),) + data.shape[1:], fill, dtype=data.dtype)
            out[flat] = data
            return out.reshape(shape + data.shape[1:])

    coords["label"] = (dims, lay(labels))
    coords["output"] = outputs
    variables: dict[str, Any] = {"status": (dims, lay(np.asarray(list(res["status"]), dtype=object)))}
    summ = res["summaries"]
    if summ is not None:
        for i, stat in enumerate(res["summary_names"]):
            variables[stat] = (dims + ["output"], lay(np.asarray(summ[:, :, i])))
        if "regime" in res["summary_names"]:
            # The code is the same in every output column: one value per point.
            codes = np.asarray(summ[:, 0, list(res["summary_names"]).index("regime")])
            names = dict(_rustrates.REGIME_CODES)
            variables["regime"] = (
                dims,
                lay(codes),
                {"codes": ", ".join(f"{c}: {n}" for c, n in sorted(names.items()))},
            )
            variables["regime_name"] = (
                dims,
                lay(np.asarray([names.get(int(c)) if c == c else None for c in codes], dtype=object)),
            )
    traces = res["traces"]
    if traces is not None:
        coords["time"] = np.asarray(res["time"], dtype=np.float64)
        variables["traces"] = (dims + ["time", "output"], lay(np.asarray(traces)))
    return xr.Dataset(variables, coords=coords, attrs={"circuit_name": res["circuit_name"]})


def read_results(
    path: str | os.PathLike[str],
    points: range | slice | None = None,
    outputs: str | list[str] | None = None,
    traces: bool = True,
    summaries: bool = True,
) -> Results:
    """Load a results file written by ``grid_search(out=...)``, ``rustrates sweep`` or
    ``ClusterGridSearch``, or only the part of it asked for: only those values are read from
    the file (HDF5 hyperslabs), the rest never leaves the disk.

    Parameters
    ----------
    points
        Only these grid points (``range(i, j)`` or ``slice(i, j)``, step 1; a stop past the
        end stops at the end). For traces, the chunks holding them are read (``block_size``
        points each). Default: every point.
    outputs
        Only these output columns: an output key (``'r'``: every column of that key, e.g. each
        node of an ``all/...`` output or both parts of a complex output), ``'node/key'`` for
        one column, or a list of them. A name the file has no column for is an error that
        lists the names there are. Default: every column.
    traces, summaries
        False leaves the traces (the summaries) unread; ``results`` (``summaries``) is then
        None. ``read_results(path, traces=False)`` reads the result map and summaries of a
        file of any size.

    Returns
    -------
    Results
        ``(results, result_map, summaries)`` as ``grid_search`` returns them; ``results`` is
        None when the file holds no traces, ``summaries`` None when it holds no summaries.
        ``read_results(path).to_xarray()`` gives the same as an ``xarray.Dataset``.
    """
    span = None
    if points is not None:
        start, stop, step = points.start, points.stop, points.step
        if (
            not isinstance(points, (range, slice))
            or step not in (None, 1)
            or (start or 0) < 0
            or (stop is not None and stop < 0)
        ):
            raise ValueError(f"points must be range(i, j) or slice(i, j) with 0 <= i, step 1; got {points!r}")
        span = (start or 0, 2**63 - 1 if stop is None else max(stop, start or 0))
    names = [outputs] if isinstance(outputs, str) else None if outputs is None else [str(o) for o in outputs]
    selection = {"points": span, "outputs": names, "traces": bool(traces), "summaries": bool(summaries)}
    res = _rustrates.read_results(os.fspath(path), **selection)
    results = _core.traces_frame(res) if res["traces"] is not None else None
    summ = _core.summaries_frame(res) if res["summaries"] is not None else None
    return Results((results, _core.result_map_frame(res), summ), os.fspath(path), selection)


def add_pandas_keys(path: str, res: dict[str, Any], result_map: pd.DataFrame) -> bool:
    """Write the seed's pandas keys into the engine's file ``res`` describes (what
    ``run_sweep(out=...)`` returns). ``Results/results``, the traces frame, is copied by the
    engine from the file's ``/traces`` (never read into Python). Returns False (and writes
    only the result map) when the file keeps no traces or they are too large for
    ``pd.read_hdf`` to hold as one frame."""
    nodes, rest = _pandas_keys.prepare([("Results/result_map", result_map)])
    size = 8 * len(res["labels"]) * int(res["n_time"]) * len(res["columns"])
    with_traces = bool(res.get("traces_in_file")) and 0 < size <= PANDAS_KEYS_MAX_BYTES
    if with_traces:
        nodes += _pandas_keys.traces_frame_nodes("Results/results", *_core.traces_axes(res))
    # ParameterGrid/Grid_df: the same frame under the seed's second name, as an HDF5 hard link.
    links, _ = _pandas_keys.prepare([], links=[("ParameterGrid/Grid_df", "Results/result_map")])
    _pandas_keys.put_prepared(path, nodes + links, rest, create=False)
    return with_traces
