//! `run_sweep(...)`: Python arguments → a [`SweepSpec`], the engine run without the GIL, and
//! the results as numpy arrays.
//!
//! The engine runs on a scoped thread while this thread waits with the GIL released; every
//! 100 ms it takes the GIL back to check for signals (Ctrl-C sets the engine's cancel flag,
//! which stops it after the blocks in flight) and to call the progress callback. Worker
//! threads never touch Python.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use rustrates::kernel::{Backend, Precision};
use rustrates::solve::{Method, PointStatus, Signal, SimConfig, SolveError};
use rustrates::sweep::{
    self, EdgeRef, Grid, MapEntry, MapTargets, MemorySink, ParamMap, Progress, RunControl, Statistic, SweepResult,
    SweepSpec,
};

use crate::errors::{to_pyerr, Kind, Located};

/// An argument error naming the argument.
pub fn arg_err(py: Python<'_>, kind: Kind, argument: &str, message: String) -> PyErr {
    to_pyerr(py, kind, &[Located::plain("argument/invalid", message, argument)])
}

/// Engine sweep errors → the exception class and the argument they concern.
pub fn engine_error(py: Python<'_>, e: &sweep::SweepError) -> PyErr {
    use sweep::SweepError as E;
    let (kind, code, path) = match e {
        E::Grid(_) => (Kind::Sweep, "sweep/grid", "param_grid"),
        E::ParamMap(_) => (Kind::Sweep, "sweep/param-map", "param_map"),
        E::UnknownInput { .. } | E::NotAnInput { .. } | E::InputSweptAndDriven { .. } => {
            (Kind::Sweep, "sweep/input", "inputs")
        }
        E::UnknownOutput { .. } | E::NoOutputs => (Kind::Sweep, "sweep/output", "outputs"),
        E::Kernel(_) => (Kind::Solver, "kernel", "backend"),
        E::Solve(s) => match s {
            SolveError::InputLength { .. } | SolveError::InputColumns { .. } => (Kind::Solver, "solve/input", "inputs"),
            SolveError::SamplingNotMultiple { .. } => (Kind::Solver, "solve/sampling", "sampling_step_size"),
            SolveError::BadStep { .. } => (Kind::Solver, "solve/step", "step_size"),
            SolveError::BadTime { .. } => (Kind::Solver, "solve/time", "simulation_time"),
            #[allow(unreachable_patterns)]
            _ => (Kind::Solver, "solve", ""),
        },
        E::ThreadPool { .. } => (Kind::Solver, "sweep/threads", "n_threads"),
        E::Output { .. } => (Kind::Sweep, "io", "out"),
        _ => (Kind::Sweep, "sweep", ""),
    };
    to_pyerr(py, kind, &[Located::plain(code, e.to_string(), path)])
}

pub(crate) fn parse_param_map(py: Python<'_>, map: &Bound<'_, PyDict>) -> PyResult<ParamMap> {
    let mut pm = ParamMap::new();
    for (key, entry) in map.iter() {
        let key: String = key.extract()?;
        let entry = entry.cast::<PyDict>().map_err(|_| {
            arg_err(
                py,
                Kind::Sweep,
                "param_map",
                format!("param_map['{key}'] must be a dict with 'vars' and 'nodes' or 'edges'"),
            )
        })?;
        let vars: Vec<String> = match entry.get_item("vars")? {
            Some(v) => v.extract()?,
            None => {
                return Err(arg_err(
                    py,
                    Kind::Sweep,
                    "param_map",
                    format!("param_map['{key}'] has no 'vars'"),
                ))
            }
        };
        let targets = if let Some(nodes) = entry.get_item("nodes")? {
            MapTargets::Nodes(nodes.extract()?)
        } else if let Some(edges) = entry.get_item("edges")? {
            let mut list = Vec::new();
            for e in edges.try_iter()? {
                let e = e?;
                let t = e.cast::<PyTuple>().map_err(|_| {
                    arg_err(
                        py,
                        Kind::Sweep,
                        "param_map",
                        format!("param_map['{key}']['edges'] entries are (source, target[, idx])"),
                    )
                })?;
                let source: String = t.get_item(0)?.extract()?;
                let target: String = t.get_item(1)?.extract()?;
                let idx: Option<usize> = if t.len() > 2 {
                    Some(t.get_item(2)?.extract()?)
                } else {
                    None
                };
                list.push(EdgeRef { source, target, idx });
            }
            MapTargets::Edges(list)
        } else {
            MapTargets::Paths
        };
        pm.entries.insert(key, MapEntry { vars, targets });
    }
    Ok(pm)
}

