//! The crate's integration tests: one binary, one module per area.

mod complex;
mod connectivity;
mod jit_loops;
mod nested;
mod populations;
mod support;
mod templates;
mod vectors;
