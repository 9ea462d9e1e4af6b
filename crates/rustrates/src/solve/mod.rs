//! Stage 5: integration schemes as data (Butcher tableaux) and the stepping loop.
//!
//! Input: a [`Kernel`], a [`SimConfig`], a block of lanes with their parameters and initial
//! states, input signals and the outputs to sample. Output: samples streamed into a
//! [`SampleSink`] and one [`PointStatus`] per lane. The solver does not own the state
//! layout: that is the kernel's [`crate::model::Layout`].
//!
//! - **Time grid** ([`TimeGrid`]): `steps = round(T/dt)`; sample `k` is the state at `t = k·dts`,
//!   `k = 0 … round(T/dts) − 1`, taken before step `k·dts/dt` (row 0 = initial state), as
//!   PyRates does; samples before `cutoff` are not emitted and indices count from the first
//!   emitted one.
//! - **Fixed step** (`fixed`): one kernel call per stage on the whole block; stage 0's
//!   algebraics are the sampled ones, so they are consistent with the sampled state. Input row
//!   `i` drives every stage of step `i`; a signal with `steps − 1` rows holds its last row.
//!   Back ends with a fused loop ([`Kernel::steps`]: C and JIT) get stretches of up to 1024
//!   steps and record the sampled states themselves when every output is a state and no input
//!   is a time series; otherwise they get the stretches between samples (or single steps).
//! - **rk45** (`adaptive`): Dormand–Prince 5(4), error control per lane (RMS norm, scipy's
//!   rtol/atol), dense output for samples and for delayed values. Circuits that do not read
//!   `t`, `past` or `randn` step the whole block at once with per-lane step sizes; the others
//!   lane by lane. Either way a lane's numbers do not depend on its neighbours.
//! - **Non-finite lanes**: after every step; the first NaN/Inf marks
//!   [`PointStatus::NonFinite`] with the time, and the lane is frozen at NaN (its samples NaN
//!   from then on), so the other lanes carry on unchanged.
//! - **Delays and noise** (`runtime`): `past(x, d)` reads per-lane histories (cubic Hermite,
//!   or rk45's dense output; constant initial history); `randn()` is a pure function of
//!   (seed, grid point, step, source), reproducible whatever the block or thread. For
//!   Euler–Maruyama write `x' = f + σ·randn()/sqrt(dt)`, i.e. `dx = f dt + σ dW`.
//! - **float32**: a kernel compiled with `Precision::F32` is stepped in `f32` throughout;
//!   samples are widened to `f64`.

use std::sync::Arc;

use crate::kernel::Kernel;
use crate::model::{Circuit, VarId, VarKind};

mod adaptive;
mod fixed;
pub(crate) use fixed::ring_bytes_per_lane;
mod last_state;
pub mod runtime;
#[cfg(test)]
mod tests;

pub use crate::kernel::Tableau;

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

impl SimConfig {
    /// `simulation_time` in steps of `dt` by `method`, sampled every `sampling_step` (default
    /// `dt`), no cutoff.
    pub fn new(method: Method, simulation_time: f64, dt: f64, sampling_step: Option<f64>) -> SimConfig {
        SimConfig {
            simulation_time,
            dt,
            sampling_step,
            method,
            cutoff: 0.0,
        }
    }
}

/// An external signal driving one input variable.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Constant(f64),
    /// One value per step, shared by every grid point (numpy shape (steps,) or (steps, 1)).
    Shared(Arc<[f64]>),
    /// One column per grid point: `data[step * points + point]` (numpy (steps, points), C order).
    PerPoint {
        points: usize,
        data: Arc<[f64]>,
    },
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
    NonFinite {
        t: f64,
    },
    /// The adaptive step size fell below its floor at time `t`.
    StepTooSmall {
        t: f64,
    },
    /// Never computed: the chunk holding the point failed for good (a cluster task that
    /// raised on every try). The solver never returns it; merged result files record it.
    Failed,
}

