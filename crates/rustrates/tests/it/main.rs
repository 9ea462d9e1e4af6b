//! The crate's integration tests: one binary, one module per area.

mod complex;
mod connectivity;
mod populations;
mod templates;
mod vectors;
