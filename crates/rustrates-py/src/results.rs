//! Result files: a sweep streamed to HDF5 through the engine's part files (resumable), and
//! a results file read back.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rustrates::io::{self, FileOptions, IoError};
use rustrates::model::Loaded;
use rustrates::sweep::SweepSpec;

use crate::errors::{to_pyerr, Kind, Located};
use crate::sweep::{engine_error, result_dict, run_interruptible};

fn io_err(py: Python<'_>, e: &IoError) -> PyErr {
    match e {
        IoError::Sweep(s) => engine_error(py, s),
        IoError::Fs { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            pyo3::exceptions::PyFileNotFoundError::new_err(e.to_string())
        }
        _ => to_pyerr(py, Kind::Sweep, &[Located::plain("io", e.to_string(), "out")]),
    }
}

/// Runs the sweep into `out` (part files next to it, merged and renamed when complete; an
/// interrupted run resumes) and returns the file's contents as `run_sweep` does.
pub fn run_to_file<'py>(
    py: Python<'py>,
    spec: &SweepSpec,
    loaded: &Loaded,
    template: &str,
    out: &Path,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = FileOptions::new(&loaded.source_text, template);
    let circuit = &loaded.circuit;
    let opts_ref = &opts;
    let summary = run_interruptible(py, spec.param_grid.len(), progress, move |ctrl| {
        io::sweep_to_file(spec, circuit, out, opts_ref, ctrl).map_err(Box::new)
    })?
    .map_err(|e| io_err(py, &e))?;
    let d = read(py, out)?;
    d.set_item("backend", format!("{:?}", summary.backend).to_lowercase())?;
    d.set_item("out", out)?;
    Ok(d)
}

fn read<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, PyDict>> {
    let owned = path.to_path_buf();
    let result = py
        .detach(move || io::read_results(&owned).map_err(Box::new))
        .map_err(|e| io_err(py, &e))?;
    result_dict(py, result, None)
}

/// Loads a complete results file: the same dict as `run_sweep` returns.
#[pyfunction]
pub fn read_results<'py>(py: Python<'py>, path: std::path::PathBuf) -> PyResult<Bound<'py, PyDict>> {
    read(py, &path)
}