impl PointStatus {
    /// Every status as `(code, name)`, in code order: the code is `/status/code` of a results
    /// file, the name what the fronts show (Python's `status` lists, `rustrates.STATUS_NAMES`).
    pub const CODES: [(u8, &'static str); 4] = [(0, "ok"), (1, "nonfinite"), (2, "step_too_small"), (3, "failed")];

    /// Its code in results files (see [`PointStatus::CODES`]).
    pub const fn code(&self) -> u8 {
        match self {
            PointStatus::Ok => 0,
            PointStatus::NonFinite { .. } => 1,
            PointStatus::StepTooSmall { .. } => 2,
            PointStatus::Failed => 3,
        }
    }

    /// Its name (see [`PointStatus::CODES`]).
    pub fn name(&self) -> &'static str {
        Self::CODES[usize::from(self.code())].1
    }

    /// When the run of the point stopped being usable; NaN for `Ok` and `Failed`.
    pub fn time(&self) -> f64 {
        match *self {
            PointStatus::NonFinite { t } | PointStatus::StepTooSmall { t } => t,
            PointStatus::Ok | PointStatus::Failed => f64::NAN,
        }
    }

    /// The status of `code` (from a results file) stopped at `t`; a code no file writes reads
    /// as `StepTooSmall`, a diverged point, so it is never taken for a good one.
    pub fn from_code(code: u8, t: f64) -> PointStatus {
        match code {
            0 => PointStatus::Ok,
            1 => PointStatus::NonFinite { t },
            3 => PointStatus::Failed,
            _ => PointStatus::StepTooSmall { t },
        }
    }

    /// The solver gave up on the point (its values stop at [`PointStatus::time`]).
    pub fn diverged(&self) -> bool {
        matches!(self, PointStatus::NonFinite { .. } | PointStatus::StepTooSmall { .. })
    }
}

/// Receives samples as the run produces them.
pub trait SampleSink {
    /// `values[output * lanes + lane]` at sample `index` (counted from the first emitted
    /// sample, i.e. after the cutoff) and time `t`.
    fn samples(&mut self, index: usize, t: f64, lanes: usize, values: &[f64]);
    /// Whether the sink wants the whole state at the last emitted sample
    /// ([`SampleSink::last_state`]): asked once, before the run.
    fn wants_last_state(&self) -> bool {
        false
    }
    /// The state `y[slot * lanes + lane]` at the last emitted sample (NaN in lanes that
    /// diverged), once per run when [`SampleSink::wants_last_state`] and a sample is emitted;
    /// before or after that sample's [`SampleSink::samples`]. A sink that needs the state
    /// once (the regime's fixed-point test) takes it here instead of binding every state as
    /// an output read at every sample.
    fn last_state(&mut self, _lanes: usize, _y: &[f64]) {}
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
    InputLength {
        name: String,
        found: usize,
        expected: usize,
        expected_minus_one: usize,
    },
    #[error("input '{name}' has {found} columns; expected 1 or one per grid point ({expected})")]
    InputColumns {
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("step_size must be positive and finite, got {dt}")]
    BadStep { dt: f64 },
    #[error("simulation_time must be positive and finite, got {t}")]
    BadTime { t: f64 },
    #[error("'{name}' is not an input variable and cannot be driven by a signal")]
    NotAnInput { name: String },
    #[error("variable id {id} does not exist in the compiled circuit")]
    UnknownVar { id: u32 },
    #[error("the block's {buffer} buffer has {found} values; expected {expected}")]
    BufferLength {
        buffer: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("rtol and atol must be positive and finite, got rtol {rtol}, atol {atol}")]
    BadTolerance { rtol: f64, atol: f64 },
}

/// Options beyond [`SimConfig`] that most callers leave at their defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Seed of the noise streams; grid point `i` draws from the stream of `(seed, i)`.
    pub seed: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { seed: 0x5EED }
    }
}

/// The time grid of a run, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeGrid {
    pub dt: f64,
    /// round(T / dt): fixed steps, and the row count an input must have (or one fewer).
    pub steps: usize,
    pub dts: f64,
    /// Steps per sample.
    pub stride: usize,
    /// round(T / dts) samples at t = k·dts, before the cutoff is applied.
    pub samples: usize,
    pub cutoff: f64,
}

impl TimeGrid {
    pub fn new(cfg: &SimConfig) -> Result<TimeGrid, SolveError> {
        let dt = cfg.dt;
        if !(dt.is_finite() && dt > 0.0) {
            return Err(SolveError::BadStep { dt });
        }
        let t = cfg.simulation_time;
        if !(t.is_finite() && t > 0.0) {
            return Err(SolveError::BadTime { t });
        }
        let dts = cfg.sampling_step.unwrap_or(dt);
        let ratio = dts / dt;
        let stride = ratio.round();
        if !(dts.is_finite() && stride >= 1.0 && (ratio - stride).abs() <= 1e-9 * ratio) {
            let suggestion = if ratio.is_finite() {
                ratio.round().max(1.0) * dt
            } else {
                dt
            };
            return Err(SolveError::SamplingNotMultiple { dts, dt, suggestion });
        }
        Ok(TimeGrid {
            dt,
            steps: round_count(t / dt),
            dts,
            stride: stride as usize,
            samples: round_count(t / dts),
            cutoff: cfg.cutoff,
        })
    }

