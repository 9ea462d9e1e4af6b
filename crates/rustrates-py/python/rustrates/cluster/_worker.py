"""What runs on a Dask worker: the sweep object built once per process from the picklable
payload, one chunk run into a private directory and shipped back as bytes, the
``worker_file`` postprocessing, and the check that a worker can import rustrates at all."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .. import _core, _rustrates
from .._rustrates import SweepError

# The check is pickled by value (it is defined in ``__main__``'s name), so a worker without
# rustrates can run it and say so instead of failing to unpickle a rustrates function.
_CHECK_SOURCE = """
def rustrates_worker_check():
    import sys
    try:
        import rustrates
    except Exception as exc:
        return ("missing", f"{type(exc).__name__}: {exc}", sys.executable)
    return ("ok", rustrates.__version__, sys.executable)
"""

_SWEEPS: dict[str, Any] = {}
_POSTPROCESSORS: dict[str, Any] = {}


def _worker_threads() -> int | None:
    try:
        from dask.distributed import get_worker  # noqa: PLC0415 - only on workers

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(worker, "state", None)
    n = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return int(n) if n else None


def _sweep_for(payload: Mapping[str, Any]) -> Any:
    """The sweep object of a payload, built once per worker process (loading the template
    and checking the arguments are not repeated per chunk)."""
    key = payload["fingerprint"]
    sweep = _SWEEPS.get(key)
    if sweep is None:
        kwargs = dict(payload["kwargs"])
        kwargs["args"] = _aligned(dict(kwargs["args"]))
        if kwargs["args"].get("threads") is None:
            kwargs["args"]["threads"] = _worker_threads()
        sweep = _new_sweep(kwargs)
        if sweep.fingerprint != key:
            raise SweepError(
                f"this worker computes fingerprint {sweep.fingerprint[:16]}… for the sweep, the "
                f"client {key[:16]}…: the worker's rustrates reads the shipped template or the "
                "settings differently; install the same rustrates version everywhere"
            )
        if len(_SWEEPS) >= 4:
            _SWEEPS.clear()
        _SWEEPS[key] = sweep
    return sweep


def _new_sweep(kwargs: Mapping[str, Any]) -> Any:
    """A ``ClusterSweep`` from the picklable form the client sends: ``{template, args,
    chunk_size[, template_files, template_cwd]}`` with ``args`` the keywords of ``SweepArgs``."""
    rest = {k: v for k, v in kwargs.items() if k not in ("template", "args")}
    return _rustrates.ClusterSweep(kwargs["template"], _rustrates.SweepArgs(**kwargs["args"]), **rest)


def _aligned(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arrays unpickled from Dask's out-of-band buffers may be unaligned, which the engine's
    array views refuse: aligned copies."""

    def fix(a: Any) -> Any:
        return np.require(a, requirements=["C", "A"]) if isinstance(a, np.ndarray) else a

    if kwargs.get("grid_values") is not None:
        kwargs["grid_values"] = [fix(v) for v in kwargs["grid_values"]]
    kwargs["grid_rows"] = fix(kwargs.get("grid_rows"))
    kwargs["inputs"] = {k: fix(v) for k, v in kwargs["inputs"].items()}
    return kwargs


def _postprocessor(source: str, name: str) -> Any:
    key = hashlib.sha256(source.encode()).hexdigest()
    fn = _POSTPROCESSORS.get(key)
    if fn is None:
        namespace: dict[str, Any] = {"__name__": "rustrates_worker_file", "__file__": name}
        exec(compile(source, name, "exec"), namespace)  # noqa: S102 - the user's worker_file
        fn = namespace["worker_postprocessing"]
        _POSTPROCESSORS[key] = fn
    return fn


def _chunk_frames(res: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = _core.traces_frame(res) if res["traces"] is not None else _core.summaries_frame(res)
    return results, _core.result_map_frame(res)


def _apply_postprocessing(fn: Any, res: Mapping[str, Any], where: str) -> pd.DataFrame:
    results, result_map = _chunk_frames(res)
    out = fn(results, result_map)
    if isinstance(out, pd.Series):
        out = out.to_frame()
    if not isinstance(out, pd.DataFrame):
        raise TypeError(f"worker_postprocessing ({where}) must return a pandas DataFrame, got {type(out).__name__}")
    return out


def run_chunk_task(payload: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One Dask task: chunk ``index`` of the sweep, run into a temporary directory of this
    worker. Returns the part file's bytes, the fingerprint the engine wrote, and the pickled
    ``worker_postprocessing`` output when a worker_file was given."""
    sweep = _sweep_for(payload)
    with tempfile.TemporaryDirectory(prefix="rustrates-chunk-") as tmp:
        rel = sweep.run_chunk(index, tmp)
        part = os.path.join(tmp, rel)
        with open(os.path.join(tmp, "sweep.json"), encoding="utf-8") as f:
            fingerprint = json.load(f)["fingerprint"]
        post = None
        if payload.get("post_source") is not None:
            fn = _postprocessor(payload["post_source"], payload["post_name"])
            res = sweep.read_part(part)
            post = pickle.dumps(_apply_postprocessing(fn, res, f"chunk {index}"), protocol=pickle.HIGHEST_PROTOCOL)
        data = _rustrates.read_bytes(part)
    return {"index": index, "data": data, "fingerprint": fingerprint, "post": post}
