//! `load_circuit(path)`: a template loaded and checked, described for Python.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rustrates::model::jacobian::{self, JacobianAtError};
use rustrates::model::{self, Circuit, Loaded, VarKind};
use rustrates::syntax::SourceMap;
use rustrates::template::LoadOptions;

use crate::errors::{self, Located};

/// A loaded circuit template (edges not yet lowered).
#[pyclass(name = "Circuit", module = "rustrates._rustrates", frozen)]
pub struct PyCircuit {
    /// Template name, used in sweep labels (`Net3_0`, ...).
    #[pyo3(get)]
    name: String,
    /// Flattened node paths in template order.
    #[pyo3(get)]
    nodes: Vec<String>,
    /// Rendered warnings of the load.
    #[pyo3(get)]
    warnings: Vec<String>,
    /// The YAML of the file that defines the circuit.
    #[pyo3(get)]
    source_text: String,
    circuit: Circuit,
    /// The files the circuit came from, to position errors found after the load.
    sources: SourceMap,
}

fn kind_name(kind: VarKind) -> &'static str {
    match kind {
        VarKind::State => "state",
        VarKind::Param => "constant",
        VarKind::Input => "input",
        VarKind::Algebraic => "variable",
    }
}

#[pymethods]
impl PyCircuit {
    /// Every variable as a dict: name (`node/op/var`), kind (state, constant, input,
    /// variable), value (default or initial value), node.
    #[getter]
    fn variables<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.circuit
            .vars
            .iter()
            .map(|v| {
                let d = PyDict::new(py);
                d.set_item("name", &v.name)?;
                d.set_item("kind", kind_name(v.kind))?;
                d.set_item("value", v.value)?;
                d.set_item("node", &v.node)?;
                Ok(d)
            })
            .collect()
    }

    /// The resolved equations of every node and the edge list, as `rustrates show` prints.
    fn dump(&self) -> String {
        model::dump(&self.circuit)
    }

    /// The Jacobian ∂(dx_i/dt)/∂x_j at time `t`, derived symbolically (engine:
    /// `model::jacobian::jacobian_at`): `values` sets states (the point), parameters and
    /// inputs by name (`node/op/var`, `edge:SRC->TGT:IDX/weight`); the rest keep their
    /// defaults. Returns `(state names, rows)`.
    #[pyo3(signature = (values=None, t=0.0))]
    fn jacobian(
        &self,
        py: Python<'_>,
        values: Option<Vec<(String, f64)>>,
        t: f64,
    ) -> PyResult<(Vec<String>, Vec<Vec<f64>>)> {
        let values = values.unwrap_or_default();
        let circuit = &self.circuit;
        let result = py.detach(|| jacobian::jacobian_at(circuit, &values, t));
        let (names, m) = result.map_err(|e| match e {
            JacobianAtError::NotDifferentiable(e) => errors::to_pyerr(
                py,
                errors::Kind::Equation,
                &[Located::from_diagnostic(&e.diagnostic(), &self.sources)],
            ),
            e @ (JacobianAtError::UnknownVariable { .. } | JacobianAtError::NotSettable { .. }) => {
                pyo3::exceptions::PyValueError::new_err(e.to_string())
            }
            e @ JacobianAtError::Kernel(_) => {
                errors::to_pyerr(py, errors::Kind::Solver, &[Located::plain("kernel", e.to_string(), "")])
            }
        })?;
        let n = names.len();
        Ok((names, m.chunks(n.max(1)).map(<[f64]>::to_vec).collect()))
    }

    /// The nodes `node` names (a node path, or PyRates' `all` at any level) that have `var`
    /// (`op/var`), in circuit order: where an array of per-node values goes (engine:
    /// `sweep::param_map::nodes_having`). Errors are a `SweepError` naming `argument`.
    #[pyo3(signature = (node, var, argument="node_vars"))]
    fn nodes_having(&self, py: Python<'_>, node: &str, var: &str, argument: &str) -> PyResult<Vec<String>> {
        rustrates::sweep::param_map::nodes_having(argument, node, var, &self.circuit)
            .map_err(|e| errors::arg_err(py, errors::Kind::Sweep, argument, e.to_string()))
    }

    /// Where an array of values for `var` on `node` goes: a vector variable's elements
    /// (`node/var[i]`) or one node each (engine: `sweep::param_map::value_targets`).
    #[pyo3(signature = (node, var, argument="node_vars"))]
    fn value_targets(&self, py: Python<'_>, node: &str, var: &str, argument: &str) -> PyResult<Vec<String>> {
        rustrates::sweep::param_map::value_targets(argument, node, var, &self.circuit)
            .map_err(|e| errors::arg_err(py, errors::Kind::Sweep, argument, e.to_string()))
    }

    fn __repr__(&self) -> String {
        format!("<Circuit {} nodes={:?}>", self.name, self.nodes)
    }
}

/// Loads and checks a template, without the GIL. Errors become `TemplateError` or
/// `EquationError` carrying every diagnostic.
pub fn load(py: Python<'_>, path: &str) -> PyResult<Loaded> {
    let owned = path.to_string();
    let result = py.detach(move || model::load_circuit(&owned, &LoadOptions::default()));
    result.map_err(|f| errors::load_failure(py, &f.diagnostics, &f.sources))
}

/// Loads the template at `path` (dotted, or a file path with the template name last).
#[pyfunction]
pub fn load_circuit(py: Python<'_>, path: &str) -> PyResult<PyCircuit> {
    let loaded = load(py, path)?;
    let warnings = loaded
        .warnings
        .iter()
        .map(|d| Located::from_diagnostic(d, &loaded.sources).render())
        .collect();
    Ok(PyCircuit {
        name: loaded.circuit.name.clone(),
        nodes: loaded.circuit.nodes.clone(),
        warnings,
        source_text: loaded.source_text,
        circuit: loaded.circuit,
        sources: loaded.sources,
    })
}