    /// Time of sample `k` (before the cutoff).
    pub fn sample_time(&self, k: usize) -> f64 {
        k as f64 * self.dts
    }

    /// Index of the first sample at or after the cutoff (a hair of tolerance so that
    /// `cutoff = 3·dts` keeps sample 3 although 3·0.1 > 0.3 in floating point).
    pub fn first_emitted(&self) -> usize {
        let mut k = 0;
        while k < self.samples && self.sample_time(k) < self.cutoff - 1e-9 * self.dts {
            k += 1;
        }
        k
    }

    /// Samples emitted after the cutoff.
    pub fn emitted(&self) -> usize {
        self.samples - self.first_emitted()
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn round_count(x: f64) -> usize {
    // Half-way cases round away from zero (Python's int(round(...)) on .5 is rare here and
    // PyRates' own counts come from float division anyway).
    x.round().max(0.0) as usize
}

/// Check every input signal against the run's length and the grid size `points`, before any
/// work starts (sweeps call this once for the whole grid).
pub fn validate_inputs(
    kernel: &Kernel,
    cfg: &SimConfig,
    inputs: &[InputBinding],
    points: usize,
) -> Result<(), SolveError> {
    let plan = TimeGrid::new(cfg)?;
    for inp in inputs {
        check_input(kernel, &plan, inp, Some(points))?;
    }
    Ok(())
}

fn check_input(kernel: &Kernel, plan: &TimeGrid, inp: &InputBinding, points: Option<usize>) -> Result<(), SolveError> {
    let var = kernel
        .vars()
        .get(inp.var.0 as usize)
        .ok_or(SolveError::UnknownVar { id: inp.var.0 })?;
    if var.kind != VarKind::Input {
        return Err(SolveError::NotAnInput { name: var.name.clone() });
    }
    let rows_ok = |found: usize| {
        if found == plan.steps || found + 1 == plan.steps {
            Ok(())
        } else {
            Err(SolveError::InputLength {
                name: var.name.clone(),
                found,
                expected: plan.steps,
                expected_minus_one: plan.steps.saturating_sub(1),
            })
        }
    };
    match &inp.signal {
        Signal::Constant(_) => Ok(()),
        Signal::Shared(data) => rows_ok(data.len()),
        Signal::PerPoint { points: cols, data } => {
            if let Some(expected) = points {
                if *cols != expected && *cols != 1 {
                    return Err(SolveError::InputColumns {
                        name: var.name.clone(),
                        found: *cols,
                        expected,
                    });
                }
            }
            if *cols == 0 {
                return Err(SolveError::InputColumns {
                    name: var.name.clone(),
                    found: 0,
                    expected: points.unwrap_or(1),
                });
            }
            rows_ok(data.len() / cols)?;
            if data.len() % cols != 0 {
                return Err(SolveError::BufferLength {
                    buffer: "input",
                    found: data.len(),
                    expected: (data.len() / cols) * cols,
                });
            }
            Ok(())
        }
    }
}

/// Where a sampled output reads from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    State(usize),
    Algebraic(usize),
    Param(usize),
    Input(usize),
}

/// How one input slot is driven, resolved for a block:
/// `data[row * cols + col]`; lane `l` reads column `col0 + l` (`cols == 1`: shared).
pub(crate) struct Drive<'a> {
    slot: usize,
    data: &'a [f64],
    rows: usize,
    cols: usize,
    col0: usize,
}

/// Everything a stepper needs, checked and resolved.
pub(crate) struct Prepared<'a> {
    pub(crate) plan: TimeGrid,
    pub(crate) lanes: usize,
    /// `u0[slot * lanes + lane]`: defaults and constants; series overwrite their slots.
    pub(crate) u0: Vec<f64>,
    pub(crate) series: Vec<Drive<'a>>,
    pub(crate) outputs: Vec<Source>,
}

