//! PyO3 bindings: the `rustrates._rustrates` extension module. Thin: every call forwards
//! to the `rustrates` library.

use pyo3::prelude::*;

#[pymodule]
fn _rustrates(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
