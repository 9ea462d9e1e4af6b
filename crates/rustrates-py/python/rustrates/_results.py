"""Result files: reading the engine's HDF5 layout back into pandas, and adding the
pandas-readable keys of the seed's cluster mode (``Results/results``, ``Results/result_map``,
``ParameterGrid/Grid_df``) beside it."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from . import _core, _pandas_keys, _rustrates

#: Traces larger than this are not copied into the pandas keys (PyTables stores a frame in
#: one piece, so it must fit in memory twice); ``read_results`` reads them instead.
PANDAS_KEYS_MAX_BYTES = 2 * 1024**3


def read_results(
    path: str | os.PathLike[str], points: range | slice | None = None
) -> tuple[pd.DataFrame | None, pd.DataFrame, pd.DataFrame | None]:
    """Load a results file written by ``grid_search(out=...)``, ``rustrates sweep`` or
    ``ClusterGridSearch``.

    Parameters
    ----------
    points
        Only these grid points (``range(i, j)`` or ``slice(i, j)``, step 1; a stop past the
        end stops at the end): only their values are read from the file, for traces the
        chunks holding them (``block_size`` points each). Default: every point.

    Returns
    -------
    tuple
        ``(results, result_map, summaries)`` as ``grid_search`` returns them; ``results`` is
        None when the file holds no traces, ``summaries`` None when it holds no summaries.
    """
    span = None
    if points is not None:
        start, stop, step = points.start, points.stop, points.step
        if not isinstance(points, (range, slice)) or step not in (None, 1) or (start or 0) < 0 or (
            stop is not None and stop < 0
        ):
            raise ValueError(f"points must be range(i, j) or slice(i, j) with 0 <= i, step 1; got {points!r}")
        span = (start or 0, 2**63 - 1 if stop is None else max(stop, start or 0))
    res = _rustrates.read_results(os.fspath(path), span)
    results = _core.traces_frame(res) if res["traces"] is not None else None
    summaries = _core.summaries_frame(res) if res["summaries"] is not None else None
    return results, _core.result_map_frame(res), summaries


def add_pandas_keys(path: str, res: dict[str, Any], result_map: pd.DataFrame) -> bool:
    """Write the seed's pandas keys into the engine's file. Returns False (and writes only
    the result map) when the traces are too large to hold in memory as one frame."""
    traces = res.get("traces")
    if traces is None and res.get("n_time"):
        size = 8 * len(res["labels"]) * int(res["n_time"]) * len(res["columns"])
        if size <= PANDAS_KEYS_MAX_BYTES:
            traces_res = _rustrates.read_results(path)
            res = dict(res, traces=traces_res["traces"], time=traces_res["time"])
            traces = res["traces"]
    keys = [("Results/result_map", result_map)]
    if traces is not None:
        keys.append(("Results/results", _core.traces_frame(res)))
    # ParameterGrid/Grid_df: the same frame under the seed's second name, as an HDF5 hard link.
    _pandas_keys.put_keys(path, keys, create=False, links=[("ParameterGrid/Grid_df", "Results/result_map")])
    return traces is not None