impl Drive<'_> {
    /// Fill the slot for row `row` (clamped to the last row: a missing last row holds it).
    pub(crate) fn fill<T: fixed::Float>(&self, row: usize, lanes: usize, u: &mut [T]) {
        if self.rows == 0 {
            return;
        }
        let r = row.min(self.rows - 1);
        let dst = &mut u[self.slot * lanes..(self.slot + 1) * lanes];
        if self.cols == 1 {
            dst.fill(T::of(self.data[r]));
        } else {
            let src = &self.data[r * self.cols + self.col0..r * self.cols + self.col0 + lanes];
            for (d, s) in dst.iter_mut().zip(src) {
                *d = T::of(*s);
            }
        }
    }

    /// The value at time `t` for one lane, interpolated linearly between rows (row i at
    /// t = i·dt), for adaptive steppers.
    pub(crate) fn at(&self, t: f64, dt: f64, lane: usize) -> (usize, f64) {
        if self.rows == 0 {
            return (self.slot, f64::NAN);
        }
        let col = if self.cols == 1 { 0 } else { self.col0 + lane };
        let pos = (t / dt).max(0.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = pos.floor() as usize;
        if i + 1 >= self.rows {
            return (self.slot, self.data[(self.rows - 1) * self.cols + col]);
        }
        let f = pos - i as f64;
        let (v0, v1) = (self.data[i * self.cols + col], self.data[(i + 1) * self.cols + col]);
        (self.slot, if f == 0.0 { v0 } else { v0 + f * (v1 - v0) })
    }
}

fn prepare<'a>(
    kernel: &Kernel,
    cfg: &SimConfig,
    inputs: &'a [InputBinding],
    outputs: &[OutputBinding],
    block: &Block<'_>,
) -> Result<Prepared<'a>, SolveError> {
    let plan = TimeGrid::new(cfg)?;
    let layout = kernel.layout();
    let lanes = block.lanes;
    let vars = kernel.vars();
    for (buffer, found, expected) in [
        ("params", block.params.len(), layout.params.len() * lanes),
        ("init", block.init.len(), layout.states.len() * lanes),
    ] {
        if found != expected {
            return Err(SolveError::BufferLength {
                buffer,
                found,
                expected,
            });
        }
    }
    let mut u0 = Vec::with_capacity(layout.inputs.len() * lanes);
    for v in &layout.inputs {
        u0.extend(std::iter::repeat_n(vars[v.0 as usize].value, lanes));
    }
    let mut series = Vec::new();
    for inp in inputs {
        check_input(kernel, &plan, inp, None)?;
        let slot = layout.slot[inp.var.0 as usize] as usize;
        match &inp.signal {
            Signal::Constant(c) => u0[slot * lanes..(slot + 1) * lanes].fill(*c),
            Signal::Shared(data) => {
                series.push(Drive {
                    slot,
                    data,
                    rows: data.len(),
                    cols: 1,
                    col0: 0,
                });
            }
            Signal::PerPoint { points, data } => {
                let cols = *points;
                if cols != 1 && block.first_point + lanes > cols {
                    return Err(SolveError::InputColumns {
                        name: vars[inp.var.0 as usize].name.clone(),
                        found: cols,
                        expected: block.first_point + lanes,
                    });
                }
                series.push(Drive {
                    slot,
                    data,
                    rows: data.len() / cols,
                    cols,
                    col0: block.first_point,
                });
            }
        }
    }
    let mut outs = Vec::with_capacity(outputs.len());
    for o in outputs {
        let var = vars
            .get(o.var.0 as usize)
            .ok_or(SolveError::UnknownVar { id: o.var.0 })?;
        let slot = layout.slot[o.var.0 as usize] as usize;
        outs.push(match var.kind {
            VarKind::State => Source::State(slot),
            VarKind::Algebraic => Source::Algebraic(slot),
            VarKind::Param => Source::Param(slot),
            VarKind::Input => Source::Input(slot),
        });
    }
    Ok(Prepared {
        plan,
        lanes,
        u0,
        series,
        outputs: outs,
    })
}

