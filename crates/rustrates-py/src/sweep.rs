//! `run_sweep(template, args)`: a sweep's [`SweepArgs`], the engine run without the GIL, and
//! the results as numpy arrays.
//!
//! The engine runs on a scoped thread while this thread waits with the GIL released; every
//! 100 ms it takes the GIL back to check for signals (Ctrl-C sets the engine's cancel flag,
//! which stops it after the blocks in flight) and to call the progress callback. Worker
//! threads never touch Python.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use rustrates::io::FileOptions;
use rustrates::kernel::Backend;
use rustrates::sweep::{self, MemorySink, Progress, RunControl, SweepResult};

use crate::args::SweepArgs;
use crate::errors::engine_error;

/// Waits for the engine with the GIL released, waking every 100 ms to let Python handle
/// signals and show progress.
struct Waiter {
    finished: Mutex<bool>,
    wake: Condvar,
    points_done: AtomicUsize,
    cancel: AtomicBool,
}

/// Runs `engine` on a scoped thread, handing it the cancel flag and progress hook. Returns its
/// result, or the Python error that interrupted it (Ctrl-C, an exception in the progress
/// callback), or a `RustratesError` when it panicked.
pub fn run_interruptible<R: Send>(
    py: Python<'_>,
    total: usize,
    progress: Option<&Bound<'_, PyAny>>,
    engine: impl FnOnce(RunControl<'_>) -> R + Send,
) -> Result<R, PyErr> {
    let w = Waiter {
        finished: Mutex::new(false),
        wake: Condvar::new(),
        points_done: AtomicUsize::new(0),
        cancel: AtomicBool::new(false),
    };
    let on_progress = |p: Progress| w.points_done.store(p.points_done, Ordering::Relaxed);
    let ctrl = RunControl {
        cancel: Some(&w.cancel),
        progress: Some(&on_progress),
        ..RunControl::default()
    };
    let mut interrupted: Option<PyErr> = None;
    let mut shown = usize::MAX;
    let outcome = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let r = engine(ctrl);
            *w.finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
            w.wake.notify_all();
            r
        });
        loop {
            let done = py.detach(|| {
                let guard = w.finished.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = w
                    .wake
                    .wait_timeout_while(guard, Duration::from_millis(100), |f| !*f)
                    .unwrap_or_else(|e| e.into_inner());
                *guard
            });
            if interrupted.is_none() {
                let step = py.check_signals().and_then(|()| {
                    let n = w.points_done.load(Ordering::Relaxed);
                    match progress {
                        Some(cb) if n != shown || done => {
                            shown = n;
                            cb.call1((n, total)).map(|_| ())
                        }
                        _ => Ok(()),
                    }
                });
                if let Err(e) = step {
                    w.cancel.store(true, Ordering::Relaxed);
                    interrupted = Some(e);
                }
            }
            if done {
                break;
            }
        }
        handle.join()
    });
    if let Some(e) = interrupted {
        return Err(e);
    }
    outcome.map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        crate::errors::RustratesError::new_err(format!("internal error in the engine: {what}"))
    })
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

/// Runs a sweep. See `_rustrates.pyi` for the arguments and the returned dict.
#[pyfunction]
#[pyo3(signature = (template, args, *, out=None, progress=None, overwrite=false, trace_precision="float64"))]
pub fn run_sweep<'py>(
    py: Python<'py>,
    template: &str,
    args: &SweepArgs,
    out: Option<PathBuf>,
    progress: Option<Bound<'py, PyAny>>,
    overwrite: bool,
    trace_precision: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let trace_type = crate::args::trace_type(py, trace_precision)?;
    let spec = args.spec.clone();
    let loaded = crate::circuit::load(py, template)?;
    if let Some(path) = out {
        let opts = FileOptions {
            overwrite,
            trace_type,
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
