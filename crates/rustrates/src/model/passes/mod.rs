//! Rewrite passes over the circuit IR, one per file.

pub mod lower_edges;

pub use lower_edges::lower_edges;
pub mod specialize_params;

pub use specialize_params::specialize_params;
