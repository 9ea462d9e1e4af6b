//! Stage 5: integration schemes as data (Butcher tableaux) and the stepping loop.
//!
//! Input: a [`Kernel`], a [`SimConfig`], a block of lanes with their parameters and initial
//! states, input signals and the outputs to sample. Output: samples streamed into a
//! [`SampleSink`] and one [`PointStatus`] per lane. The solver does not own the state
//! layout: that is the kernel's [`crate::model::Layout`].

use std::sync::Arc;

use crate::kernel::Kernel;
use crate::model::VarId;

/// Integration method. Fixed-step methods are tableaux; `Rk45` is Dormand–Prince 5(4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Euler,
    Heun,
    Rk4,
    Rk45 { rtol: f64, atol: f64 },
}

impl Method {
    /// Accepts `euler`, `heun`, `rk4`, `rk45`, and `scipy` (= rk45 with scipy's defaults).
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name.to_ascii_lowercase().as_str() {
            "euler" => Method::Euler,
            "heun" => Method::Heun,
            "rk4" => Method::Rk4,
            "rk45" | "scipy" | "dopri5" => Method::Rk45 { rtol: 1e-3, atol: 1e-6 },
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Total simulated time T.
    pub simulation_time: f64,
    /// Step size dt (the initial step for adaptive methods).
    pub dt: f64,
    /// Sampling step dts (default dt). Row k of the output is t = k·dts.
    pub sampling_step: Option<f64>,
    pub method: Method,
    /// Samples with t < cutoff are not emitted.
    pub cutoff: f64,
}

/// An external signal driving one input variable.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Constant(f64),
    /// One value per step, shared by every grid point (numpy shape (steps,) or (steps, 1)).
    Shared(Arc<[f64]>),
    /// One column per grid point: `data[step * points + point]` (numpy (steps, points), C order).
    PerPoint { points: usize, data: Arc<[f64]> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputBinding {
    pub var: VarId,
    pub signal: Signal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputBinding {
    pub key: String,
    pub var: VarId,
}

/// What became of one lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PointStatus {
    Ok,
    /// The state became NaN or infinite at time `t`; samples from then on are NaN.
    NonFinite { t: f64 },
    /// The adaptive step size fell below its floor at time `t`.
    StepTooSmall { t: f64 },
}

/// Receives samples as the run produces them.
pub trait SampleSink {
    /// `values[output * lanes + lane]` at sample `index` (counted from the first emitted
    /// sample, i.e. after the cutoff) and time `t`.
    fn samples(&mut self, index: usize, t: f64, lanes: usize, values: &[f64]);
}

/// A block of lanes to run together.
pub struct Block<'a> {
    /// Global grid-point index of lane 0 (selects `PerPoint` input columns and noise seeds).
    pub first_point: usize,
    pub lanes: usize,
    /// `params[slot * lanes + lane]`, slots as in the kernel's layout.
    pub params: &'a [f64],
    /// `init[slot * lanes + lane]`.
    pub init: &'a [f64],
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SolveError {
    #[error("sampling_step_size {dts} is not a whole multiple of step_size {dt}; use a multiple such as {suggestion}")]
    SamplingNotMultiple { dts: f64, dt: f64, suggestion: f64 },
    #[error("input '{name}' has {found} rows; expected {expected} (= round(simulation_time / step_size)) or {expected_minus_one}")]
    InputLength { name: String, found: usize, expected: usize, expected_minus_one: usize },
    #[error("input '{name}' has {found} columns; expected 1 or one per grid point ({expected})")]
    InputColumns { name: String, found: usize, expected: usize },
    #[error("step_size must be positive and finite, got {dt}")]
    BadStep { dt: f64 },
    #[error("simulation_time must be positive and finite, got {t}")]
    BadTime { t: f64 },
}

/// Run one block of lanes from t = 0 to `cfg.simulation_time`.
pub fn run_block(
    _kernel: &Kernel,
    _cfg: &SimConfig,
    _inputs: &[InputBinding],
    _outputs: &[OutputBinding],
    _block: Block<'_>,
    _sink: &mut dyn SampleSink,
) -> Result<Vec<PointStatus>, SolveError> {
    todo!("solve::run_block: owned by the kernel/solve helper")
}
