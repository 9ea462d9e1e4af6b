//! Stage 6: parameter sweeps.
//!
//! Input: an unlowered [`crate::model::Circuit`] and a [`SweepSpec`] (grid, `param_map`,
//! simulation settings, inputs, outputs, what to keep). Output: samples, summaries and a status
//! per grid point, streamed into a [`SweepSink`] chunk by chunk and block by block.
//!
//! - [`grid`]: parameter grids in PyRates' point order, labels `{circuit}_{i}`.
//! - [`param_map`]: grid keys → model variables, checked before anything runs.
//! - [`run`]: compile once, cut the grid into chunks (the unit of part files and resume) and
//!   blocks of lanes (the unit of parallel work), run blocks on a dedicated rayon pool.
//! - [`summary`]: statistics of post-cutoff traces computed inside the run.
//! - [`refine`]: adaptive refinement of 1-D/2-D grids where regimes (or a summary) change.
//! - [`regime`]: the regime of each point (fixed point and its stability, cycle, divergence).
//!
//! Invariants: the kernel is compiled once per sweep; a block writes only its own points;
//! a chunk is reported finished ([`SweepSink::end_chunk`]) only when all its blocks are.

// Errors are built once per failed call, never in the stepping loop: their typed fields are
// worth more than a smaller `Result`.
#![allow(clippy::result_large_err)]

pub mod checks;
pub mod grid;
pub mod param_map;
pub mod refine;
pub mod regime;
pub mod run;
pub mod summary;

pub use checks::{MemoryError, Problem, Setting, SettingError};
pub use grid::{Grid, GridError};
pub use param_map::{EdgeRef, MapEntry, MapTargets, ParamMap, ParamMapError};
pub use run::{
    check, output_columns, run, run_with, BlockHandler, BlockOutput, BlockSolver, MemorySink, Progress, RunControl,
    Shard, Summaries, SweepError, SweepMeta, SweepResult, SweepSink, SweepSpec, SweepSummary,
};
pub use summary::Statistic;
