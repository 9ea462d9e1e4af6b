"""The engine's writer of pandas' HDF5 keys against pandas itself.

Reference: ``pd.HDFStore.put`` of the same object into another file. Both files are walked
with h5py (what HDF5 stores: node kinds, datatypes with their string encoding and padding,
shapes, chunking, every attribute with its type and dataspace) and with PyTables (what pandas
reads: node classes and attribute values), and must agree exactly; ``pd.read_hdf`` must give
the object back. Object arrays are compared unpickled (pickle bytes of equal arrays may differ
in memory order), and their chunk shape is the one intended difference: one row per chunk
instead of PyTables' 65,536 (1 MiB of file for a one-row array)."""

import pickle
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import tables

from rustrates import _pandas_keys


def _labels(n):
    return pd.Index([f"pc_iin_{i}" for i in range(n)])


CASES = {
    "result_map": pd.DataFrame(np.linspace(-5, 5, 14).reshape(7, 2), index=_labels(7), columns=["eta_pc", "eta_iin"]),
    "summaries": pd.DataFrame(
        np.arange(21.0).reshape(7, 3) / 7,
        index=_labels(7),
        columns=pd.MultiIndex.from_tuples([("r", "mean"), ("r", "std"), ("r", "max")], names=["output", "statistic"]),
    ),
    "traces": pd.DataFrame(
        np.random.default_rng(1).normal(size=(5, 4)),
        index=pd.Index(np.arange(5) * 1e-3, name="time"),
        columns=pd.MultiIndex.from_product([["r", "v"], ["pc_iin_0", "pc_iin_1"]]),
    ),
    "config_series": pd.Series(
        {"circuit_template": "x/y", "dt": 1e-4, "permute_grid": True, "chunk_size": 5, "rtol": np.nan}, dtype=object
    ),
    "object_frame": pd.DataFrame(
        np.array([("eta", "qif_op/eta", "PC"), ("j", "qif_op/J", "PC, IIN")], dtype=object),
        columns=["key", "vars", "targets"],
        dtype=object,
    ),
    "input_scalar": pd.Series([1.0]),
    "input_matrix": pd.DataFrame(np.arange(12.0).reshape(4, 3)),
    "int_series": pd.Series(np.arange(4, dtype=np.int64), index=pd.Index(["a", "b", "c", "ü"]), name="counts"),
}


def _h5py_view(path):
    """Everything HDF5 stores, per node."""
    out = {}

    def attr_view(obj):
        view = {}
        for name in obj.attrs:
            aid = obj.attrs.get_id(name)
            t = aid.get_type()
            kind = (t.get_class(), t.get_size(), str(aid.dtype))
            if t.get_class() == h5py.h5t.STRING:
                kind += (t.get_cset(), t.get_strpad())
            raw = obj.attrs[name]
            view[name] = (kind, aid.shape, repr(raw))
        return view

    def visit(name, obj):
        if isinstance(obj, h5py.Group):
            out[name] = ("group", attr_view(obj))
            return
        t = obj.id.get_type()
        kind = (t.get_class(), t.get_size(), str(obj.dtype))
        if t.get_class() == h5py.h5t.STRING:
            kind += (t.get_cset(), t.get_strpad())
        data = [pickle.loads(bytes(row)) for row in obj[()]] if t.get_class() == h5py.h5t.VLEN else obj[()]
        out[name] = ("dataset", kind, obj.shape, obj.maxshape, obj.chunks, attr_view(obj), data)

    with h5py.File(path, "r") as f:
        out["/"] = ("root", attr_view(f))
        f.visititems(visit)
    return out


def _tables_view(path):
    """What pandas reads: PyTables' node classes and attribute values."""
    with tables.open_file(path, "r") as f:
        return {
            node._v_pathname: (type(node).__name__, {k: repr(node._v_attrs[k]) for k in node._v_attrs._v_attrnames})
            for node in f.walk_nodes("/")
        }


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        if x[0] == "dataset":
            object_array = x[1][0] == h5py.h5t.VLEN
            assert (x[4], y[4]) == ((65536,), (1,)) if object_array else x[4] == y[4], name
            assert x[:4] + x[5:6] == y[:4] + y[5:6], name
            if isinstance(x[6], list):
                for u, v in zip(x[6], y[6], strict=True):
                    # Object arrays: NaN != NaN, so the elements' reprs are compared.
                    assert u.shape == v.shape and list(map(repr, u.ravel())) == list(map(repr, v.ravel())), name
            else:
                np.testing.assert_array_equal(x[6], y[6])
        else:
            assert x == y, name


def _pandas_file(path, key, obj):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        with pd.HDFStore(path, mode="w") as store:
            store.put(key, obj, track_times=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_written_nodes_equal_pandas_own(tmp_path, case):
    obj = CASES[case]
    key = f"Results/{case}"
    ref, ours = tmp_path / "pandas.h5", tmp_path / "ours.h5"
    _pandas_file(ref, key, obj)
    assert _pandas_keys.write_keys(ours, [(key, obj)], create=True) == []
    _assert_same(_h5py_view(ref), _h5py_view(ours))
    assert _tables_view(ref) == _tables_view(ours)
    back = pd.read_hdf(ours, key)
    if isinstance(obj, pd.Series):
        pd.testing.assert_series_equal(back, pd.read_hdf(ref, key), check_exact=True)
        pd.testing.assert_series_equal(back, obj, check_exact=True, check_index_type=False)
    else:
        pd.testing.assert_frame_equal(back, pd.read_hdf(ref, key), check_exact=True)
        # pandas reads object columns of strings back as its string dtype, from its own file too.
        pd.testing.assert_frame_equal(
            back, obj, check_exact=True, check_dtype=False, check_index_type=False, check_column_type=False
        )


def test_several_keys_a_link_and_pandas_for_the_rest(tmp_path):
    """One call writes the supported keys and the hard link; what it cannot write (mixed
    dtypes, a datetime index) goes through pandas into the same file."""
    mixed = pd.DataFrame({"name": ["a", "b"], "value": [1.5, 2.5]})
    dated = pd.Series([1.0, 2.0], index=pd.date_range("2026-01-01", periods=2))
    path = tmp_path / "f.h5"
    rest = _pandas_keys.write_keys(
        path,
        [("Results/result_map", CASES["result_map"]), ("AdditionalData/mixed", mixed), ("AdditionalData/dated", dated)],
        create=True,
        links=[("ParameterGrid/Grid_df", "Results/result_map")],
    )
    assert [k for k, _ in rest] == ["AdditionalData/mixed", "AdditionalData/dated"]
    _pandas_keys.put_keys(path, rest, create=False)
    with pd.HDFStore(path, mode="r") as store:
        assert sorted(store.keys()) == [
            "/AdditionalData/dated",
            "/AdditionalData/mixed",
            "/ParameterGrid/Grid_df",
            "/Results/result_map",
        ]
    pd.testing.assert_frame_equal(
        pd.read_hdf(path, "ParameterGrid/Grid_df"), CASES["result_map"], check_index_type=False
    )
    pd.testing.assert_frame_equal(pd.read_hdf(path, "AdditionalData/mixed"), mixed)
    pd.testing.assert_series_equal(pd.read_hdf(path, "AdditionalData/dated"), dated, check_freq=False)
