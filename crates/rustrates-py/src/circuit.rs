//! `load_circuit(path)`: a template loaded and checked, described for Python.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rustrates::model::{self, Circuit, Loaded, VarKind};
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
    })
}
