"""The pandas keys of the result file: those that do not depend on the results (written
into the staging file while the chunks run) and ``Results/results`` (the traces or
summaries as ``grid_search`` returns them, or the ``worker_file`` outputs)."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _core, _pandas_keys, _rustrates
from .._results import PANDAS_KEYS_MAX_BYTES
from ._worker import _apply_postprocessing, _chunk_frames, _postprocessor


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_post(
    post_dir: Path, i: int, sweep: Any, compute_dir: Path, chunks: list, source: str, name: str
) -> pd.DataFrame:
    """A chunk's worker_file output; chunks finished by an earlier call with another (or no)
    worker_file are postprocessed here from their part file."""
    path = post_dir / f"chunk_{i:08d}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this package in compute_dir
    res = sweep.read_part(os.fspath(compute_dir / sweep.part_path(i)))
    frame = _apply_postprocessing(_postprocessor(source, name), res, f"chunk {i}")
    _write_atomic(path, pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
    return frame


def _concat_post(frames: list[pd.DataFrame | None], res: Mapping[str, Any], chunks: list) -> pd.DataFrame:
    """The worker_file outputs of all chunks, along the columns when they share their index
    (one column per grid point, as PyRates' Welch example), along the rows otherwise. A failed
    chunk (None) stands in as NaN: the results frame its points would have been given to
    ``worker_postprocessing`` (their outputs are NaN in ``res``), on the shared index."""
    computed = [f for f in frames if f is not None]
    by_columns = all(f.index.equals(computed[0].index) for f in computed[1:])
    filled = []
    for i, frame in enumerate(frames):
        if frame is None:
            frame, _ = _chunk_frames(_points(res, *chunks[i]))
            if by_columns:
                frame = pd.DataFrame(np.nan, index=computed[0].index, columns=frame.columns)
        filled.append(frame)
    return pd.concat(filled, axis=1 if by_columns else 0)


def _points(res: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """The result dict restricted to points ``start..end``."""
    part = dict(res)
    part["labels"] = list(res["labels"])[start:end]
    part["grid"] = res["grid"][start:end]
    part["status"] = list(res["status"])[start:end]
    part["status_time"] = res["status_time"][start:end]
    for key in ("traces", "summaries"):
        if res[key] is not None:
            part[key] = res[key][start:end]
    return part


def _without_failed(res: Mapping[str, Any]) -> Mapping[str, Any]:
    """The labels and status of the points not marked failed (what warn_status reads)."""
    status = np.asarray(res["status"])
    keep = ~np.isin(status, [_rustrates.STATUS_NAMES[c] for c in _rustrates.FAILED_CODES])
    if keep.all():
        return res
    return {
        "labels": list(np.asarray(res["labels"])[keep]),
        "status": list(status[keep]),
        "status_time": np.asarray(res["status_time"])[keep],
    }


def _to_pandas(value: Any) -> Any:
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value
    arr = np.asarray(value) if not isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return pd.Series({str(k): v for k, v in value.items()})
    if arr.ndim == 2:
        return pd.DataFrame(arr)
    return pd.Series(arr.reshape(-1) if arr.ndim else [value])


def _seed_keys(
    sweep: Any,
    grid_keys: list[str],
    config: dict[str, Any],
    pmap: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, str],
    result_kwargs: Mapping[str, Any] | None,
    template: str | None,
) -> tuple[list, list, pd.Index]:
    """The seed's pandas keys that do not depend on the results (``Results/result_map``,
    ``ParameterGrid/Grid_df``, ``Config/...``, ``AdditionalData/...``, ``TemplateInfo/...``),
    as :func:`_pandas_keys.prepare` gives them, and the labels (the frames' index). Written
    into a new staging file while the chunks run; the engine merges the chunks into it and
    ``_add_results_key`` completes it."""
    grid = sweep.grid()
    labels = sweep.labels()
    result_map = pd.DataFrame(grid, index=pd.Index(labels), columns=list(grid_keys))
    names = list(inputs)
    keys: list[tuple[str, Any]] = [
        ("Results/result_map", result_map),
        (
            "Config/simulation",
            pd.Series({k: (v if v is not None else np.nan) for k, v in config.items()}, dtype=object),
        ),
        ("Config/outputs", pd.Series(dict(outputs), dtype=object)),
        (
            "Config/param_map",
            pd.DataFrame(
                np.array(
                    [
                        (k, ", ".join(v["vars"]), ", ".join(map(str, v.get("nodes", v.get("edges", [])))))
                        for k, v in pmap.items()
                    ],
                    dtype=object,
                ).reshape(-1, 3),
                columns=["key", "vars", "targets"],
                dtype=object,
            ),
        ),
        ("Config/input_names", pd.Series(names, dtype=object)),
    ]
    keys += [(f"Config/inputs/input_{i}", _to_pandas(inputs[name])) for i, name in enumerate(names)]
    keys += [(f"AdditionalData/{key}", _to_pandas(value)) for key, value in (result_kwargs or {}).items()]
    if template is not None:
        circuit = _rustrates.load_circuit(os.fspath(template))
        keys += [
            ("TemplateInfo/variables", pd.DataFrame(circuit.variables)),
            ("TemplateInfo/source", pd.Series([circuit.source_text], dtype=object)),
            ("TemplateInfo/equations", pd.Series([circuit.dump()], dtype=object)),
        ]
    # The same frame under the seed's second name: an HDF5 hard link, not a second copy.
    nodes, rest = _pandas_keys.prepare(keys, links=[("ParameterGrid/Grid_df", "Results/result_map")])
    return nodes, rest, result_map.index


def _add_results_key(
    path: str,
    post_frames: list[pd.DataFrame | None] | None,
    chunks: list,
    keep_traces: bool,
    merged: Mapping[str, Any],
    labels: pd.Index,
) -> None:
    """Adds ``Results/results`` to the merged file at ``path``: the worker_file outputs, or
    the engine's traces or summaries as ``grid_search`` returns them (``summaries_frame``).
    Summaries come from what the merge kept (``merged``) unless a point diverged, whose
    warning needs the file's status."""
    codes = merged["status_codes"]
    if post_frames is None and merged["summaries"] is not None and not np.isin(codes, _rustrates.DIVERGED_CODES).any():
        columns = pd.MultiIndex.from_tuples(
            [(name, stat) for name in _core.column_names(merged["columns"]) for stat in merged["summary_names"]],
            names=["output", "statistic"],
        )
        frame = pd.DataFrame(merged["summaries"], index=labels, columns=columns)
        _pandas_keys.put_keys(path, [("Results/results", frame)], create=False)
        return
    import tables  # noqa: PLC0415 - a dependency of the package; only the shape is read here

    has_traces, traces_bytes = keep_traces, 0
    if keep_traces:
        with tables.open_file(path, "r") as h5:
            traces_bytes = int(np.prod(h5.root.traces.shape)) * 8
    if has_traces and traces_bytes > PANDAS_KEYS_MAX_BYTES and post_frames is None:
        warnings.warn(
            f"the traces ({traces_bytes / 1e9:.1f} GB) are too large to copy into the pandas key "
            f"Results/results; {path} holds them in the engine's layout: load them with "
            "rustrates.read_results(path) or h5py",
            _core.RustratesWarning,
            stacklevel=3,
        )
        return
    res = _rustrates.read_results(path)
    # Failed points have their own warning, with the error (at the end of run).
    _core.warn_status(_without_failed(res))
    if post_frames is not None:
        frame = _concat_post(post_frames, res, chunks)
    else:
        frame = _core.traces_frame(res) if res["traces"] is not None else _core.summaries_frame(res)
    _pandas_keys.put_keys(path, [("Results/results", frame)], create=False)