pub(crate) fn parse_inputs(py: Python<'_>, inputs: &Bound<'_, PyDict>) -> PyResult<Vec<(String, Signal)>> {
    let mut out = Vec::new();
    for (name, value) in inputs.iter() {
        let name: String = name.extract()?;
        let signal = if let Ok(v) = value.extract::<f64>() {
            Signal::Constant(v)
        } else if let Ok(a) = value.extract::<PyReadonlyArray1<'_, f64>>() {
            let data = a
                .as_slice()
                .map_err(|e| arg_err(py, Kind::Sweep, "inputs", format!("inputs['{name}']: {e}")))?;
            Signal::Shared(Arc::from(data))
        } else if let Ok(a) = value.extract::<PyReadonlyArray2<'_, f64>>() {
            let points = a.shape()[1];
            let data = a
                .as_slice()
                .map_err(|e| arg_err(py, Kind::Sweep, "inputs", format!("inputs['{name}']: {e}")))?;
            Signal::PerPoint {
                points,
                data: Arc::from(data),
            }
        } else {
            return Err(arg_err(
                py,
                Kind::Sweep,
                "inputs",
                format!("inputs['{name}'] must be a number or a C-contiguous float64 array of 1 or 2 dimensions"),
            ));
        };
        out.push((name, signal));
    }
    Ok(out)
}

/// Settings of one run, as `run_sweep` receives them.
pub struct Settings {
    pub simulation_time: f64,
    pub step_size: f64,
    pub sampling_step_size: Option<f64>,
    pub solver: String,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub cutoff: f64,
    pub backend: String,
    pub precision: String,
    pub summaries: Vec<String>,
    pub keep_traces: bool,
    pub threads: Option<usize>,
    /// Regime thresholds by name (`regime=` of `grid_search`); `None`: the defaults.
    pub regime: Option<Vec<(String, f64)>>,
    /// Starts per point (`initial_conditions=`), each `[(state name, value)]`.
    pub initial_conditions: Vec<Vec<(String, f64)>>,
}

pub(crate) fn make_spec(py: Python<'_>, grid: Grid, param_map: ParamMap, s: &Settings) -> PyResult<SweepSpec> {
    let mut method = Method::parse(&s.solver).ok_or_else(|| {
        arg_err(
            py,
            Kind::Solver,
            "solver",
            format!(
                "unknown solver '{}'; use euler, heun, rk4 or rk45 (alias scipy)",
                s.solver
            ),
        )
    })?;
    if let Method::Rk45 { rtol, atol } = &mut method {
        *rtol = s.rtol.unwrap_or(*rtol);
        *atol = s.atol.unwrap_or(*atol);
    }
    let sim = SimConfig {
        simulation_time: s.simulation_time,
        dt: s.step_size,
        sampling_step: s.sampling_step_size,
        method,
        cutoff: s.cutoff,
    };
    let mut spec = SweepSpec::new(grid, param_map, sim);
    spec.backend = Backend::parse(&s.backend).ok_or_else(|| {
        arg_err(
            py,
            Kind::Solver,
            "backend",
            format!(
                "unknown backend '{}'; use auto, jit, c or reference (PyRates' names such as 'numpy' mean auto)",
                s.backend
            ),
        )
    })?;
    spec.precision = match s.precision.as_str() {
        "float64" => Precision::F64,
        "float32" => Precision::F32,
        other => {
            return Err(arg_err(
                py,
                Kind::Solver,
                "float_precision",
                format!("float_precision must be float64 or float32, got '{other}'"),
            ))
        }
    };
    let requested: Vec<Statistic> = s
        .summaries
        .iter()
        .map(|name| {
            Statistic::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Statistic::ALL
                    .iter()
                    .chain(&Statistic::REGIME)
                    .chain([&Statistic::Multistable])
                    .map(|s| s.name())
                    .collect();
                arg_err(
                    py,
                    Kind::Sweep,
                    "summaries",
                    format!("unknown summary '{name}'; known: {}", known.join(", ")),
                )
            })
        })
        .collect::<PyResult<_>>()?;
    spec.summaries = Statistic::expand(&requested);
    if let Some(thresholds) = &s.regime {
        // The engine's own (de)serialisation of its settings: unknown names and wrong types
        // are refused there, with the field named.
        let obj: serde_json::Map<String, serde_json::Value> = thresholds
            .iter()
            .map(|(k, v)| {
                let v = if v.fract() == 0.0 && *v >= 0.0 && *v < 9.0e15 {
                    serde_json::Value::from(*v as u64)
                } else {
                    serde_json::Value::from(*v)
                };
                (k.clone(), v)
            })
            .collect();
        spec.regime = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| arg_err(py, Kind::Sweep, "regime", format!("regime: {e}")))?;
    }
    spec.initial_conditions = s.initial_conditions.clone();
    spec.keep_traces = s.keep_traces;
    spec.chunk_size = SweepSpec::default_chunk_size(s.keep_traces);
    spec.threads = s.threads;
    Ok(spec)
}

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

