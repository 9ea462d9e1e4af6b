//! PyO3 bindings: the `rustrates._rustrates` extension module. Thin: every call forwards
//! to the `rustrates` library.

use pyo3::prelude::*;

mod errors;

#[pymodule]
fn _rustrates(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RustratesError", py.get_type::<errors::RustratesError>())?;
    m.add("TemplateError", py.get_type::<errors::TemplateError>())?;
    m.add("EquationError", py.get_type::<errors::EquationError>())?;
    m.add("SolverError", py.get_type::<errors::SolverError>())?;
    m.add("SweepError", py.get_type::<errors::SweepError>())?;
    Ok(())
}
