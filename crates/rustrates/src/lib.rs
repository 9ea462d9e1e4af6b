//! rustrates: PyRates-compatible neural population models and parameter sweeps.
//!
//! The pipeline, one module per stage (see `ARCHITECTURE.md`):
//!
//! 1. [`syntax`]   — source files, spans, diagnostics, the equation lexer and parser.
//! 2. [`template`] — PyRates YAML templates (0.8 and 1.x dialects) → resolved templates.
//! 3. [`model`]    — resolved circuit template → flat circuit IR ([`model::Circuit`]).
//! 4. [`kernel`]   — circuit IR → compiled right-hand side over blocks of lanes.
//! 5. [`solve`]    — Butcher tableaux and the stepping loop: kernel → sampled trajectories.
//! 6. [`sweep`]    — parameter grids, param_map, blocks over cores, summaries.
//! 7. [`io`]       — result files (HDF5, CSV), part files and manifests.
//!
//! [`library`] holds the built-in template YAML files, embedded in the binary.

pub mod io;
pub mod kernel;
pub mod library;
pub mod model;
pub mod solve;
pub mod sweep;
pub mod syntax;
pub mod template;