fn status_code(s: &PointStatus) -> (&'static str, f64) {
    match s {
        PointStatus::Ok => ("ok", f64::NAN),
        PointStatus::NonFinite { t } => ("nonfinite", *t),
        PointStatus::StepTooSmall { t } => ("step_too_small", *t),
        PointStatus::Failed => ("failed", f64::NAN),
    }
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
    let (codes, times): (Vec<&str>, Vec<f64>) = r.status.iter().map(status_code).unzip();
    d.set_item("status", codes)?;
    d.set_item("status_time", PyArray1::from_vec(py, times))?;
    d.set_item("backend", backend.map(|b| format!("{b:?}").to_lowercase()))?;
    Ok(d)
}

/// The arguments `run_sweep` and `ClusterSweep` share, turned into a sweep spec.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_spec<'py>(
    py: Python<'py>,
    grid_keys: Vec<String>,
    grid_values: Option<Vec<PyReadonlyArray1<'py, f64>>>,
    grid_rows: Option<PyReadonlyArray2<'py, f64>>,
    permute: bool,
    param_map: &Bound<'py, PyDict>,
    inputs: &Bound<'py, PyDict>,
    outputs: &Bound<'py, PyDict>,
    settings: &Settings,
) -> PyResult<SweepSpec> {
    let grid = match (grid_values, grid_rows) {
        (Some(values), None) => {
            if values.len() != grid_keys.len() {
                return Err(arg_err(
                    py,
                    Kind::Sweep,
                    "param_grid",
                    "grid_values needs one array per key".into(),
                ));
            }
            let mut map = IndexMap::new();
            for (k, v) in grid_keys.iter().zip(&values) {
                map.insert(k.clone(), v.as_array().to_vec());
            }
            Grid::from_values(&map, permute)
        }
        (None, Some(rows)) => {
            let rows: Vec<Vec<f64>> = rows.as_array().outer_iter().map(|r| r.to_vec()).collect();
            Grid::from_rows(grid_keys, &rows)
        }
        _ => {
            return Err(arg_err(
                py,
                Kind::Sweep,
                "param_grid",
                "give exactly one of grid_values and grid_rows".into(),
            ))
        }
    }
    .map_err(|e| engine_error(py, &sweep::SweepError::Grid(e)))?;
    let param_map = parse_param_map(py, param_map)?;
    let mut spec = make_spec(py, grid, param_map, settings)?;
    spec.inputs = parse_inputs(py, inputs)?;
    spec.outputs = outputs
        .iter()
        .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
        .collect::<PyResult<_>>()?;
    Ok(spec)
}

/// Runs a sweep. See `_rustrates.pyi` for the arguments and the returned dict.
#[pyfunction]
#[pyo3(signature = (
    template, *, grid_keys, grid_values=None, grid_rows=None, permute=false, param_map,
    simulation_time, step_size, sampling_step_size=None, inputs, outputs, solver="euler".to_string(),
    backend="auto".to_string(), precision="float64".to_string(), cutoff=0.0, summaries=Vec::new(),
    keep_traces=true, threads=None, out=None, progress=None, rtol=None, atol=None, overwrite=false,
    regime=None, initial_conditions=Vec::new()
))]
#[allow(clippy::too_many_arguments)]
pub fn run_sweep<'py>(
    py: Python<'py>,
    template: &str,
    grid_keys: Vec<String>,
    grid_values: Option<Vec<PyReadonlyArray1<'py, f64>>>,
    grid_rows: Option<PyReadonlyArray2<'py, f64>>,
    permute: bool,
    param_map: &Bound<'py, PyDict>,
    simulation_time: f64,
    step_size: f64,
    sampling_step_size: Option<f64>,
    inputs: &Bound<'py, PyDict>,
    outputs: &Bound<'py, PyDict>,
    solver: String,
    backend: String,
    precision: String,
    cutoff: f64,
    summaries: Vec<String>,
    keep_traces: bool,
    threads: Option<usize>,
    out: Option<PathBuf>,
    progress: Option<Bound<'py, PyAny>>,
    rtol: Option<f64>,
    atol: Option<f64>,
    overwrite: bool,
    regime: Option<Vec<(String, f64)>>,
    initial_conditions: Vec<Vec<(String, f64)>>,
) -> PyResult<Bound<'py, PyDict>> {
    let settings = Settings {
        simulation_time,
        step_size,
        sampling_step_size,
        solver,
        rtol,
        atol,
        cutoff,
        backend,
        precision,
        summaries,
        keep_traces,
        threads,
        regime,
        initial_conditions,
    };
    let spec = build_spec(
        py,
        grid_keys,
        grid_values,
        grid_rows,
        permute,
        param_map,
        inputs,
        outputs,
        &settings,
    )?;

    let loaded = crate::circuit::load(py, template)?;
    if let Some(path) = out {
        return crate::results::run_to_file(py, &spec, &loaded, template, &path, overwrite, progress.as_ref());
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
