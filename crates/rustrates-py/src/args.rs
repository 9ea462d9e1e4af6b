//! The arguments of a sweep, given once: `SweepArgs(...)` turns the Python arguments into the
//! engine's [`SweepSpec`] (its own checks of names and shapes; the engine's rules stay the
//! engine's) and is what `run_sweep` and `ClusterSweep` both take.

use std::sync::Arc;

use indexmap::IndexMap;
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use rustrates::io::h5::TraceType;
use rustrates::kernel::{Backend, Precision};
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{self, EdgeRef, Grid, MapEntry, MapTargets, ParamMap, Statistic, SweepSpec};

use crate::errors::{arg_err, engine_error, Kind};

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
    /// `random_starts=`: `(n, seed, [(state name, low, high)])`.
    pub random_starts: Option<RandomStartsArg>,
    /// `refine=` as `(levels, criterion, tolerance)`; `None`: the grid as given.
    pub refine: Option<(u32, String, f64)>,
}

/// `(n, seed, [(state name, low, high)])`.
pub type RandomStartsArg = (usize, u64, Vec<(String, f64, f64)>);

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
    spec.random_starts = s
        .random_starts
        .clone()
        .map(|(n, seed, bounds)| rustrates::sweep::regime::RandomStarts { n, seed, bounds });
    if let Some((levels, criterion, tolerance)) = &s.refine {
        let criterion = rustrates::sweep::refine::Criterion::parse(criterion).ok_or_else(|| {
            arg_err(
                py,
                Kind::Sweep,
                "refine",
                format!(
                    "unknown refine criterion '{criterion}'; use 'regime' or the name of a summary the sweep computes"
                ),
            )
        })?;
        spec.refine = Some(rustrates::sweep::refine::Refine {
            levels: *levels,
            criterion,
            tolerance: *tolerance,
        });
    }
    spec.keep_traces = s.keep_traces;
    spec.threads = s.threads;
    Ok(spec)
}

/// One sweep's arguments, checked and turned into the engine's spec at construction.
#[pyclass(name = "SweepArgs", module = "rustrates._rustrates", frozen)]
pub struct SweepArgs {
    pub(crate) spec: SweepSpec,
}

#[pymethods]
impl SweepArgs {
    #[new]
    #[pyo3(signature = (
        *, grid_keys, grid_values=None, grid_rows=None, permute=false, param_map,
        simulation_time, step_size, sampling_step_size=None, inputs, outputs, solver="euler",
        backend="auto", precision="float64", cutoff=0.0, summaries=Vec::new(),
        keep_traces=true, threads=None, rtol=None, atol=None, regime=None,
        initial_conditions=Vec::new(), random_starts=None, refine=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
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
        solver: &str,
        backend: &str,
        precision: &str,
        cutoff: f64,
        summaries: Vec<String>,
        keep_traces: bool,
        threads: Option<usize>,
        rtol: Option<f64>,
        atol: Option<f64>,
        regime: Option<Vec<(String, f64)>>,
        initial_conditions: Vec<Vec<(String, f64)>>,
        random_starts: Option<RandomStartsArg>,
        refine: Option<(u32, String, f64)>,
    ) -> PyResult<SweepArgs> {
        let settings = Settings {
            simulation_time,
            step_size,
            sampling_step_size,
            solver: solver.to_string(),
            rtol,
            atol,
            cutoff,
            backend: backend.to_string(),
            precision: precision.to_string(),
            summaries,
            keep_traces,
            threads,
            regime,
            initial_conditions,
            random_starts,
            refine,
        };
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
        let mut spec = make_spec(py, grid, param_map, &settings)?;
        spec.inputs = parse_inputs(py, inputs)?;
        spec.outputs = outputs
            .iter()
            .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
            .collect::<PyResult<_>>()?;
        Ok(SweepArgs { spec })
    }

    /// Number of grid points.
    #[getter]
    fn n_points(&self) -> usize {
        self.spec.param_grid.len()
    }
}

/// The type a results file stores traces as, by its name (`trace_precision=`); the engine
/// knows the names.
pub(crate) fn trace_type(py: Python<'_>, name: &str) -> PyResult<TraceType> {
    TraceType::parse(name).ok_or_else(|| {
        arg_err(
            py,
            Kind::Sweep,
            "trace_precision",
            format!("trace_precision must be float64 or float32, got '{name}'"),
        )
    })
}
