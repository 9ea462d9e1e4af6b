//! Results: the engine's [`SweepResult`] as the dict Python's `_core` reads, a sweep streamed
//! to HDF5 through the engine's part files (resumable), and a results file read back.

use std::path::Path;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use rustrates::io::h5::ReadSelection;
use rustrates::io::{self, FileOptions, IoError};
use rustrates::kernel::Backend;
use rustrates::model::Loaded;
use rustrates::sweep::{SweepResult, SweepSpec};

use crate::interrupt::run_interruptible;

fn io_err(py: Python<'_>, e: &IoError) -> PyErr {
    crate::errors::io_error(py, e, "out")
}

/// The result dict Python's `_core` turns into DataFrames.
pub fn result_dict<'py>(py: Python<'py>, r: SweepResult, backend: Option<Backend>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let n_points = r.labels.len();
    let n_keys = r.grid_keys.len();
    let n_time = r.time.len();
    let n_cols = r.columns.len();
    let mut grid = vec![0.0; n_points * n_keys];
    for (k, col) in r.grid_values.iter().enumerate() {
        for (p, v) in col.iter().enumerate() {
            grid[p * n_keys + k] = *v;
        }
    }
    d.set_item("circuit_name", &r.circuit_name)?;
    d.set_item("labels", &r.labels)?;
    d.set_item("grid_keys", &r.grid_keys)?;
    d.set_item("grid", PyArray1::from_vec(py, grid).reshape([n_points, n_keys])?)?;
    d.set_item("time", PyArray1::from_vec(py, r.time))?;
    d.set_item("n_time", n_time)?;
    let columns = PyList::empty(py);
    for (node, key) in &r.columns {
        columns.append((node, key))?;
    }
    d.set_item("columns", columns)?;
    match r.traces {
        Some(t) => d.set_item("traces", PyArray1::from_vec(py, t).reshape([n_points, n_time, n_cols])?)?,
        None => d.set_item("traces", py.None())?,
    }
    match r.summaries {
        Some(s) => {
            let n_stats = s.stats.len();
            let mut out = vec![f64::NAN; n_points * n_cols * n_stats];
            for (i, vals) in s.values.iter().enumerate() {
                for (pc, v) in vals.iter().enumerate() {
                    out[pc * n_stats + i] = *v;
                }
            }
            d.set_item(
                "summaries",
                PyArray1::from_vec(py, out).reshape([n_points, n_cols, n_stats])?,
            )?;
            d.set_item("summary_names", s.stats.iter().map(|s| s.name()).collect::<Vec<_>>())?;
        }
        None => {
            d.set_item("summaries", py.None())?;
            d.set_item("summary_names", Vec::<String>::new())?;
        }
    }
    let (codes, times): (Vec<&str>, Vec<f64>) = r.status.iter().map(|s| (s.name(), s.time())).unzip();
    d.set_item("status", codes)?;
    d.set_item("status_time", PyArray1::from_vec(py, times))?;
    d.set_item("backend", backend.map(|b| format!("{b:?}").to_lowercase()))?;
    Ok(d)
}

/// Runs the sweep into `out` (part files next to it, merged and renamed when complete; an
/// interrupted run resumes) with the file options `opts`, and returns the file's contents as
/// `run_sweep` does, without the traces (`traces_in_file` says whether the file has them).
pub fn run_to_file<'py>(
    py: Python<'py>,
    spec: &SweepSpec,
    loaded: &Loaded,
    out: &Path,
    opts: FileOptions,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let circuit = &loaded.circuit;
    let opts_ref = &opts;
    let summary = run_interruptible(py, spec.param_grid.len(), progress, move |ctrl| {
        io::sweep_to_file(spec, circuit, out, opts_ref, ctrl).map_err(Box::new)
    })?
    .map_err(|e| io_err(py, &e))?;
    // The traces stay in the file: Python's pandas key copies them there from `/traces`
    // (`write_pytables_nodes`, kind "traces_block") and `read_results` reads what is asked.
    let without_traces = ReadSelection {
        traces: false,
        ..ReadSelection::default()
    };
    let d = read_selected(py, out, without_traces)?;
    d.set_item("backend", format!("{:?}", summary.backend).to_lowercase())?;
    d.set_item("out", out)?;
    d.set_item("traces_in_file", spec.keep_traces)?;
    d.set_item("notes", summary.notes)?;
    Ok(d)
}