/// Run one block of lanes from t = 0 to `cfg.simulation_time`.
pub fn run_block(
    kernel: &Kernel,
    cfg: &SimConfig,
    inputs: &[InputBinding],
    outputs: &[OutputBinding],
    block: Block<'_>,
    sink: &mut dyn SampleSink,
) -> Result<Vec<PointStatus>, SolveError> {
    // No front sets the noise seed: every run draws from the default streams.
    let opts = &RunOptions::default();
    let prep = prepare(kernel, cfg, inputs, outputs, &block)?;
    if block.lanes == 0 {
        return Ok(Vec::new());
    }
    let f32_path = kernel.precision() == crate::kernel::Precision::F32;
    match cfg.method {
        Method::Rk45 { rtol, atol } => {
            if !(rtol.is_finite() && rtol > 0.0 && atol.is_finite() && atol > 0.0) {
                return Err(SolveError::BadTolerance { rtol, atol });
            }
            let problem = adaptive::Problem {
                kernel,
                prep: &prep,
                block: &block,
                tol: adaptive::Tolerance { rtol, atol },
            };
            Ok(if f32_path {
                adaptive::run_with_stats::<f32>(problem, sink, opts).0
            } else {
                adaptive::run_with_stats::<f64>(problem, sink, opts).0
            })
        }
        m => {
            let tab = match m {
                Method::Euler => Tableau::euler(),
                Method::Heun => Tableau::heun(),
                _ => Tableau::rk4(),
            };
            if f32_path {
                return Ok(fixed::run::<f32>(kernel, &prep, &block, &tab, sink, opts));
            }
            if let Some(status) = fixed::run_fused(kernel, &prep, &block, &tab, sink) {
                return Ok(status);
            }
            Ok(fixed::run::<f64>(kernel, &prep, &block, &tab, sink, opts))
        }
    }
}

/// Sampled trajectories of a block, in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectories {
    /// Times of the emitted samples.
    pub time: Vec<f64>,
    /// Output keys in the order of `outputs`.
    pub keys: Vec<String>,
    /// `data[(output * lanes + lane) * time.len() + sample]`.
    pub data: Vec<f64>,
    pub status: Vec<PointStatus>,
    pub lanes: usize,
}

impl Trajectories {
    /// One output's trace in one lane.
    pub fn trace(&self, output: usize, lane: usize) -> &[f64] {
        let n = self.time.len();
        let start = (output * self.lanes + lane) * n;
        &self.data[start..start + n]
    }
}

/// A [`SampleSink`] that keeps everything, `[sample][output][lane]` as it arrives.
#[derive(Clone, Debug, Default)]
pub struct SampleBuffer {
    pub time: Vec<f64>,
    pub values: Vec<f64>,
}

impl SampleSink for SampleBuffer {
    fn samples(&mut self, index: usize, t: f64, _lanes: usize, values: &[f64]) {
        debug_assert_eq!(index, self.time.len(), "samples arrive in order");
        self.time.push(t);
        self.values.extend_from_slice(values);
    }
}

/// Run `lanes` lanes (grid points 0..lanes) and keep every sample in memory.
///
/// `params[slot * lanes + lane]` and `init[slot * lanes + lane]` as in [`Block`]; see
/// [`default_params`] and [`default_init`] for the circuit's own values.
pub fn simulate(
    kernel: &Kernel,
    cfg: &SimConfig,
    inputs: &[InputBinding],
    outputs: &[OutputBinding],
    params: &[f64],
    init: &[f64],
    lanes: usize,
) -> Result<Trajectories, SolveError> {
    let mut sink = SampleBuffer::default();
    let status = run_block(
        kernel,
        cfg,
        inputs,
        outputs,
        Block {
            first_point: 0,
            lanes,
            params,
            init,
        },
        &mut sink,
    )?;
    let n = sink.time.len();
    let nout = outputs.len();
    let mut data = vec![0.0; nout * lanes * n];
    for (k, row) in sink.values.chunks_exact((nout * lanes).max(1)).enumerate().take(n) {
        for (j, v) in row.iter().enumerate() {
            data[j * n + k] = *v;
        }
    }
    Ok(Trajectories {
        time: sink.time,
        keys: outputs.iter().map(|o| o.key.clone()).collect(),
        data,
        status,
        lanes,
    })
}

/// The circuit's parameter values broadcast to `lanes` lanes, in the kernel's layout.
pub fn default_params(circuit: &Circuit, lanes: usize) -> Vec<f64> {
    broadcast_values(circuit, &circuit.layout().params, lanes)
}

/// The circuit's initial state broadcast to `lanes` lanes, in the kernel's layout.
pub fn default_init(circuit: &Circuit, lanes: usize) -> Vec<f64> {
    broadcast_values(circuit, &circuit.layout().states, lanes)
}

/// The declared value of each of `vars`, repeated for `lanes` lanes (`[var][lane]`).
fn broadcast_values(circuit: &Circuit, vars: &[VarId], lanes: usize) -> Vec<f64> {
    vars.iter()
        .flat_map(|v| std::iter::repeat_n(circuit.var(*v).value, lanes))
        .collect()
}
