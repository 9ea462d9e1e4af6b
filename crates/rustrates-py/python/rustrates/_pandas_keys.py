"""pandas' HDF5 keys ("fixed" format) written in one call to the engine.

``pd.HDFStore.put`` spends ≈ 0.7 ms of Python per HDF5 node in PyTables (≈ 3–20 ms per key);
a cluster sweep's file has ≈ 30 such nodes, more than a 10,000-point sweep may spend outside
its chunks. Here the nodes pandas would write are built in Python, following pandas' fixed
format, and written by ``_rustrates.write_pytables_nodes`` exactly as PyTables lays them out.
``tests/python/test_pandas_keys.py`` checks node by node (classes, types, shapes, attributes,
values) that the result equals what ``HDFStore.put`` writes for the same objects, and that
``pd.read_hdf`` gives the objects back.

Covered: Series and DataFrames whose values are all one numpy dtype (float64, int64 or
object: pickled, as pandas stores them), with indexes of integers, floats or strings (columns
may be a MultiIndex of such levels), no empty axes. Anything else is left to ``HDFStore.put``:
``write_keys`` returns those and ``put_keys`` writes them through pandas.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterable
from os import PathLike, fspath
from typing import Any

import numpy as np
import pandas as pd

from . import _rustrates

# PyTables stores a Python value it cannot map to a numpy type as its protocol-0 pickle.
_NONE = pickle.dumps(None, 0)
_VALUE_DTYPES = {np.dtype("float64"): "f8", np.dtype("int64"): "i8"}


class Unsupported(Exception):
    """The object needs pandas' own writer."""


def _name_attr(name: Any) -> Any:
    if name is None:
        return _NONE
    if isinstance(name, str):
        return name
    raise Unsupported(f"index name {name!r}")


def _array(path: str, values: np.ndarray, attrs: list) -> tuple:
    if values.dtype.kind == "S":
        element = f"S{values.dtype.itemsize}"
    elif values.dtype == np.int8:
        element = "i1"
    else:
        element = _VALUE_DTYPES.get(values.dtype)
        if element is None:
            raise Unsupported(f"dtype {values.dtype}")
    data = np.ascontiguousarray(values)
    return (path, "array", (element, list(data.shape), data.tobytes()), attrs + [("transposed", True)])


def _strings(values: Any) -> np.ndarray:
    """Strings as pandas stores them: UTF-8, fixed width = the longest (at least 1)."""
    items = np.asarray(values, dtype=object).tolist()
    try:
        # ASCII (labels, names): numpy encodes in C, as wide as the longest.
        encoded = np.array(items, dtype="S")
    except UnicodeEncodeError:
        encoded = np.array([v.encode("utf-8") for v in items], dtype="S")
    if encoded.dtype.itemsize == 0:
        encoded = encoded.astype("S1")
    return encoded


#: The last string indexes encoded, with their index objects (held, so that an id is not
#: reused): a sweep's labels index serves Results/result_map and Results/results.
_ENCODED: list[tuple[pd.Index, np.ndarray]] = []


def _converted(index: pd.Index) -> tuple[np.ndarray, str]:
    """An index's values as pandas stores them, and pandas' ``kind`` for them."""
    for seen, encoded in _ENCODED:
        if seen is index:
            return encoded, "string"
    dtype = index.dtype
    if dtype == np.int64:
        return np.asarray(index, dtype=np.int64), "integer"
    if dtype == np.float64:
        return np.asarray(index, dtype=np.float64), "float"
    if (dtype == np.dtype(object) or isinstance(dtype, pd.StringDtype)) and pd.api.types.infer_dtype(
        index, skipna=False
    ) == "string":
        encoded = _strings(index)
        if len(index) > 1000:
            _ENCODED[:] = [(index, encoded)] + _ENCODED[:1]
        return encoded, "string"
    raise Unsupported(f"index of dtype {dtype}")


def _index(group: str, key: str, index: pd.Index, group_attrs: list) -> list:
    if len(index) == 0:
        raise Unsupported("empty axis")
    if isinstance(index, pd.MultiIndex):
        group_attrs += [(f"{key}_variety", "multi"), (f"{key}_nlevels", index.nlevels)]
        nodes = []
        for i, (level, codes, name) in enumerate(zip(index.levels, index.codes, index.names)):
            values, kind = _converted(level)
            attrs = [("kind", kind), ("name", _name_attr(name)), (f"{key}_name{name}", _name_attr(name))]
            if kind == "string":
                attrs.append(("nan_rep", ""))
            nodes.append(_array(f"{group}/{key}_level{i}", values, attrs))
            nodes.append(_array(f"{group}/{key}_label{i}", np.asarray(codes), []))
        return nodes
    if type(index) not in (pd.Index, pd.RangeIndex):
        raise Unsupported(f"{type(index).__name__}")
    group_attrs.append((f"{key}_variety", "regular"))
    values, kind = _converted(index)
    attrs = [("kind", kind), ("name", _name_attr(index.name))]
    if kind == "string":
        attrs.append(("nan_rep", ""))
    return [_array(f"{group}/{key}", values, attrs)]