fn read_selected<'py>(py: Python<'py>, path: &Path, selection: ReadSelection) -> PyResult<Bound<'py, PyDict>> {
    let owned = path.to_path_buf();
    let result = py
        .detach(move || io::h5::read_results_selected(&owned, &selection).map_err(Box::new))
        .map_err(|e| match *e {
            IoError::UnknownOutput { .. } => crate::errors::io_error(py, &e, "outputs"),
            _ => io_err(py, &e),
        })?;
    result_dict(py, result, None)
}

/// Loads a complete results file, or what is asked of it: the points `start..end`, the
/// output columns `outputs` selects (output keys, `node/key`; see the engine's
/// `ReadSelection`), without traces or summaries. The same dict as `run_sweep` returns.
#[pyfunction]
#[pyo3(signature = (path, points=None, outputs=None, traces=true, summaries=true))]
pub fn read_results<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    points: Option<(usize, usize)>,
    outputs: Option<Vec<String>>,
    traces: bool,
    summaries: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let selection = ReadSelection {
        points: points.map(|(start, end)| start..end),
        outputs,
        traces,
        summaries,
    };
    read_selected(py, &path, selection)
}

/// One node as Python passes it: `(path, kind, data, [(attribute, value)])`.
type PyNode<'py> = (String, String, Bound<'py, PyAny>, Vec<(String, Bound<'py, PyAny>)>);

/// Writes HDF5 nodes laid out as PyTables writes them (`rustrates._pandas_keys` builds
/// them from pandas objects). `nodes`: `(path, kind, data, attrs)` with kind `"group"`
/// (data None), `"array"` (data `(element, shape, bytes)`, element `"f8"`, `"i8"`, `"i1"`
/// or `"S<n>"`), `"object"` (data: pickle bytes) or `"link"` (data: target path); attrs
/// `[(name, value)]` with value str, bytes (stored as ASCII), bool or int. Kind
/// `"traces_block"` (data None): the file's `/traces` as the float64 block of the traces
/// frame, `[time, points × columns]`, copied band by band (engine: `NodeKind::TracesBlock`).
#[pyfunction]
#[pyo3(signature = (path, create, nodes))]
pub fn write_pytables_nodes(
    py: Python<'_>,
    path: std::path::PathBuf,
    create: bool,
    nodes: Vec<PyNode<'_>>,
) -> PyResult<()> {
    use pyo3::exceptions::PyValueError;
    use pyo3::types::{PyBool, PyBytes, PyInt, PyString};
    use rustrates::io::pytables::{Attr, Element, Node, NodeKind};

    let mut converted = Vec::with_capacity(nodes.len());
    for (node_path, kind, data, attrs) in nodes {
        let bad = |what: &str| PyValueError::new_err(format!("node {node_path}: {what}"));
        let kind = match kind.as_str() {
            "group" => NodeKind::Group,
            "object" => NodeKind::Object(
                data.cast::<PyBytes>()
                    .map_err(|_| bad("object data must be bytes"))?
                    .as_bytes()
                    .to_vec(),
            ),
            "traces_block" => NodeKind::TracesBlock,
            "link" => NodeKind::HardLink(data.extract::<String>().map_err(|_| bad("link data must be a path"))?),
            "array" => {
                let (element, shape, bytes): (String, Vec<usize>, Vec<u8>) = data
                    .extract()
                    .map_err(|_| bad("array data must be (element, shape, bytes)"))?;
                let element = match element.as_str() {
                    "f8" => Element::F64,
                    "i8" => Element::I64,
                    "i1" => Element::I8,
                    s => match s.strip_prefix('S').and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) if n > 0 => Element::Bytes(n),
                        _ => return Err(bad(&format!("unknown element type {s:?}"))),
                    },
                };
                NodeKind::Array {
                    element,
                    shape,
                    data: bytes,
                }
            }
            other => return Err(bad(&format!("unknown node kind {other:?}"))),
        };
        let mut node_attrs = Vec::with_capacity(attrs.len());
        for (name, value) in attrs {
            let attr = if value.is_instance_of::<PyBool>() {
                Attr::Bool(value.extract()?)
            } else if value.is_instance_of::<PyInt>() {
                Attr::Int(value.extract()?)
            } else if value.is_instance_of::<PyString>() {
                Attr::Text(value.extract()?)
            } else if let Ok(b) = value.cast::<PyBytes>() {
                Attr::Ascii(b.as_bytes().to_vec())
            } else {
                return Err(bad(&format!("attribute {name}: unsupported value {value}")));
            };
            node_attrs.push((name, attr));
        }
        converted.push(Node {
            path: node_path,
            kind,
            attrs: node_attrs,
        });
    }
    py.detach(move || rustrates::io::pytables::write_nodes(&path, create, &converted).map_err(Box::new))
        .map_err(|e| io_err(py, &e))
}
