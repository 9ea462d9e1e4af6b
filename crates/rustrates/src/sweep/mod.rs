//! Stage 6: parameter sweeps.
//!
//! Input: an unlowered [`crate::model::Circuit`] and a [`SweepSpec`] (grid, `param_map`,
//! simulation settings, inputs, outputs, what to keep). Output: samples, summaries and a status
//! per grid point, streamed into a [`SweepSink`] chunk by chunk and block by block.
//!
//! - [`grid`]: parameter grids in PyRates' point order, labels `{circuit}_{i}`.
//! - [`param_map`]: grid keys → model variables, checked before anything runs.
//! - [`spec`]: what defines a sweep ([`SweepSpec`]) and how a run is driven ([`RunControl`]).
//! - `plan`: outputs and timing checked, points grouped by kernel structure, kernels compiled.
//! - [`run`]: compile once, cut the grid into chunks (the unit of part files and resume) and
//!   blocks of lanes (the unit of parallel work), run blocks on a dedicated rayon pool.
//! - `block`: one block of lanes: parameters from the grid, the solver, samples collected.
//! - [`sink`]: where results go ([`SweepSink`]); the in-memory [`SweepResult`].
//! - [`error`]: every way a sweep refuses to run or stops ([`SweepError`]).
//! - [`summary`]: statistics of post-cutoff traces computed inside the run.
//! - [`refine`]: adaptive refinement of 1-D/2-D grids where regimes (or a summary) change.
//! - [`regime`]: the regime of each point (fixed point and its stability, cycle, divergence).
//!
//! Invariants: the kernel is compiled once per sweep; a block writes only its own points;
//! a chunk is reported finished ([`SweepSink::end_chunk`]) only when all its blocks are.

// Errors are built once per failed call, never in the stepping loop: their typed fields are
// worth more than a smaller `Result`.
#![allow(clippy::result_large_err)]

mod block;
pub mod checks;
pub mod error;
pub mod grid;
pub mod param_map;
mod plan;
pub mod refine;
pub mod regime;
pub mod run;
pub mod sink;
pub mod spec;
pub mod summary;

pub use checks::{MemoryError, Problem, Setting, SettingError};
pub use error::SweepError;
pub use grid::{Grid, GridError};
pub use param_map::{EdgeRef, MapEntry, MapTargets, ParamMap, ParamMapError};
pub use plan::{check, output_columns, PlanMemo};
pub use run::{run, run_with, BlockSolver};
pub use sink::{BlockHandler, MemorySink, Summaries, SweepResult, SweepSink, SweepSummary};
pub use spec::{
    BlockOutput, Progress, RunControl, Shard, SweepMeta, SweepSpec, DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_SIZE,
};
pub use summary::Statistic;

#[cfg(test)]
pub(crate) mod tests;
