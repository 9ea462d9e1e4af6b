"""Result files: reading the engine's HDF5 layout back into pandas, and adding the
pandas-readable keys of the seed's cluster mode (``Results/results``, ``Results/result_map``,
``ParameterGrid/Grid_df``) beside it."""

from __future__ import annotations

import os
import warnings
from typing import Any

import pandas as pd

from . import _core, _rustrates

#: Traces larger than this are not copied into the pandas keys (PyTables stores a frame in
#: one piece, so it must fit in memory twice); ``read_results`` reads them instead.
PANDAS_KEYS_MAX_BYTES = 2 * 1024**3


def read_results(path: str | os.PathLike[str]) -> tuple[pd.DataFrame | None, pd.DataFrame, pd.DataFrame | None]:
    """Load a results file written by ``grid_search(out=...)``, ``rustrates sweep`` or
    ``ClusterGridSearch``.

    Returns
    -------
    tuple
        ``(results, result_map, summaries)`` as ``grid_search`` returns them; ``results`` is
        None when the file holds no traces, ``summaries`` None when it holds no summaries.
    """
    res = _rustrates.read_results(os.fspath(path))
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
    with warnings.catch_warnings():
        # PyTables warns that string labels in the column MultiIndex are pickled; that is
        # the layout PyRates' files have and pandas reads back.
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        with pd.HDFStore(path, mode="a") as store:
            store.put("Results/result_map", result_map, track_times=False)
            store.put("ParameterGrid/Grid_df", result_map, track_times=False)
            if traces is not None:
                store.put("Results/results", _core.traces_frame(res), track_times=False)
    return traces is not None
