//! The crate's integration tests: one binary, one module per area.

mod complex;
mod connectivity;
mod nested;
mod populations;
mod support;
mod templates;
mod vectors;
