//! `run_sweep(template, args)`: a sweep's [`SweepArgs`], the engine run without the GIL
//! ([`crate::interrupt`]), and the results as numpy arrays ([`crate::results`]).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rustrates::io::FileOptions;
use rustrates::sweep::{self, MemorySink};

use crate::args::SweepArgs;
use crate::errors::engine_error;
use crate::interrupt::run_interruptible;
use crate::results::result_dict;

/// Runs a sweep. See `_rustrates.pyi` for the arguments and the returned dict.
#[pyfunction]
#[pyo3(signature = (template, args, *, out=None, progress=None, overwrite=false, trace_precision="float64", compress=false))]
#[allow(
    clippy::too_many_arguments,
    reason = "the keywords of the Python function, one parameter each"
)]
pub fn run_sweep<'py>(
    py: Python<'py>,
    template: &str,
    args: &SweepArgs,
    out: Option<PathBuf>,
    progress: Option<Bound<'py, PyAny>>,
    overwrite: bool,
    trace_precision: &str,
    compress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let trace_type = crate::args::trace_type(py, trace_precision)?;
    let spec = args.spec.clone();
    let loaded = crate::circuit::load(py, template)?;
    if let Some(path) = out {
        let opts = FileOptions {
            overwrite,
            trace_type,
            compression: compress,
            ..FileOptions::new(&loaded.source_text, template)
        };
        return crate::results::run_to_file(py, &spec, &loaded, &path, opts, progress.as_ref());
    }
    let mut sink = MemorySink::new();
    let circuit = &loaded.circuit;
    let spec_ref = &spec;
    let sink_ref = &mut sink;
    let summary = run_interruptible(py, spec.param_grid.len(), progress.as_ref(), move |ctrl| {
        sweep::run_with(spec_ref, circuit, sink_ref, ctrl).map_err(Box::new)
    })?
    .map_err(|e| engine_error(py, &e))?;
    let result = sink
        .into_result()
        .ok_or_else(|| crate::errors::RustratesError::new_err("the engine finished without results"))?;
    let d = result_dict(py, result, Some(summary.backend))?;
    d.set_item("notes", summary.notes)?;
    Ok(d)
}
