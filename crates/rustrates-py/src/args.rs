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
use rustrates::sweep::refine::{Criterion, Refine};
use rustrates::sweep::regime::{RandomStarts, RegimeSettings};
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

/// `(n, seed, [(state name, low, high)])`.
pub type RandomStartsArg = (usize, u64, Vec<(String, f64, f64)>);

/// `solver=` by its name, with `rtol`/`atol` where it is RK45 (its defaults where not given).
fn parse_method(py: Python<'_>, solver: &str, rtol: Option<f64>, atol: Option<f64>) -> PyResult<Method> {
    let mut method = Method::parse(solver).ok_or_else(|| {
        arg_err(
            py,
            Kind::Solver,
            "solver",
            format!("unknown solver '{solver}'; use euler, heun, rk4 or rk45 (alias scipy)"),
        )
    })?;
    if let Method::Rk45 { rtol: r, atol: a } = &mut method {
        *r = rtol.unwrap_or(*r);
        *a = atol.unwrap_or(*a);
    }
    Ok(method)
}

fn parse_backend(py: Python<'_>, name: &str) -> PyResult<Backend> {
    Backend::parse(name).ok_or_else(|| {
        arg_err(
            py,
            Kind::Solver,
            "backend",
            format!(
                "unknown backend '{name}'; use auto, jit, c or reference (PyRates' names such as 'numpy' mean auto)"
            ),
        )
    })
}

fn parse_precision(py: Python<'_>, name: &str) -> PyResult<Precision> {
    match name {
        "float64" => Ok(Precision::F64),
        "float32" => Ok(Precision::F32),
        other => Err(arg_err(
            py,
            Kind::Solver,
            "float_precision",
            format!("float_precision must be float64 or float32, got '{other}'"),
        )),
    }
}

/// `summaries=` by name, expanded as the engine computes them (`regime` brings its values).
fn parse_summaries(py: Python<'_>, names: &[String]) -> PyResult<Vec<Statistic>> {
    let requested: Vec<Statistic> = names
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
    Ok(Statistic::expand(&requested))
}

/// `regime=` thresholds by name, read by the engine's own (de)serialisation of its settings:
/// unknown names and wrong types are refused there, with the field named.
fn parse_regime(py: Python<'_>, thresholds: &[(String, f64)]) -> PyResult<RegimeSettings> {
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
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| arg_err(py, Kind::Sweep, "regime", format!("regime: {e}")))
}

/// `refine=` as `(levels, criterion, tolerance)`, the criterion by its name.
fn parse_refine(py: Python<'_>, (levels, criterion, tolerance): (u32, String, f64)) -> PyResult<Refine> {
    let criterion = Criterion::parse(&criterion).ok_or_else(|| {
        arg_err(
            py,
            Kind::Sweep,
            "refine",
            format!("unknown refine criterion '{criterion}'; use 'regime' or the name of a summary the sweep computes"),
        )
    })?;
    Ok(Refine {
        levels,
        criterion,
        tolerance,
    })
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
        // Checked in this order, so that of several wrong arguments the first named is reported.
        let sim = SimConfig {
            simulation_time,
            dt: step_size,
            sampling_step: sampling_step_size,
            method: parse_method(py, solver, rtol, atol)?,
            cutoff,
        };
        let mut spec = SweepSpec::new(grid, param_map, sim);
        spec.backend = parse_backend(py, backend)?;
        spec.precision = parse_precision(py, precision)?;
        spec.summaries = parse_summaries(py, &summaries)?;
        if let Some(thresholds) = &regime {
            spec.regime = parse_regime(py, thresholds)?;
        }
        spec.initial_conditions = initial_conditions;
        spec.random_starts = random_starts.map(|(n, seed, bounds)| RandomStarts { n, seed, bounds });
        spec.refine = refine.map(|r| parse_refine(py, r)).transpose()?;
        spec.keep_traces = keep_traces;
        spec.threads = threads;
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
