//! The crate's integration tests: one binary, one module per area.

mod connectivity;
mod templates;
