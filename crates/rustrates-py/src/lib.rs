//! PyO3 bindings: the `rustrates._rustrates` extension module. Thin: every call forwards
//! to the `rustrates` library; argument handling PyRates users rely on lives in the Python
//! package (`python/rustrates`).

use pyo3::prelude::*;
use rustrates::solve::PointStatus;

mod args;
mod circuit;
mod cluster;
mod errors;
mod interrupt;
mod results;
mod sweep;

#[pymodule]
fn _rustrates(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RustratesError", py.get_type::<errors::RustratesError>())?;
    m.add("TemplateError", py.get_type::<errors::TemplateError>())?;
    m.add("EquationError", py.get_type::<errors::EquationError>())?;
    m.add("SolverError", py.get_type::<errors::SolverError>())?;
    m.add("SweepError", py.get_type::<errors::SweepError>())?;
    // `{code: name}` of the `regime` summary (engine: `sweep::regime::Regime`).
    let codes = pyo3::types::PyDict::new(py);
    for r in rustrates::sweep::regime::Regime::ALL {
        codes.set_item(r.code(), r.name())?;
    }
    m.add("REGIME_CODES", codes)?;
    // `{code: name}` of a point's status (`/status/code` of a results file, the names of the
    // `status` lists), and the codes of diverged and of never computed points (engine:
    // `solve::PointStatus`).
    let names = pyo3::types::PyDict::new(py);
    let (mut diverged, mut failed) = (Vec::new(), Vec::new());
    for (code, name) in PointStatus::CODES {
        names.set_item(code, name)?;
        match PointStatus::from_code(code, f64::NAN) {
            s if s.diverged() => diverged.push(code),
            PointStatus::Failed => failed.push(code),
            _ => {}
        }
    }
    m.add("STATUS_NAMES", names)?;
    m.add("DIVERGED_CODES", pyo3::types::PyTuple::new(py, diverged)?)?;
    m.add("FAILED_CODES", pyo3::types::PyTuple::new(py, failed)?)?;
    m.add_class::<circuit::PyCircuit>()?;
    m.add_class::<args::SweepArgs>()?;
    m.add_function(wrap_pyfunction!(circuit::load_circuit, m)?)?;
    m.add_function(wrap_pyfunction!(sweep::run_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(results::read_results, m)?)?;
    m.add_function(wrap_pyfunction!(results::write_pytables_nodes, m)?)?;
    m.add_function(wrap_pyfunction!(refine_regular_view, m)?)?;
    m.add("REFINE_LEVEL_KEY", rustrates::sweep::refine::LEVEL_KEY)?;
    cluster::register(m)?;
    Ok(())
}

/// The regular view of a refined point set (engine: `sweep::refine::regular_view`):
/// `(lattice values per key, source point per node, first key fastest)`, or `None` when the
/// columns are not a refined point set.
#[pyfunction]
fn refine_regular_view(keys: Vec<String>, values: Vec<Vec<f64>>) -> Option<(Vec<Vec<f64>>, Vec<usize>)> {
    rustrates::sweep::refine::regular_view(&keys, &values).map(|v| (v.axes, v.source))
}
