//! Rewrite passes over the circuit IR, one per file.

pub mod lower_edges;

pub use lower_edges::{expand_couplings, lower_edges, lower_edges_keeping_couplings};
pub mod specialize_params;

pub use specialize_params::specialize_params;