def _values(path: str, values: np.ndarray) -> tuple:
    """``values`` as pandas stores a block: transposed, object arrays pickled."""
    if values.dtype == object:
        return (path, "object", pickle.dumps(values, pickle.HIGHEST_PROTOCOL), [("transposed", True)])
    return _array(path, values, [])


def nodes_for(key: str, obj: Any) -> list:
    """The HDF5 nodes ``HDFStore.put(key, obj)`` writes; raises :class:`Unsupported`."""
    group = "/" + key.strip("/")
    attrs: list = [("encoding", "UTF-8"), ("errors", "strict")]
    if type(obj) is pd.Series:
        if obj.dtype not in _VALUE_DTYPES and obj.dtype != object:
            raise Unsupported(f"values of dtype {obj.dtype}")
        nodes = _index(group, "index", obj.index, attrs)
        nodes.append(_values(f"{group}/values", obj.to_numpy()))
        attrs += [("name", _name_attr(obj.name)), ("pandas_type", "series")]
    elif type(obj) is pd.DataFrame:
        dtypes = set(obj.dtypes)
        if len(dtypes) != 1 or not (dtypes <= set(_VALUE_DTYPES) or dtypes == {np.dtype(object)}):
            raise Unsupported("columns of several or unsupported dtypes")
        if not obj.columns.is_unique:
            raise Unsupported("duplicate columns")  # pandas raises its own error
        return _frame_nodes(group, obj.columns, obj.index, _values(f"{group}/block0_values", obj.to_numpy()))
    else:
        raise Unsupported(type(obj).__name__)
    return [(group, "group", None, attrs)] + nodes


def _frame_nodes(group: str, columns: pd.Index, index: pd.Index, block: tuple) -> list:
    """The nodes of a frame of one block (all columns share their dtype, its items the
    columns in order) whose values node is ``block``."""
    attrs: list = [("encoding", "UTF-8"), ("errors", "strict"), ("ndim", 2)]
    nodes = _index(group, "axis0", columns, attrs)
    nodes += _index(group, "axis1", index, attrs)
    attrs.append(("nblocks", 1))
    nodes.append(block)
    nodes += _index(group, "block0_items", columns, attrs)
    attrs.append(("pandas_type", "frame"))
    return [(group, "group", None, attrs)] + nodes


def traces_frame_nodes(key: str, columns: pd.Index, index: pd.Index) -> list:
    """The nodes ``HDFStore.put(key, frame)`` writes for the traces frame (columns
    ``columns``, index ``index``, float64) of the results file they are written into, with its
    values copied by the engine from the file's ``/traces`` (node kind ``traces_block``), so
    the traces are never read into Python."""
    group = "/" + key.strip("/")
    return _frame_nodes(group, columns, index, (f"{group}/block0_values", "traces_block", None, [("transposed", True)]))


def prepare(items: Iterable[tuple[str, Any]], links: Iterable[tuple[str, str]] = ()) -> tuple[list, list]:
    """The nodes of the supported ``(key, obj)`` items and hard links ``(name, target)``, and
    the items left for pandas. Building holds the GIL, writing them does not: a caller with
    other threads to keep going builds first and writes when convenient."""
    nodes: list = []
    rest = []
    for key, obj in items:
        try:
            nodes += nodes_for(key, obj)
        except Unsupported:
            rest.append((key, obj))
    nodes += [("/" + name.strip("/"), "link", "/" + target.strip("/"), []) for name, target in links]
    return nodes, rest


def write_keys(
    path: str | PathLike[str], items: Iterable[tuple[str, Any]], create: bool, links: Iterable[tuple[str, str]] = ()
) -> list:
    """Writes the supported ``(key, obj)`` items (and hard links ``(name, target)``) into
    ``path`` — a new file when ``create`` — and returns the items left for pandas."""
    nodes, rest = prepare(items, links)
    _rustrates.write_pytables_nodes(fspath(path), create, nodes)
    return rest


def put_prepared(path: str | PathLike[str], nodes: list, rest: list, create: bool) -> None:
    """Writes what :func:`prepare` gave: the nodes by the engine, the rest through pandas."""
    _rustrates.write_pytables_nodes(fspath(path), create, nodes)
    if rest:
        with warnings.catch_warnings():
            # Object columns (strings) are pickled by PyTables; pandas reads them back.
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            with pd.HDFStore(fspath(path), mode="a") as store:
                for key, obj in rest:
                    store.put(key, obj, track_times=False)


def put_keys(
    path: str | PathLike[str], items: Iterable[tuple[str, Any]], create: bool, links: Iterable[tuple[str, str]] = ()
) -> None:
    """Writes every ``(key, obj)`` as ``HDFStore.put`` would: the engine where it can,
    pandas for the rest."""
    put_prepared(path, *prepare(items, links), create)
