//! Every way a sweep can refuse to run or stop.

use super::checks::{MemoryError, SettingError};
use super::param_map::ParamMapError;
use crate::kernel::KernelError;
use crate::model::jacobian::JacobianError;
use crate::model::VarKind;
use crate::solve::SolveError;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Grid(#[from] super::grid::GridError),
    #[error(transparent)]
    Refine(#[from] super::refine::RefineError),
    #[error(transparent)]
    ParamMap(#[from] ParamMapError),
    #[error("unknown input variable '{name}'{}", suggestion_text(.suggestion))]
    UnknownInput { name: String, suggestion: Option<String> },
    #[error("'{name}' is a {kind:?} variable and cannot be driven as an input")]
    NotAnInput { name: String, kind: VarKind },
    #[error("input '{name}' is both driven by a signal and swept by param_map key '{key}'")]
    InputSweptAndDriven { name: String, key: String },
    #[error("output '{key}': no variable '{path}'{}", suggestion_text(.suggestion))]
    UnknownOutput {
        key: String,
        path: String,
        suggestion: Option<String>,
    },
    #[error("no outputs: give at least one output, e.g. {{'r': 'PC/Op_e/r'}}")]
    NoOutputs,
    #[error("block_size must be at least 1")]
    BadBlockSize,
    #[error("shard {index}/{count} is invalid: need count ≥ 1 and index < count")]
    BadShard { index: usize, count: usize },
    #[error("the solver emitted {found} samples per point; the sweep expected {expected}")]
    SampleCount { expected: usize, found: usize },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Solve(#[from] SolveError),
    #[error("could not start {threads} worker threads: {source}")]
    ThreadPool {
        threads: usize,
        source: rayon::ThreadPoolBuildError,
    },
    #[error("sweep cancelled after {points_done} points")]
    Cancelled { points_done: usize },
    #[error("writing results: {source}")]
    Output {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Settings(Vec<SettingError>),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("initial_conditions[{start}]: '{name}' is not a state variable{}", suggestion_text(.suggestion))]
    InitialCondition {
        start: usize,
        name: String,
        suggestion: Option<String>,
    },
    #[error("random_starts.bounds: '{name}' is not a state variable{}", suggestion_text(.suggestion))]
    RandomStart { name: String, suggestion: Option<String> },
    /// The `regime` summary needs the Jacobian, and the circuit has none.
    #[error("summary `regime`: {0}")]
    Jacobian(#[from] JacobianError),
}

fn suggestion_text(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default()
}
