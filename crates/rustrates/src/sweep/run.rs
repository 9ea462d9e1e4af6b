//! Sweep execution: compile once, chunks of points, blocks of lanes on a rayon pool.
//!
//! The grid is cut into chunks of `chunk_size` points (the unit a sink persists: part files,
//! resume, shards) and each chunk into blocks of at most `block_size` lanes (the unit of
//! parallel work; smaller when a chunk has fewer points than `block_size × threads`, so small
//! sweeps still use every core). Each block builds its parameter and initial-value arrays from
//! the grid, runs [`solve::run_block`], and writes its samples straight into their final
//! place: the sink's trace array when it offers one ([`SweepSink::trace_target`], the
//! in-memory result), otherwise a per-block buffer handed to [`SweepSink::block`] (files).
//! Summaries are accumulated per lane as samples arrive. Nothing is ever sized by the whole
//! grid except what the sink chooses to keep.
//!
//! Compiling once assumes the kernel's structure is the same for every point. A gamma-chain
//! edge (`delay` with `spread`) breaks that when the grid sets its delay or spread: its
//! number of stages n = round((delay/spread)²) is structure. Points are then grouped by their
//! vector of chain lengths (one per such edge, decided as `lower_edges` decides it), and each
//! group gets its own lowered and compiled kernel; a sweep whose points all share the
//! template's chains compiles one kernel as before. A block holds points of one group of a
//! chunk, gathered from wherever they are in the chunk and delivered back to the sink as runs
//! of consecutive points. With per-point input columns or `randn` (both addressed by
//! `first_point + lane`) a block holds consecutive points only, so a grid whose
//! fastest-varying key changes n then gets narrow blocks: correct, but less vectorised.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::checks::{self, MemoryError, SettingError};
use super::grid::Grid;
use super::param_map::{self, ParamMap, ParamMapError};
use super::regime::{self, RegimeSettings};
use super::summary::{Moments, Spectrum, SpectrumPlan, Statistic};
use crate::kernel::{Backend, Kernel, KernelError, KernelOptions, Precision};
use crate::model::jacobian::{JacobianError, JacobianFn};
use crate::model::{Circuit, VarId, VarKind};
use crate::solve::{self, Block, InputBinding, OutputBinding, PointStatus, SampleSink, Signal, SimConfig, SolveError};

/// Default lanes per block (one SIMD-friendly block of structure-of-arrays lanes).
pub const DEFAULT_BLOCK_SIZE: usize = 64;
/// Default points per chunk (one part file) of a sweep that keeps traces.
pub const DEFAULT_CHUNK_SIZE: usize = 4096;
/// Default points per chunk of a summaries-only sweep. Its part files hold a few numbers per
/// point, so its chunks are sized to the work between resume points rather than to memory
/// (65,536 points of 50,000 steps are tens of seconds on one core), and a sweep of up to that
/// many points needs no part files at all: writing, hashing, merging and deleting three of
/// them took about a tenth of a 10,000-point sweep.
pub const DEFAULT_SUMMARY_CHUNK_SIZE: usize = 65_536;

/// Everything that defines a sweep (what `grid_search` and a sweep spec file carry).
#[derive(Clone, Debug)]
pub struct SweepSpec {
    pub param_grid: Grid,
    pub param_map: ParamMap,
    pub sim: SimConfig,
    /// `(node/op/var, signal)`.
    pub inputs: Vec<(String, Signal)>,
    /// `(key, node/op/var)`; node may be `all` (every node having that op/var).
    pub outputs: Vec<(String, String)>,
    pub backend: Backend,
    pub precision: Precision,
    pub keep_traces: bool,
    pub summaries: Vec<Statistic>,
    /// Thresholds of the `regime` summary (used when `summaries` asks for it).
    pub regime: RegimeSettings,
    /// Several starts per point: each entry sets initial values by state name
    /// (`node/op/var`; states it does not name keep the point's own). Every point runs once
    /// per entry; traces and statistics are those of the first, `multistable` compares the
    /// ends. Empty: one start.
    pub initial_conditions: Vec<Vec<(String, f64)>>,
    /// Worker threads (default: rayon's default, i.e. `RAYON_NUM_THREADS` or all cores),
    /// capped at the cores unless `oversubscribe`.
    pub threads: Option<usize>,
    /// Run more threads than cores when `threads` asks for them.
    pub oversubscribe: bool,
    pub block_size: usize,
    /// Points per chunk (part file). 0 = the whole grid in one chunk. [`SweepSpec::new`] sets
    /// [`DEFAULT_CHUNK_SIZE`]; fronts that learn later that only summaries are kept use
    /// [`SweepSpec::default_chunk_size`].
    pub chunk_size: usize,
}

impl SweepSpec {
    /// A spec with the defaults: traces kept, no summaries, auto backend, f64, all cores.
    pub fn new(param_grid: Grid, param_map: ParamMap, sim: SimConfig) -> SweepSpec {
        SweepSpec {
            param_grid,
            param_map,
            sim,
            inputs: Vec::new(),
            outputs: Vec::new(),
            backend: Backend::Auto,
            precision: Precision::F64,
            keep_traces: true,
            summaries: Vec::new(),
            regime: RegimeSettings::default(),
            initial_conditions: Vec::new(),
            threads: None,
            oversubscribe: false,
            block_size: DEFAULT_BLOCK_SIZE,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// The default `chunk_size` of a sweep that does (or does not) keep traces.
    pub fn default_chunk_size(keep_traces: bool) -> usize {
        if keep_traces {
            DEFAULT_CHUNK_SIZE
        } else {
            DEFAULT_SUMMARY_CHUNK_SIZE
        }
    }

    /// The chunk ranges of the grid.
    pub fn chunks(&self) -> Vec<Range<usize>> {
        let n = self.param_grid.len();
        let size = if self.chunk_size == 0 {
            n.max(1)
        } else {
            self.chunk_size
        };
        (0..n.div_ceil(size))
            .map(|c| c * size..((c + 1) * size).min(n))
            .collect()
    }

    /// The sampled times after the cutoff: t = k·dts for k = 0 … round(T/dts) − 1, t ≥ cutoff.
    pub fn sample_times(&self) -> Vec<f64> {
        let dts = self.sim.sampling_step.unwrap_or(self.sim.dt);
        let n = (self.sim.simulation_time / dts).round() as usize;
        // The solver's rule (`solve::Plan::first_emitted`): a hair of tolerance so that a
        // cutoff of 3·dts keeps sample 3 although 3·0.1 > 0.3 in floating point.
        (0..n)
            .map(|k| k as f64 * dts)
            .filter(|&t| t >= self.sim.cutoff - 1e-9 * dts)
            .collect()
    }

    /// Nominal integration steps per point, round(T/dt) (for progress and work estimates).
    pub fn steps(&self) -> u64 {
        (self.sim.simulation_time / self.sim.dt).round() as u64
    }

    /// The settings as JSON, without array data (time-series inputs appear as their shape and
    /// SHA-256): what a results file records and what the fingerprint of a sweep hashes.
    /// Threads are left out: they do not change results.
    pub fn settings_json(&self) -> serde_json::Value {
        use sha2::Digest;
        let method = match self.sim.method {
            solve::Method::Euler => serde_json::json!({"name": "euler"}),
            solve::Method::Heun => serde_json::json!({"name": "heun"}),
            solve::Method::Rk4 => serde_json::json!({"name": "rk4"}),
            solve::Method::Rk45 { rtol, atol } => {
                serde_json::json!({"name": "rk45", "rtol": rtol, "atol": atol})
            }
        };
        let digest = |data: &[f64]| {
            let mut h = sha2::Sha256::new();
            for x in data {
                h.update(x.to_le_bytes());
            }
            format!("{:x}", h.finalize())
        };
        let inputs: Vec<serde_json::Value> = self
            .inputs
            .iter()
            .map(|(name, s)| match s {
                Signal::Constant(v) => serde_json::json!({"var": name, "constant": v}),
                Signal::Shared(d) => serde_json::json!({"var": name, "steps": d.len(), "sha256": digest(d)}),
                Signal::PerPoint { points, data } => serde_json::json!({
                    "var": name, "steps": data.len() / (*points).max(1), "points": points, "sha256": digest(data)
                }),
            })
            .collect();
        let mut settings = serde_json::json!({
            "grid_keys": self.param_grid.keys(),
            "n_points": self.param_grid.len(),
            "param_map": self.param_map.to_json(),
            "simulation_time": self.sim.simulation_time,
            "step_size": self.sim.dt,
            "sampling_step_size": self.sim.sampling_step.unwrap_or(self.sim.dt),
            "cutoff": self.sim.cutoff,
            "solver": method,
            "inputs": inputs,
            "outputs": self.outputs,
            "backend": format!("{:?}", self.backend).to_lowercase(),
            "precision": format!("{:?}", self.precision).to_lowercase(),
            "keep_traces": self.keep_traces,
            "summaries": self.summaries.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "block_size": self.block_size,
            "chunk_size": self.chunk_size,
        });
        // Only sweeps that classify regimes record the thresholds (and the codes), so the
        // fingerprints of every other sweep stay what they were.
        if self.summaries.iter().any(|s| s.needs_regime()) {
            settings["regime"] = serde_json::json!({
                "thresholds": self.regime,
                "codes": regime::Regime::codes_json(),
            });
        }
        if !self.initial_conditions.is_empty() {
            settings["initial_conditions"] = self
                .initial_conditions
                .iter()
                .map(|start| {
                    start
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                        .collect::<serde_json::Map<_, _>>()
                })
                .collect::<Vec<_>>()
                .into();
        }
        settings
    }
}

/// Run one n-th of the chunks: those with `chunk_index % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Points finished, including chunks skipped because a previous run finished them.
    pub points_done: usize,
    pub points_total: usize,
    /// Lane-steps computed in this run (points × nominal steps).
    pub lane_steps: u64,
}

/// How a run is driven, as opposed to what it computes.
#[derive(Clone, Copy, Default)]
pub struct RunControl<'a> {
    /// Checked between blocks; when set, the run stops with [`SweepError::Cancelled`] and the
    /// chunk in progress is not reported finished.
    pub cancel: Option<&'a AtomicBool>,
    /// Called after every block (from worker threads).
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    pub shard: Option<Shard>,
    /// Replaces [`solve::run_block`] when set.
    pub solver: Option<&'a BlockSolver<'a>>,
}

/// What the sink learns before the first block.
#[derive(Clone, Debug)]
pub struct SweepMeta<'a> {
    pub circuit_name: &'a str,
    pub grid: &'a Grid,
    pub time: &'a [f64],
    /// `(node, output key)` per column, PyRates' DataFrame columns without the label level.
    pub columns: &'a [(String, String)],
    pub summaries: &'a [Statistic],
    pub keep_traces: bool,
    pub chunks: &'a [Range<usize>],
    pub block_size: usize,
    pub spec: &'a SweepSpec,
}

/// The outputs of one finished block.
#[derive(Debug)]
pub struct BlockOutput<'a> {
    pub first_point: usize,
    pub lanes: usize,
    /// `[lane][time][column]`; `None` when traces are not kept or were written into the
    /// sink's [`SweepSink::trace_target`].
    pub traces: Option<&'a [f64]>,
    /// `[statistic][lane][column]`, statistics in the spec's order.
    pub summaries: &'a [f64],
    pub status: &'a [PointStatus],
}

/// Receives a sweep's results as they are produced.
pub trait SweepSink: Send {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError>;
    /// Whether chunk `index` must be computed (false: a previous run already has it).
    fn begin_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<bool, SweepError> {
        Ok(true)
    }
    /// A `[point][time][column]` array for the points `range` that blocks write straight
    /// into, when the sink keeps traces in memory.
    fn trace_target(&mut self, _range: Range<usize>) -> Option<&mut [f64]> {
        None
    }
    /// Whether the sink keeps every point's traces in memory (then a sweep's traces must fit
    /// in memory as a whole, not only a block of them per thread).
    fn holds_traces_in_memory(&self) -> bool {
        false
    }
    /// Called once per block, in completion order (not point order).
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError>;
    /// For the chunk just begun: a handler the worker threads give their blocks to directly,
    /// in parallel, instead of [`SweepSink::block`] one at a time (a file sink encodes its
    /// chunks there and queues them for its writer thread).
    fn block_handler(&mut self) -> Option<Arc<dyn BlockHandler>> {
        None
    }
    /// Every block of chunk `index` has been delivered.
    fn end_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<(), SweepError> {
        Ok(())
    }
    /// The run finished (all chunks it was asked for).
    fn finish(&mut self) -> Result<(), SweepError> {
        Ok(())
    }
}

/// Takes blocks from several worker threads at once (see [`SweepSink::block_handler`]).
pub trait BlockHandler: Send + Sync {
    /// Called once per block, on the worker thread that computed it.
    fn block(&self, out: BlockOutput<'_>) -> Result<(), SweepError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Grid(#[from] super::grid::GridError),
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
    /// The `regime` summary needs the Jacobian, and the circuit has none.
    #[error("summary `regime`: {0}")]
    Jacobian(#[from] JacobianError),
}

fn suggestion_text(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default()
}

/// What a finished run did.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSummary {
    pub points_run: usize,
    pub points_skipped: usize,
    pub chunks_run: usize,
    pub chunks_skipped: usize,
    pub lane_steps: u64,
    /// Points whose status is not ok.
    pub points_failed: usize,
    pub backend: Backend,
    /// What the user should know about the run that is not an error (a thread count capped,
    /// a corrupt part set aside and recomputed, a folder kept because it holds other files).
    pub notes: Vec<String>,
}

/// Summaries kept in memory: `values[statistic][point * n_columns + column]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Summaries {
    pub stats: Vec<Statistic>,
    pub values: Vec<Vec<f64>>,
}

/// A sweep's results in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    pub circuit_name: String,
    pub labels: Vec<String>,
    pub grid_keys: Vec<String>,
    /// Per key, in point order.
    pub grid_values: Vec<Vec<f64>>,
    pub time: Vec<f64>,
    /// `(node, output key)`.
    pub columns: Vec<(String, String)>,
    /// `[point][time][column]`.
    pub traces: Option<Vec<f64>>,
    pub summaries: Option<Summaries>,
    pub status: Vec<PointStatus>,
}

impl SweepResult {
    /// PyRates' result DataFrame columns: `(label, node, output key)`, point-major.
    pub fn dataframe_columns(&self) -> Vec<(String, String, String)> {
        self.labels
            .iter()
            .flat_map(|l| self.columns.iter().map(move |(n, k)| (l.clone(), n.clone(), k.clone())))
            .collect()
    }
    /// The trace of one point and column.
    pub fn trace(&self, point: usize, column: usize) -> Option<Vec<f64>> {
        let tr = self.traces.as_ref()?;
        let (nt, nc) = (self.time.len(), self.columns.len());
        Some((0..nt).map(|i| tr[(point * nt + i) * nc + column]).collect())
    }
    /// One summary of one point and column.
    pub fn summary(&self, stat: Statistic, point: usize, column: usize) -> Option<f64> {
        let s = self.summaries.as_ref()?;
        let i = s.stats.iter().position(|&x| x == stat)?;
        Some(s.values[i][point * self.columns.len() + column])
    }
}

/// Keeps everything in memory; [`MemorySink::into_result`] gives the [`SweepResult`].
#[derive(Debug, Default)]
pub struct MemorySink {
    result: Option<SweepResult>,
}

impl MemorySink {
    pub fn new() -> MemorySink {
        MemorySink::default()
    }
    pub fn into_result(self) -> Option<SweepResult> {
        self.result
    }
}

impl SweepSink for MemorySink {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError> {
        let n = meta.grid.len();
        let nc = meta.columns.len();
        self.result = Some(SweepResult {
            circuit_name: meta.circuit_name.to_string(),
            labels: meta.grid.labels(meta.circuit_name),
            grid_keys: meta.grid.keys().to_vec(),
            grid_values: meta.grid.columns().to_vec(),
            time: meta.time.to_vec(),
            columns: meta.columns.to_vec(),
            traces: meta.keep_traces.then(|| vec![f64::NAN; n * meta.time.len() * nc]),
            summaries: (!meta.summaries.is_empty()).then(|| Summaries {
                stats: meta.summaries.to_vec(),
                values: vec![vec![f64::NAN; n * nc]; meta.summaries.len()],
            }),
            status: vec![PointStatus::Ok; n],
        });
        Ok(())
    }
    fn holds_traces_in_memory(&self) -> bool {
        true
    }
    fn trace_target(&mut self, range: Range<usize>) -> Option<&mut [f64]> {
        let r = self.result.as_mut()?;
        let per_point = r.time.len() * r.columns.len();
        r.traces
            .as_mut()
            .map(|t| &mut t[range.start * per_point..range.end * per_point])
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        let r = self.result.as_mut().expect("begin is called before any block");
        let nc = r.columns.len();
        let p0 = out.first_point;
        r.status[p0..p0 + out.lanes].copy_from_slice(out.status);
        if let (Some(dst), Some(src)) = (r.traces.as_mut(), out.traces) {
            let per_point = r.time.len() * nc;
            dst[p0 * per_point..(p0 + out.lanes) * per_point].copy_from_slice(src);
        }
        if let Some(s) = r.summaries.as_mut() {
            let block = out.lanes * nc;
            for (i, vals) in s.values.iter_mut().enumerate() {
                vals[p0 * nc..(p0 + out.lanes) * nc].copy_from_slice(&out.summaries[i * block..(i + 1) * block]);
            }
        }
        Ok(())
    }
}

/// The signature of [`solve::run_block`]; [`RunControl::solver`] may substitute another
/// (instrumentation, or tests of the sweep machinery on its own).
pub type BlockSolver<'s> = dyn Fn(
        &Kernel,
        &SimConfig,
        &[InputBinding],
        &[OutputBinding],
        Block<'_>,
        &mut dyn SampleSink,
    ) -> Result<Vec<PointStatus>, SolveError>
    + Sync
    + 's;

/// Runs a sweep of the unlowered `circuit` into `sink`.
pub fn run(spec: &SweepSpec, circuit: &Circuit, sink: &mut dyn SweepSink) -> Result<SweepSummary, SweepError> {
    run_with(spec, circuit, sink, RunControl::default())
}

/// [`run`] with cancellation, progress and sharding.
pub fn run_with(
    spec: &SweepSpec,
    circuit: &Circuit,
    sink: &mut dyn SweepSink,
    ctrl: RunControl<'_>,
) -> Result<SweepSummary, SweepError> {
    let solver: &BlockSolver<'_> = ctrl.solver.unwrap_or(&solve::run_block);
    run_inner(spec, circuit, sink, ctrl, solver)
}

/// Where a grid key's value goes in a block.
#[derive(Clone, Copy, Debug)]
enum Target {
    Param(usize),
    Init(usize),
}

/// What depends on the compiled kernel: one per distinct gamma-chain structure.
struct GroupPlan {
    kernel: Kernel,
    inputs: Vec<InputBinding>,
    outputs: Vec<OutputBinding>,
    /// Defaults per slot.
    params: Vec<f64>,
    init: Vec<f64>,
    /// Per grid key, its targets.
    targets: Vec<Vec<Target>>,
    /// The compiled Jacobian, when the sweep classifies regimes (then `outputs` ends with one
    /// binding per state, after the columns, so the final state reaches the collector).
    jacobian: Option<JacobianFn>,
    /// Per start of `initial_conditions`: `(state slot, value)` overrides of the initial
    /// values; empty for one start.
    starts: Vec<Vec<(usize, f64)>>,
}

/// Everything a block needs, built once per sweep.
struct Plan<'a> {
    spec: &'a SweepSpec,
    /// One kernel per distinct gamma-chain structure among the grid points; almost always one.
    groups: Vec<GroupPlan>,
    /// Group per grid point; `None` when there is a single group.
    group_of: Option<Vec<u32>>,
    /// Whether a block may hold any points of one group rather than consecutive ones: only
    /// when nothing the solver does depends on a lane's grid index (no per-point input
    /// columns, no `randn`, whose streams are seeded by `first_point + lane`).
    gather: bool,
    /// `(node, key)` per output binding.
    columns: Vec<(String, String)>,
    n_time: usize,
    /// Sample times after the cutoff.
    time: Vec<f64>,
    n_cols: usize,
    dts: f64,
    fft: Option<SpectrumPlan>,
    buffer_traces: bool,
    /// Whether the sweep classifies regimes.
    regime: bool,
}

/// Stack of the thread that lowers and compiles a sweep's kernels. The back ends walk
/// expression trees recursively, one frame per level, and a tree may be as deep as the
/// parser's [`crate::syntax::parser::MAX_TREE_HEIGHT`]: with the C emitter's frames (several
/// KiB in a debug build) that is more than a caller's 2 or 8 MiB. Only the pages touched are
/// committed, so the reservation costs nothing when trees are shallow.
const COMPILE_STACK: usize = 256 << 20;

/// Runs `f` on a thread with [`COMPILE_STACK`] (in place when such a thread cannot be made).
fn on_compile_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let slot = Mutex::new(Some(f));
    let take = || slot.lock().ok().and_then(|mut g| g.take());
    let spawned = std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("rustrates-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn_scoped(s, || take().map(|f| f()))
            .ok()?;
        Some(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    match spawned.flatten() {
        Some(v) => v,
        None => (take().expect("not run when the thread could not be made"))(),
    }
}

/// Lowers edges into assignments (the kernel only takes edge-free circuits).
fn lower(circuit: &Circuit) -> Circuit {
    if circuit.edges.is_empty() {
        circuit.clone()
    } else {
        crate::model::passes::lower_edges(circuit)
    }
}

/// `(node, output key)`.
type Column = (String, String);

/// The output columns a sweep of `circuit` will have (`all` expanded), in order, without
/// running it: PyRates' DataFrame columns are `(label, node, key)` for each label.
pub fn output_columns(spec: &SweepSpec, circuit: &Circuit) -> Result<Vec<Column>, SweepError> {
    Ok(resolve_outputs(spec, &lower(circuit))?.0)
}

/// Everything about a sweep of the unlowered `circuit` that can be checked without compiling
/// or running it: time settings, grid values, `param_map`, delays, outputs and input names.
/// [`run`] makes the same checks; fronts call this first to point at the offending setting.
pub fn check(spec: &SweepSpec, circuit: &Circuit) -> Result<(), SweepError> {
    let mut problems = checks::check_time(spec);
    problems.extend(checks::check_grid(spec));
    problems.extend(checks::check_regime(spec));
    if !problems.is_empty() {
        return Err(SweepError::Settings(problems));
    }
    let resolved = param_map::resolve(&spec.param_map, spec.param_grid.keys(), circuit)?;
    check_timing_keys(spec, circuit, &resolved)?;
    let lowered = lower(circuit);
    resolve_outputs(spec, &lowered)?;
    for (name, _) in &spec.inputs {
        input_var(&lowered, name)?;
    }
    Ok(())
}

/// Grid keys that set an edge's delay or spread must hold times ≥ 0.
fn check_timing_keys(spec: &SweepSpec, circuit: &Circuit, resolved: &param_map::ResolvedMap) -> Result<(), SweepError> {
    let timing: Vec<VarId> = circuit
        .edges
        .iter()
        .flat_map(|e| {
            e.params
                .iter()
                .filter(|(n, _)| n == "delay" || n == "spread")
                .map(|(_, id)| *id)
        })
        .collect();
    let sets_timing: Vec<bool> = resolved
        .keys
        .iter()
        .map(|(_, ids)| ids.iter().any(|id| timing.contains(id)))
        .collect();
    let problems = checks::check_delays(spec, &sets_timing);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SweepError::Settings(problems))
    }
}

/// Expands outputs (`all` nodes) into columns and bindings.
fn resolve_outputs(spec: &SweepSpec, c: &Circuit) -> Result<(Vec<Column>, Vec<OutputBinding>), SweepError> {
    if spec.outputs.is_empty() {
        return Err(SweepError::NoOutputs);
    }
    let mut columns = Vec::new();
    let mut bindings = Vec::new();
    // A complex variable is two columns, `key.real` and `key.imag` (its IR parts).
    let find = |path: &str| -> Vec<(&'static str, VarId)> {
        match (c.find_var(path), c.find_complex(path)) {
            (Some(id), _) => vec![("", id)],
            (None, Some(z)) => vec![(".real", z.re), (".imag", z.im)],
            (None, None) => Vec::new(),
        }
    };
    for (key, path) in &spec.outputs {
        let found: Vec<(String, &str, VarId)> = match path.strip_prefix("all/") {
            Some(rest) => c
                .nodes
                .iter()
                .flat_map(|n| {
                    find(&format!("{n}/{rest}"))
                        .into_iter()
                        .map(move |(p, id)| (n.clone(), p, id))
                })
                .collect(),
            None => find(path)
                .into_iter()
                .map(|(part, id)| {
                    let node = c.var(id).node.clone().unwrap_or_else(|| node_of(path).to_string());
                    (node, part, id)
                })
                .collect(),
        };
        if found.is_empty() {
            return Err(SweepError::UnknownOutput {
                key: key.clone(),
                path: path.clone(),
                suggestion: param_map::closest(path, c.vars.iter().map(|v| v.name.as_str())),
            });
        }
        for (node, part, var) in found {
            let key = format!("{key}{part}");
            columns.push((node, key.clone()));
            bindings.push(OutputBinding { key, var });
        }
    }
    Ok((columns, bindings))
}

/// `node` of `node/op/var` (the node path may itself contain slashes).
fn node_of(path: &str) -> &str {
    let mut parts = path.rsplitn(3, '/');
    let _var = parts.next();
    let _op = parts.next();
    parts.next().unwrap_or(path)
}

/// The variable an input name drives in the lowered circuit.
fn input_var(c: &Circuit, name: &str) -> Result<VarId, SweepError> {
    let Some(id) = c.find_var(name) else {
        // A complex input is driven part by part (`name.real`, `name.imag`).
        let complex_part = c.find_complex(name).map(|z| c.var(z.re).name.clone());
        return Err(SweepError::UnknownInput {
            name: name.to_string(),
            suggestion: complex_part.or_else(|| {
                param_map::closest(
                    name,
                    c.vars
                        .iter()
                        .filter(|v| v.kind == VarKind::Input)
                        .map(|v| v.name.as_str()),
                )
            }),
        });
    };
    let v = c.var(id);
    match (v.kind, v.external_input) {
        (VarKind::Input, _) => Ok(id),
        (VarKind::Algebraic, Some(ext)) => Ok(ext),
        (kind, _) => Err(SweepError::NotAnInput {
            name: name.to_string(),
            kind,
        }),
    }
}

/// The structure lowering gives one gamma-chain edge: `Some(n)` stages, or `None` for a
/// discrete delay (a delay that is not positive), exactly as `lower_edges` decides.
type ChainShape = Option<usize>;

fn chain_shape(delay: f64, spread: f64) -> ChainShape {
    (delay > 0.0).then(|| crate::model::passes::lower_edges::chain_len(delay, spread))
}

/// Edges with a spread whose delay or spread some grid key sets: `(delay var, spread var)`.
fn swept_chain_edges(circuit: &Circuit, resolved: &param_map::ResolvedMap) -> Vec<(VarId, VarId)> {
    let swept = |v: VarId| resolved.keys.iter().any(|(_, ids)| ids.contains(&v));
    circuit
        .edges
        .iter()
        .filter_map(|e| {
            let param = |k: &str| e.params.iter().find(|(n, _)| n == k).map(|(_, id)| *id);
            match (param("delay"), param("spread")) {
                (Some(d), Some(s)) if swept(d) || swept(s) => Some((d, s)),
                _ => None,
            }
        })
        .collect()
}

/// Groups the grid points by their chain structure. Returns, per group, a representative
/// point (`None` for the template's own values) and the group of every point (`None` when
/// there is one group). Groups are numbered by first appearance, the template's own
/// structure first when a point has it.
fn group_points(
    spec: &SweepSpec,
    circuit: &Circuit,
    resolved: &param_map::ResolvedMap,
    edges: &[(VarId, VarId)],
) -> (Vec<Option<usize>>, Option<Vec<u32>>) {
    if edges.is_empty() {
        return (vec![None], None);
    }
    let grid = &spec.param_grid;
    // Per chain variable, the grid key that sets it last (later keys win, as in a block).
    let key_of = |v: VarId| resolved.keys.iter().rposition(|(_, ids)| ids.contains(&v));
    let sources: Vec<(Option<usize>, Option<usize>)> = edges.iter().map(|&(d, s)| (key_of(d), key_of(s))).collect();
    let value = |v: VarId, key: Option<usize>, p: usize| key.map_or(circuit.var(v).value, |k| grid.column(k)[p]);
    let default: Vec<ChainShape> = edges
        .iter()
        .map(|&(d, s)| chain_shape(circuit.var(d).value, circuit.var(s).value))
        .collect();
    let mut shapes: std::collections::HashMap<Vec<ChainShape>, usize> = [(default, 0)].into_iter().collect();
    let mut reps: Vec<Option<usize>> = vec![None];
    let mut used_default = false;
    let mut group_of = Vec::with_capacity(grid.len());
    let mut shape = Vec::with_capacity(edges.len());
    for p in 0..grid.len() {
        shape.clear();
        shape.extend(
            edges
                .iter()
                .zip(&sources)
                .map(|(&(d, s), &(kd, ks))| chain_shape(value(d, kd, p), value(s, ks, p))),
        );
        let g = match shapes.get(&shape) {
            Some(&g) => g,
            None => {
                shapes.insert(shape.clone(), reps.len());
                reps.push(Some(p));
                reps.len() - 1
            }
        };
        used_default |= g == 0;
        group_of.push(g as u32);
    }
    if !used_default {
        // No point has the template's structure: do not compile a kernel for it.
        reps.remove(0);
        for g in &mut group_of {
            *g -= 1;
        }
    }
    if reps.len() == 1 {
        return (reps, None);
    }
    (reps, Some(group_of))
}

fn build_plan<'a>(spec: &'a SweepSpec, circuit: &Circuit) -> Result<Plan<'a>, SweepError> {
    if spec.block_size == 0 {
        return Err(SweepError::BadBlockSize);
    }
    let resolved = param_map::resolve(&spec.param_map, spec.param_grid.keys(), circuit)?;
    check_timing_keys(spec, circuit, &resolved)?;
    let names = resolved.names(circuit);
    let chain_edges = swept_chain_edges(circuit, &resolved);
    let (reps, group_of) = group_points(spec, circuit, &resolved, &chain_edges);
    let mut groups = Vec::with_capacity(reps.len());
    let mut columns = Vec::new();
    for rep in reps {
        // The circuit with the representative point's delays and spreads written in, so that
        // lowering builds that point's chains; the per-lane values still set each k.
        let template = match rep {
            None => std::borrow::Cow::Borrowed(circuit),
            Some(p) => {
                let mut c = circuit.clone();
                for (k, (_, ids)) in resolved.keys.iter().enumerate() {
                    for &id in ids {
                        if chain_edges.iter().any(|&(d, s)| d == id || s == id) {
                            c.vars[id.0 as usize].value = spec.param_grid.column(k)[p];
                        }
                    }
                }
                std::borrow::Cow::Owned(c)
            }
        };
        let (group, cols) = build_group(spec, &template, &names)?;
        columns = cols;
        groups.push(group);
    }
    let time_plan = solve::Plan::new(&spec.sim)?;
    let time: Vec<f64> = (time_plan.first_emitted()..time_plan.samples)
        .map(|k| time_plan.sample_time(k))
        .collect();
    let n_time = time.len();
    let needs_fft = spec.summaries.iter().any(|s| s.needs_fft());
    let needs_regime = spec.summaries.iter().any(|s| s.needs_regime());
    let per_point_inputs = spec.inputs.iter().any(|(_, s)| matches!(s, Signal::PerPoint { .. }));
    let noise = groups.iter().any(|g| {
        g.kernel
            .circuit()
            .exprs
            .iter()
            .any(|e| matches!(e, crate::model::Expr::Randn))
    });
    Ok(Plan {
        spec,
        groups,
        gather: group_of.is_some() && !per_point_inputs && !noise,
        group_of,
        n_cols: columns.len(),
        columns,
        n_time,
        time,
        dts: spec.sim.sampling_step.unwrap_or(spec.sim.dt),
        // Fewer than two samples have no spectrum: those statistics stay NaN.
        fft: (needs_fft && n_time >= 2).then(|| Spectrum::plan(n_time)),
        buffer_traces: spec.keep_traces || needs_fft || needs_regime,
        regime: needs_regime,
    })
}

/// Lowers and compiles `circuit` (unlowered, with one group's chain values) and binds the
/// swept variables `names`, inputs and outputs to its layout.
fn build_group(
    spec: &SweepSpec,
    circuit: &Circuit,
    names: &[(String, Vec<String>)],
) -> Result<(GroupPlan, Vec<Column>), SweepError> {
    let mut lowered = lower(circuit);

    // Swept variables by name in the lowered circuit; inputs that a key sets per lane become
    // parameters (an undriven input is a constant per lane, which is what a parameter is).
    let mut swept: Vec<Vec<VarId>> = Vec::with_capacity(names.len());
    for (key, vars) in names {
        let mut ids = Vec::with_capacity(vars.len());
        for name in vars {
            let Some(mut id) = lowered.find_var(name) else {
                return Err(ParamMapError::PathNotFound {
                    key: key.clone(),
                    path: name.clone(),
                    suggestion: None,
                }
                .into());
            };
            if let (VarKind::Algebraic, Some(ext)) = (lowered.var(id).kind, lowered.var(id).external_input) {
                id = ext;
            }
            ids.push(id);
        }
        swept.push(ids);
    }
    let mut inputs = Vec::with_capacity(spec.inputs.len());
    for (name, signal) in &spec.inputs {
        let var = input_var(&lowered, name)?;
        if let Some(k) = swept.iter().position(|ids| ids.contains(&var)) {
            return Err(SweepError::InputSweptAndDriven {
                name: name.clone(),
                key: names[k].0.clone(),
            });
        }
        inputs.push(InputBinding {
            var,
            signal: signal.clone(),
        });
    }
    for ids in &swept {
        for &id in ids {
            let v = &mut lowered.vars[id.0 as usize];
            if v.kind == VarKind::Input {
                v.kind = VarKind::Param;
            }
        }
    }
    let (columns, mut outputs) = resolve_outputs(spec, &lowered)?;
    let layout = lowered.layout();
    // A gamma chain starts at its source's initial value, so a key that sets that initial
    // value sets the chain's too (as lowering the edited template would).
    let chains: Vec<(VarId, Vec<VarId>)> = circuit
        .edges
        .iter()
        .filter_map(|e| {
            let (_, d) = e.params.iter().find(|(n, _)| n == "delay")?;
            let base = circuit.var(*d).name.trim_end_matches("/delay").to_string();
            let stages: Vec<VarId> = (1..).map_while(|i| lowered.find_var(&format!("{base}/z{i}"))).collect();
            let source = lowered.find_var(&circuit.var(e.source).name)?;
            (!stages.is_empty()).then_some((source, stages))
        })
        .collect();
    let targets = swept
        .iter()
        .map(|ids| {
            let mut t = Vec::with_capacity(ids.len());
            for &id in ids {
                let slot = layout.slot[id.0 as usize] as usize;
                if lowered.var(id).kind != VarKind::State {
                    t.push(Target::Param(slot));
                    continue;
                }
                t.push(Target::Init(slot));
                for (_, stages) in chains.iter().filter(|(src, _)| *src == id) {
                    t.extend(stages.iter().map(|z| Target::Init(layout.slot[z.0 as usize] as usize)));
                }
            }
            t
        })
        .collect();
    let params = layout.params.iter().map(|&id| lowered.var(id).value).collect();
    let init = layout.states.iter().map(|&id| lowered.var(id).value).collect();
    let work = spec.param_grid.len() as f64 * spec.steps() as f64;
    // Parameters no grid key sets are the same in every lane: compiling them in as constants
    // lets the back ends fold them (≈ 1.9× faster on the reference sweep). Swept parameters
    // stay per-lane data; the layout and buffers do not change.
    let per_lane: Vec<crate::model::VarId> = swept.iter().flatten().copied().collect();
    let compiled = crate::model::passes::specialize_params(&lowered, &per_lane);
    let kernel = Kernel::compile(
        &compiled,
        &KernelOptions {
            backend: spec.backend,
            precision: spec.precision,
            work_hint: work,
            cache_dir: None,
        },
    )?;
    let mut starts = Vec::with_capacity(spec.initial_conditions.len());
    for (k, start) in spec.initial_conditions.iter().enumerate() {
        let mut overrides = Vec::with_capacity(start.len());
        for (name, value) in start {
            let id = lowered
                .find_var(name)
                .filter(|&id| lowered.var(id).kind == VarKind::State);
            let Some(id) = id else {
                return Err(SweepError::InitialCondition {
                    start: k,
                    name: name.clone(),
                    suggestion: param_map::closest(name, layout.states.iter().map(|&s| lowered.var(s).name.as_str())),
                });
            };
            overrides.push((layout.slot[id.0 as usize] as usize, *value));
        }
        starts.push(overrides);
    }
    let jacobian = if spec.summaries.iter().any(|s| s.needs_regime()) {
        let jac = crate::model::jacobian::jacobian(&compiled)?;
        outputs.extend(layout.states.iter().map(|&var| OutputBinding {
            key: String::new(),
            var,
        }));
        Some(JacobianFn::new(
            &jac,
            &KernelOptions {
                backend: Backend::Reference,
                ..KernelOptions::default()
            },
        )?)
    } else {
        None
    };
    // The solver's own time grid and the inputs, checked here so that bad settings or inputs
    // fail before any sink is touched.
    solve::Plan::new(&spec.sim)?;
    solve::validate_inputs(&kernel, &spec.sim, &inputs, spec.param_grid.len())?;
    Ok((
        GroupPlan {
            kernel,
            inputs,
            outputs,
            params,
            init,
            targets,
            jacobian,
            starts,
        },
        columns,
    ))
}

/// Collects one block's samples: into the trace array (`[lane][time][column]`) and into
/// per-lane moments.
struct BlockCollector<'b> {
    traces: Option<&'b mut [f64]>,
    /// Per `(column, lane)`, in the solver's `[column][lane]` order.
    moments: Option<Moments>,
    n_time: usize,
    n_cols: usize,
    samples_seen: usize,
    overflow: bool,
    /// `[state][lane]` at the last sample, when regimes are classified (the bindings after
    /// the columns).
    final_state: Option<Vec<f64>>,
    /// `[time][column][lane]`: the samples for the regime when no traces are buffered.
    by_sample: Option<Vec<f64>>,
}

impl SampleSink for BlockCollector<'_> {
    fn samples(&mut self, index: usize, _t: f64, lanes: usize, values: &[f64]) {
        if index >= self.n_time {
            self.overflow = true;
            return;
        }
        self.samples_seen = self.samples_seen.max(index + 1);
        let (nt, nc) = (self.n_time, self.n_cols);
        if let Some(tr) = self.traces.as_deref_mut() {
            for c in 0..nc {
                for lane in 0..lanes {
                    tr[(lane * nt + index) * nc + c] = values[c * lanes + lane];
                }
            }
        }
        if let Some(m) = self.moments.as_mut() {
            m.push(&values[..nc * lanes]);
        }
        if let Some(bs) = self.by_sample.as_mut() {
            bs[index * nc * lanes..(index + 1) * nc * lanes].copy_from_slice(&values[..nc * lanes]);
        }
        if let (Some(fs), true) = (self.final_state.as_mut(), index + 1 == nt) {
            let len = fs.len();
            fs.copy_from_slice(&values[nc * lanes..nc * lanes + len]);
        }
    }
}

/// The grid points of a block.
#[derive(Clone, Debug, PartialEq)]
enum Lanes {
    /// `first..first + n`.
    Run(usize, usize),
    /// Points of one group in increasing order, not necessarily consecutive.
    Gathered(Vec<usize>),
}

impl Lanes {
    fn first(&self) -> usize {
        match self {
            Lanes::Run(first, _) => *first,
            Lanes::Gathered(p) => p[0],
        }
    }
    fn len(&self) -> usize {
        match self {
            Lanes::Run(_, n) => *n,
            Lanes::Gathered(p) => p.len(),
        }
    }
}

/// A block's own results (traces only when not written into a sink-owned target).
struct BlockData {
    first_point: usize,
    lanes: usize,
    /// The points of a gathered block, lane by lane.
    points: Option<Vec<usize>>,
    traces: Option<Vec<f64>>,
    summaries: Vec<f64>,
    status: Vec<PointStatus>,
}

impl Plan<'_> {
    fn group_at(&self, point: usize) -> usize {
        self.group_of.as_ref().map_or(0, |g| g[point] as usize)
    }

    /// The blocks of a chunk, at most `lanes` points of one group each: the points of each
    /// group gathered when [`Plan::gather`] allows, else runs of consecutive points (the
    /// solver addresses per-point input columns and noise seeds by `first_point + lane`).
    fn blocks(&self, range: Range<usize>, lanes: usize) -> Vec<Lanes> {
        if let (true, Some(of)) = (self.gather, &self.group_of) {
            let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); self.groups.len()];
            for p in range {
                by_group[of[p] as usize].push(p);
            }
            return by_group
                .iter()
                .flat_map(|points| points.chunks(lanes).map(|c| Lanes::Gathered(c.to_vec())))
                .collect();
        }
        let mut out = Vec::new();
        let mut first = range.start;
        while first < range.end {
            let g = self.group_at(first);
            let mut end = (first + lanes).min(range.end);
            if let Some(of) = &self.group_of {
                end = first + 1 + of[first + 1..end].iter().take_while(|&&x| x as usize == g).count();
            }
            out.push(Lanes::Run(first, end - first));
            first = end;
        }
        out
    }

    /// Runs the points of `block`; `target` is where traces go if the sink owns the array.
    fn run_block(
        &self,
        block: &Lanes,
        target: Option<&mut [f64]>,
        runner: &BlockSolver<'_>,
    ) -> Result<BlockData, SweepError> {
        let grid = &self.spec.param_grid;
        let (first, lanes) = (block.first(), block.len());
        let g = &self.groups[self.group_at(first)];
        let mut params = Vec::with_capacity(g.params.len() * lanes);
        for &v in &g.params {
            params.extend(std::iter::repeat_n(v, lanes));
        }
        let mut init = Vec::with_capacity(g.init.len() * lanes);
        for &v in &g.init {
            init.extend(std::iter::repeat_n(v, lanes));
        }
        for (key, targets) in g.targets.iter().enumerate() {
            let column = grid.column(key);
            for t in targets {
                let (dst, slot) = match *t {
                    Target::Param(s) => (&mut params, s),
                    Target::Init(s) => (&mut init, s),
                };
                let dst = &mut dst[slot * lanes..(slot + 1) * lanes];
                match block {
                    Lanes::Run(..) => dst.copy_from_slice(&column[first..first + lanes]),
                    Lanes::Gathered(points) => {
                        for (d, &p) in dst.iter_mut().zip(points) {
                            *d = column[p];
                        }
                    }
                }
            }
        }
        if g.starts.is_empty() {
            return Ok(self.solve_lanes(g, block, lanes, &params, &init, target, runner)?.0);
        }
        // Several starts: the same lanes once per start (so a point keeps its grid index for
        // the solver), the first start's traces and statistics reported, the ends compared.
        let mut target = target;
        let mut first_run: Option<BlockData> = None;
        let mut ends = Vec::with_capacity(g.starts.len());
        for start in &g.starts {
            let mut init_k = init.clone();
            for &(slot, value) in start {
                init_k[slot * lanes..(slot + 1) * lanes].fill(value);
            }
            let (data, end) = self.solve_lanes(g, block, lanes, &params, &init_k, target.take(), runner)?;
            ends.push(end);
            first_run.get_or_insert(data);
        }
        let mut data = first_run.expect("at least one start");
        let nc = self.n_cols;
        if let Some(si) = self.spec.summaries.iter().position(|s| *s == Statistic::Multistable) {
            for lane in 0..lanes {
                let flag = regime::multistable(
                    ends.iter().filter_map(|e| e.as_ref()).map(|e| e.attractor(lane)),
                    &self.spec.regime,
                );
                let value = if data.status[lane] == PointStatus::Ok {
                    flag.map_or(f64::NAN, |f| f64::from(u8::from(f)))
                } else {
                    f64::NAN
                };
                data.summaries[(si * lanes + lane) * nc..(si * lanes + lane + 1) * nc].fill(value);
            }
        }
        Ok(data)
    }

    /// Solves the lanes of `block` from `init` and computes their statistics; also returns
    /// the regime ends (state at the last sample and classification) when regimes are
    /// classified.
    #[allow(clippy::too_many_arguments)]
    fn solve_lanes(
        &self,
        g: &GroupPlan,
        block: &Lanes,
        lanes: usize,
        params: &[f64],
        init: &[f64],
        target: Option<&mut [f64]>,
        runner: &BlockSolver<'_>,
    ) -> Result<(BlockData, Option<LaneEnds>), SweepError> {
        let first = block.first();
        let per_lane = self.n_time * self.n_cols;
        let has_target = target.is_some();
        let needs_fft = self.spec.summaries.iter().any(|s| s.needs_fft());
        let mut own = if !has_target && (self.spec.keep_traces || needs_fft) {
            Some(vec![f64::NAN; lanes * per_lane])
        } else {
            None
        };
        // The regime's period detection alone reads the samples in the solver's order
        // (`[time][column][lane]`: one contiguous copy per sample) rather than transposed
        // into the `[lane][time][column]` of kept traces.
        let by_sample = (self.regime && !has_target && own.is_none()).then(|| vec![f64::NAN; per_lane * lanes]);
        let traces = match target {
            Some(t) => Some(t),
            None => own.as_deref_mut(),
        };
        let moment_stats = self.spec.summaries.iter().any(|s| !s.needs_fft());
        let mut collector = BlockCollector {
            traces,
            moments: moment_stats.then(|| Moments::new(self.n_cols * lanes)),
            n_time: self.n_time,
            n_cols: self.n_cols,
            samples_seen: 0,
            overflow: false,
            final_state: g.jacobian.as_ref().map(|j| vec![f64::NAN; j.n() * lanes]),
            by_sample,
        };
        let lanes_in = Block {
            first_point: first,
            lanes,
            params,
            init,
        };
        let status = runner(
            &g.kernel,
            &self.spec.sim,
            &g.inputs,
            &g.outputs,
            lanes_in,
            &mut collector,
        )?;
        if collector.overflow || collector.samples_seen != self.n_time {
            let found = if collector.overflow {
                self.n_time + 1
            } else {
                collector.samples_seen
            };
            return Err(SweepError::SampleCount {
                expected: self.n_time,
                found,
            });
        }
        let BlockCollector {
            traces,
            moments,
            final_state,
            by_sample,
            ..
        } = collector;
        let nc = self.n_cols;
        let mut summaries = vec![f64::NAN; self.spec.summaries.len() * lanes * nc];
        let mut spectrum = self.fft.clone().map(Spectrum::new);
        let mut dominant = vec![(f64::NAN, f64::NAN); if spectrum.is_some() { lanes * nc } else { 0 }];
        if let (Some(sp), Some(tr)) = (spectrum.as_mut(), traces.as_deref()) {
            for lane in 0..lanes {
                if status[lane] != PointStatus::Ok {
                    continue;
                }
                for c in 0..nc {
                    let base = lane * per_lane + c;
                    dominant[lane * nc + c] = sp.dominant(|i| tr[base + i * nc], self.dts);
                }
            }
        }
        // Each column's (min, max, mean) from the moments, so that period detection reads the
        // samples once.
        let range = |lane: usize, c: usize| match moments.as_ref() {
            Some(m) => (
                m.get(c * lanes + lane, Statistic::Min),
                m.get(c * lanes + lane, Statistic::Max),
                m.get(c * lanes + lane, Statistic::Mean),
            ),
            None => (f64::NAN, f64::NAN, f64::NAN),
        };
        let regimes = match (&g.jacobian, &final_state, traces.as_deref(), &by_sample) {
            (Some(jac), Some(y), Some(tr), _) if self.regime => Some(self.regimes(
                g,
                jac,
                first,
                y,
                params,
                lanes,
                &status,
                |lane, c, i| tr[lane * per_lane + i * nc + c],
                range,
            )),
            (Some(jac), Some(y), None, Some(bs)) if self.regime => Some(self.regimes(
                g,
                jac,
                first,
                y,
                params,
                lanes,
                &status,
                |lane, c, i| bs[(i * nc + c) * lanes + lane],
                range,
            )),
            _ => None,
        };
        for (si, &stat) in self.spec.summaries.iter().enumerate() {
            for lane in 0..lanes {
                if let (Statistic::Regime, PointStatus::NonFinite { .. } | PointStatus::StepTooSmall { .. }) =
                    (stat, status[lane])
                {
                    let code = f64::from(regime::Regime::Diverged.code());
                    summaries[(si * lanes + lane) * nc..(si * lanes + lane + 1) * nc].fill(code);
                }
                if status[lane] != PointStatus::Ok {
                    continue;
                }
                if let (true, Some(r)) = (stat.needs_regime(), regimes.as_ref()) {
                    for c in 0..nc {
                        summaries[(si * lanes + lane) * nc + c] = r.get(stat, lane, c);
                    }
                    continue;
                }
                for c in 0..nc {
                    summaries[(si * lanes + lane) * nc + c] = match stat {
                        Statistic::DomFreq => dominant.get(lane * nc + c).map_or(f64::NAN, |d| d.0),
                        Statistic::DomPower => dominant.get(lane * nc + c).map_or(f64::NAN, |d| d.1),
                        s => moments.as_ref().map_or(f64::NAN, |m| m.get(c * lanes + lane, s)),
                    };
                }
            }
        }
        let traces = if self.spec.keep_traces { own } else { None };
        let ends = match (regimes, final_state) {
            (Some(regimes), Some(y)) => Some(LaneEnds { regimes, y, lanes }),
            _ => None,
        };
        Ok((
            BlockData {
                first_point: first,
                lanes,
                points: match block {
                    Lanes::Run(..) => None,
                    Lanes::Gathered(p) => Some(p.clone()),
                },
                traces,
                summaries,
                status,
            },
            ends,
        ))
    }
}

/// Where one run of a block's lanes ended: for comparing the ends of several starts.
struct LaneEnds {
    regimes: BlockRegimes,
    /// `[state][lane]` at the last sample.
    y: Vec<f64>,
    lanes: usize,
}

impl LaneEnds {
    fn attractor(&self, lane: usize) -> regime::Attractor {
        let n = self.y.len() / self.lanes.max(1);
        let (code, _, _) = self.regimes.point[lane];
        let nc = self.regimes.nc;
        regime::Attractor {
            regime: regime::Regime::from_code(code),
            state: (0..n).map(|i| self.y[i * self.lanes + lane]).collect(),
            cycles: self.regimes.column[lane * nc..(lane + 1) * nc].to_vec(),
        }
    }
}

/// One block's regime statistics (see [`regime`]).
struct BlockRegimes {
    nc: usize,
    /// Per lane: code, leading eigenvalue (re, im).
    point: Vec<(f64, f64, f64)>,
    /// Per lane and column: period, amplitude.
    column: Vec<(f64, f64)>,
}

impl BlockRegimes {
    fn get(&self, stat: Statistic, lane: usize, c: usize) -> f64 {
        let (code, re, im) = self.point[lane];
        let (period, amplitude) = self.column[lane * self.nc + c];
        match stat {
            Statistic::Regime => code,
            Statistic::EigRe => re,
            Statistic::EigIm => im,
            Statistic::Period => period,
            Statistic::Amplitude => amplitude,
            _ => f64::NAN,
        }
    }
}

impl Plan<'_> {
    /// Classifies the lanes of a finished block: `y` is the state at the last sample
    /// (`[state][lane]`), `params` the block's parameters, `sample(lane, column, i)` the
    /// post-cutoff traces. Inputs take their value at the last sample's step.
    #[allow(clippy::too_many_arguments)]
    fn regimes(
        &self,
        g: &GroupPlan,
        jac: &JacobianFn,
        first: usize,
        y: &[f64],
        params: &[f64],
        lanes: usize,
        status: &[PointStatus],
        sample: impl Fn(usize, usize, usize) -> f64,
        range: impl Fn(usize, usize) -> (f64, f64, f64),
    ) -> BlockRegimes {
        let (n, nc, nt) = (jac.n(), self.n_cols, self.n_time);
        let settings = &self.spec.regime;
        let t_end = self.time.last().copied().unwrap_or(0.0);
        let step = (t_end / self.spec.sim.dt).round() as usize;
        let layout = g.kernel.layout();
        let mut u = Vec::with_capacity(layout.inputs.len() * lanes);
        for &var in &layout.inputs {
            let binding = g.inputs.iter().find(|b| b.var == var);
            for lane in 0..lanes {
                u.push(match binding.map(|b| &b.signal) {
                    None => g.kernel.circuit().var(var).value,
                    Some(Signal::Constant(v)) => *v,
                    Some(Signal::Shared(d)) => d[step.min(d.len().saturating_sub(1))],
                    // Per-point columns address points by `first_point + lane`: the solver's
                    // runs of consecutive points (a block with such inputs is never gathered).
                    Some(Signal::PerPoint { points, data }) => {
                        let steps = data.len() / (*points).max(1);
                        data[step.min(steps.saturating_sub(1)) * points + (first + lane)]
                    }
                });
            }
        }
        let mut dy = vec![0.0; n * lanes];
        let mut m = vec![0.0; n * n * lanes];
        jac.eval(t_end, lanes, y, params, &u, &mut dy, &mut m);
        let mut point = vec![(f64::NAN, f64::NAN, f64::NAN); lanes];
        let mut column = vec![(f64::NAN, f64::NAN); lanes * nc];
        for lane in 0..lanes {
            if status[lane] != PointStatus::Ok || nt == 0 {
                continue;
            }
            let mut cols = Vec::with_capacity(nc);
            for c in 0..nc {
                let (period, amplitude, moves) =
                    regime::periodicity_in_range(|i| sample(lane, c, i), nt, self.dts, settings, range(lane, c));
                column[lane * nc + c] = (period, amplitude);
                cols.push((period, moves));
            }
            let residual = (0..n).map(|i| dy[i * lanes + lane].abs()).fold(0.0, f64::max);
            let scale = (0..n).map(|i| y[i * lanes + lane].abs()).fold(0.0, f64::max);
            let stationary = residual <= settings.stationary_tol * (1.0 + scale);
            let leading = if stationary {
                crate::model::jacobian::eigenvalues(&m[lane * n * n..(lane + 1) * n * n], n)
                    .and_then(|e| e.first().copied())
            } else {
                None
            };
            let r = regime::classify(residual, scale, leading, &cols, settings);
            let (re, im) = match (r, leading) {
                (
                    regime::Regime::StableNode | regime::Regime::StableFocus | regime::Regime::UnstableFixedPoint,
                    Some(l),
                ) => l,
                _ => (f64::NAN, f64::NAN),
            };
            if r != regime::Regime::Periodic {
                for c in 0..nc {
                    column[lane * nc + c].0 = f64::NAN;
                }
            }
            point[lane] = (f64::from(r.code()), re, im);
        }
        BlockRegimes { nc, point, column }
    }
}

/// Hands a block's results to the sink (`emit`); `nc` is the number of columns.
fn deliver(
    mut emit: impl FnMut(BlockOutput<'_>) -> Result<(), SweepError>,
    b: &BlockData,
    nc: usize,
) -> Result<(), SweepError> {
    let Some(points) = &b.points else {
        return emit(BlockOutput {
            first_point: b.first_point,
            lanes: b.lanes,
            traces: b.traces.as_deref(),
            summaries: &b.summaries,
            status: &b.status,
        });
    };
    // A gathered block goes out as its runs of consecutive points, each laid out as a block
    // of its own.
    let per_lane = b.traces.as_ref().map_or(0, |t| t.len() / b.lanes.max(1));
    let n_stats = b.summaries.len() / (b.lanes * nc).max(1);
    let mut i = 0;
    while i < points.len() {
        let run = 1 + points[i + 1..]
            .iter()
            .zip(&points[i..])
            .take_while(|(next, prev)| **next == **prev + 1)
            .count();
        // `[statistic][lane][column]`: per statistic, the run's lanes.
        let summaries: Vec<f64> = (0..n_stats)
            .flat_map(|si| {
                let base = si * b.lanes * nc;
                b.summaries[base + i * nc..base + (i + run) * nc].iter().copied()
            })
            .collect();
        emit(BlockOutput {
            first_point: points[i],
            lanes: run,
            traces: b.traces.as_deref().map(|t| &t[i * per_lane..(i + run) * per_lane]),
            summaries: &summaries,
            status: &b.status[i..i + run],
        })?;
        i += run;
    }
    Ok(())
}

fn run_inner(
    spec: &SweepSpec,
    circuit: &Circuit,
    sink: &mut dyn SweepSink,
    ctrl: RunControl<'_>,
    runner: &BlockSolver<'_>,
) -> Result<SweepSummary, SweepError> {
    if let Some(Shard { index, count }) = ctrl.shard {
        if count == 0 || index >= count {
            return Err(SweepError::BadShard { index, count });
        }
    }
    let mut problems = checks::check_time(spec);
    problems.extend(checks::check_grid(spec));
    problems.extend(checks::check_regime(spec));
    if !problems.is_empty() {
        return Err(SweepError::Settings(problems));
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (threads, threads_note) = checks::thread_count(spec.threads, spec.oversubscribe, cores);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|source| SweepError::ThreadPool { threads, source })?;
    let n_threads = pool.current_num_threads().max(1);
    let in_memory = sink.holds_traces_in_memory();
    // Before compiling, with one column per output (the least there can be); again below with
    // the exact columns.
    let needs_fft = spec.summaries.iter().any(|s| s.needs_fft());
    checks::check_run_memory(
        spec,
        checks::n_time(spec) as usize,
        spec.outputs.len().max(1),
        n_threads,
        in_memory,
        spec.keep_traces || needs_fft,
    )?;
    let plan = on_compile_stack(|| build_plan(spec, circuit))?;
    checks::check_run_memory(spec, plan.n_time, plan.n_cols, n_threads, in_memory, plan.buffer_traces)?;
    let chunks = spec.chunks();
    sink.begin(&SweepMeta {
        circuit_name: &circuit.name,
        grid: &spec.param_grid,
        time: &plan.time,
        columns: &plan.columns,
        summaries: &spec.summaries,
        keep_traces: spec.keep_traces,
        chunks: &chunks,
        block_size: spec.block_size,
        spec,
    })?;

    let total = spec.param_grid.len();
    let steps = spec.steps();
    let done = AtomicUsize::new(0);
    let lane_steps = AtomicU64::new(0);
    let failed = AtomicUsize::new(0);
    let mut summary = SweepSummary {
        points_run: 0,
        points_skipped: 0,
        chunks_run: 0,
        chunks_skipped: 0,
        lane_steps: 0,
        points_failed: 0,
        backend: plan.groups[0].kernel.backend(),
        notes: threads_note.into_iter().collect(),
    };
    let per_point = plan.n_time * plan.n_cols;
    for (ci, range) in chunks.iter().enumerate() {
        if ctrl.shard.is_some_and(|s| ci % s.count != s.index) {
            continue;
        }
        if !sink.begin_chunk(ci, range.clone())? {
            summary.chunks_skipped += 1;
            summary.points_skipped += range.len();
            let d = done.fetch_add(range.len(), Ordering::Relaxed) + range.len();
            if let Some(p) = ctrl.progress {
                p(Progress {
                    points_done: d,
                    points_total: total,
                    lane_steps: lane_steps.load(Ordering::Relaxed),
                });
            }
            continue;
        }
        let lanes = spec.block_size.min(range.len().div_ceil(n_threads)).max(1);
        let blocks = plan.blocks(range.clone(), lanes);
        let one_block = |block: &Lanes, target: Option<&mut [f64]>| -> Result<BlockData, SweepError> {
            if ctrl.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(SweepError::Cancelled {
                    points_done: done.load(Ordering::Relaxed),
                });
            }
            let n = block.len();
            let data = plan.run_block(block, target, runner)?;
            failed.fetch_add(
                data.status.iter().filter(|s| **s != PointStatus::Ok).count(),
                Ordering::Relaxed,
            );
            let d = done.fetch_add(n, Ordering::Relaxed) + n;
            let ls = lane_steps.fetch_add(n as u64 * steps, Ordering::Relaxed) + n as u64 * steps;
            if let Some(p) = ctrl.progress {
                p(Progress {
                    points_done: d,
                    points_total: total,
                    lane_steps: ls,
                });
            }
            Ok(data)
        };
        // With nothing to sample per point there is no array to split among blocks.
        // Gathered blocks are not contiguous in the sink's array: they deliver their own.
        let target = if per_point > 0 && !plan.gather {
            sink.trace_target(range.clone())
        } else {
            None
        };
        if let Some(target) = target {
            let mut rest = target;
            let mut parts = Vec::with_capacity(blocks.len());
            for b in &blocks {
                let (part, tail) = std::mem::take(&mut rest).split_at_mut(b.len() * per_point);
                parts.push(part);
                rest = tail;
            }
            let results: Vec<Result<BlockData, SweepError>> = pool.install(|| {
                parts
                    .into_par_iter()
                    .zip(blocks.par_iter())
                    .map(|(dst, b)| one_block(b, Some(dst)))
                    .collect()
            });
            for r in results {
                deliver(|o| sink.block(o), &r?, plan.n_cols)?;
            }
        } else if let Some(handler) = sink.block_handler() {
            pool.install(|| {
                blocks
                    .par_iter()
                    .try_for_each(|b| deliver(|o| handler.block(o), &one_block(b, None)?, plan.n_cols))
            })?;
        } else {
            let shared = Mutex::new(&mut *sink);
            pool.install(|| {
                blocks.par_iter().try_for_each(|b| {
                    let data = one_block(b, None)?;
                    let mut s = shared.lock().map_err(|_| SweepError::Output {
                        source: "a worker panicked while writing results".into(),
                    })?;
                    deliver(|o| s.block(o), &data, plan.n_cols)
                })
            })?;
        }
        sink.end_chunk(ci, range.clone())?;
        summary.chunks_run += 1;
        summary.points_run += range.len();
    }
    sink.finish()?;
    summary.lane_steps = lane_steps.load(Ordering::Relaxed);
    summary.points_failed = failed.load(Ordering::Relaxed);
    Ok(summary)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Expr, Ode, Var};
    use crate::solve::Method;
    use indexmap::IndexMap;

    /// Two nodes `A`, `B` with operator `op`: state `x`, parameter `eta`; `A` also has an
    /// input `inp`. The right-hand sides are irrelevant: [`fake_solver`] stands in for the
    /// solver with the closed form x(t) = x0 + eta·t.
    pub(crate) fn fake_circuit() -> Circuit {
        let mut c = Circuit {
            name: "Toy".into(),
            ..Circuit::default()
        };
        c.nodes = vec!["A".into(), "B".into()];
        c.node_operators = vec![("A".into(), vec!["op".into()]), ("B".into(), vec!["op".into()])];
        let zero = c.add_expr(Expr::Const(0.0));
        for (node, x0, eta) in [("A", 0.5, 1.0), ("B", 0.25, 2.0)] {
            let mk = |name: &str, kind, value| Var {
                name: format!("{node}/op/{name}"),
                kind,
                value,
                node: Some(node.into()),
                external_input: None,
                span: None,
            };
            let x = c.add_var(mk("x", VarKind::State, x0));
            c.add_var(mk("eta", VarKind::Param, eta));
            if node == "A" {
                c.add_var(mk("inp", VarKind::Input, 0.0));
            }
            c.odes.push(Ode {
                var: x,
                rhs: zero,
                span: None,
            });
        }
        c
    }

    /// x(t) = x0 + eta·t per lane, sampled like the solver (k·dts, t ≥ cutoff); a lane with
    /// eta > 100 turns NaN from its first sample after t = 0.5 (status NonFinite there).
    pub(crate) fn fake_solver(c: Circuit) -> Box<BlockSolver<'static>> {
        Box::new(
            move |kernel: &Kernel,
                  cfg: &SimConfig,
                  _inputs: &[InputBinding],
                  outputs: &[OutputBinding],
                  block: Block<'_>,
                  sink: &mut dyn SampleSink| {
                let layout = kernel.layout();
                let lanes = block.lanes;
                let dts = cfg.sampling_step.unwrap_or(cfg.dt);
                let n = (cfg.simulation_time / dts).round() as usize;
                let eta = |o: &OutputBinding, lane: usize| {
                    let name = c.var(o.var).name.replace("/x", "/eta");
                    let id = c.find_var(&name).expect("every node has eta");
                    block.params[layout.slot[id.0 as usize] as usize * lanes + lane]
                };
                let x0 =
                    |o: &OutputBinding, lane: usize| block.init[layout.slot[o.var.0 as usize] as usize * lanes + lane];
                let mut status = vec![PointStatus::Ok; lanes];
                let mut values = vec![0.0; outputs.len() * lanes];
                let mut index = 0;
                for k in 0..n {
                    let t = k as f64 * dts;
                    for (oi, o) in outputs.iter().enumerate() {
                        for lane in 0..lanes {
                            let e = eta(o, lane);
                            let bad = e > 100.0 && t > 0.5;
                            if bad && status[lane] == PointStatus::Ok {
                                status[lane] = PointStatus::NonFinite { t };
                            }
                            values[oi * lanes + lane] = if bad { f64::NAN } else { x0(o, lane) + e * t };
                        }
                    }
                    if t >= cfg.cutoff {
                        sink.samples(index, t, lanes, &values);
                        index += 1;
                    }
                }
                Ok(status)
            },
        )
    }

    pub(crate) fn fake_spec(etas: &[f64], x0s: &[f64]) -> SweepSpec {
        let values: IndexMap<String, Vec<f64>> = [("eta".to_string(), etas.to_vec()), ("x0".to_string(), x0s.to_vec())]
            .into_iter()
            .collect();
        let grid = Grid::from_values(&values, true).expect("permuted grids have no length constraint");
        let map = ParamMap::new()
            .nodes("eta", &["eta"], &["A"])
            .nodes("x0", &["op/x"], &["B"]);
        let sim = SimConfig {
            simulation_time: 2.0,
            dt: 0.05,
            sampling_step: Some(0.1),
            method: Method::Euler,
            cutoff: 0.5,
        };
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.outputs = vec![("x".into(), "all/op/x".into())];
        spec.backend = Backend::Reference;
        spec
    }

    pub(crate) fn run_fake(
        spec: &SweepSpec,
        sink: &mut dyn SweepSink,
        ctrl: RunControl<'_>,
    ) -> Result<SweepSummary, SweepError> {
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        run_with(
            spec,
            &c,
            sink,
            RunControl {
                solver: Some(&solver),
                ..ctrl
            },
        )
    }

    fn memory(spec: &SweepSpec) -> SweepResult {
        let mut sink = MemorySink::new();
        run_fake(spec, &mut sink, RunControl::default()).unwrap();
        sink.into_result().unwrap()
    }

    /// Bitwise equality, NaN included.
    pub(crate) fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    pub(crate) fn same_result(a: &SweepResult, b: &SweepResult) -> bool {
        let opt = |x: &Option<Vec<f64>>, y: &Option<Vec<f64>>| match (x, y) {
            (Some(x), Some(y)) => same(x, y),
            (None, None) => true,
            _ => false,
        };
        let sums = match (&a.summaries, &b.summaries) {
            (Some(x), Some(y)) => x.stats == y.stats && x.values.iter().zip(&y.values).all(|(p, q)| same(p, q)),
            (None, None) => true,
            _ => false,
        };
        let status = a.status.len() == b.status.len()
            && a.status.iter().zip(&b.status).all(|(x, y)| match (x, y) {
                (PointStatus::Ok, PointStatus::Ok) => true,
                (PointStatus::NonFinite { t: s }, PointStatus::NonFinite { t }) => s == t,
                (PointStatus::StepTooSmall { t: s }, PointStatus::StepTooSmall { t }) => s == t,
                (PointStatus::Failed, PointStatus::Failed) => true,
                _ => false,
            });
        a.circuit_name == b.circuit_name
            && a.labels == b.labels
            && a.grid_keys == b.grid_keys
            && a.grid_values.iter().zip(&b.grid_values).all(|(x, y)| same(x, y))
            && same(&a.time, &b.time)
            && a.columns == b.columns
            && opt(&a.traces, &b.traces)
            && sums
            && status
    }

    #[test]
    fn run_memory_sink_places_every_point_and_column() {
        let mut spec = fake_spec(&[1.0, -2.0, 3.5], &[0.0, 10.0, 20.0, 30.0]);
        (spec.chunk_size, spec.block_size, spec.threads) = (5, 2, Some(2));
        let r = memory(&spec);
        assert_eq!(
            r.columns,
            vec![("A".to_string(), "x".to_string()), ("B".to_string(), "x".to_string())]
        );
        assert_eq!(r.time.len(), 15, "t = 0.5 … 1.9");
        assert_eq!(r.time[0], 0.5);
        assert_eq!(r.labels[11], "Toy_11");
        for p in 0..12 {
            let (eta, x0) = (r.grid_values[0][p], r.grid_values[1][p]);
            let a = r.trace(p, 0).unwrap();
            let b = r.trace(p, 1).unwrap();
            for (i, &t) in r.time.iter().enumerate() {
                assert_eq!(a[i], 0.5 + eta * t, "point {p} A at {t}");
                assert_eq!(b[i], x0 + 2.0 * t, "point {p} B at {t}");
            }
        }
        let cols = r.dataframe_columns();
        assert_eq!(cols.len(), 24);
        assert_eq!(cols[3], ("Toy_1".to_string(), "B".to_string(), "x".to_string()));
    }

    #[test]
    fn run_chunks_blocks_threads_do_not_change_results() {
        let mut a = fake_spec(&[1.0, 2.0, 3.0, 4.0, 5.0], &[0.0, 1.0, 2.0]);
        a.summaries = Statistic::ALL.to_vec();
        let mut b = a.clone();
        (a.chunk_size, a.block_size, a.threads) = (0, 64, Some(1));
        (b.chunk_size, b.block_size, b.threads) = (4, 3, Some(2));
        assert!(same_result(&memory(&a), &memory(&b)));
    }

    #[test]
    fn run_summaries_equal_statistics_of_traces() {
        let mut spec = fake_spec(&[1.0, -3.0], &[0.0, 5.0]);
        spec.summaries = Statistic::ALL.to_vec();
        let r = memory(&spec);
        let n = r.time.len();
        for p in 0..4 {
            for c in 0..2 {
                let x = r.trace(p, c).unwrap();
                let mean = x.iter().sum::<f64>() / n as f64;
                let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
                let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                // Naive DFT as the second method for the spectrum.
                let (mut fbest, mut pbest) = (0.0, 0.0);
                for k in 1..=n / 2 {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (i, v) in x.iter().enumerate() {
                        let w = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                        re += (v - mean) * w.cos();
                        im += (v - mean) * w.sin();
                    }
                    let pw = if 2 * k == n { 1.0 } else { 2.0 } * (re * re + im * im) / (n * n) as f64;
                    if pw > pbest {
                        (fbest, pbest) = (k as f64 / (n as f64 * 0.1), pw);
                    }
                }
                let get = |s| r.summary(s, p, c).unwrap();
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
                assert!(close(get(Statistic::Mean), mean));
                assert!(close(get(Statistic::Std), std));
                assert_eq!(get(Statistic::Min), min);
                assert_eq!(get(Statistic::Max), max);
                assert_eq!(get(Statistic::Last), x[n - 1]);
                assert_eq!(get(Statistic::Ptp), max - min);
                assert_eq!(get(Statistic::DomFreq), fbest);
                assert!(
                    close(get(Statistic::DomPower), pbest),
                    "{} vs {pbest}",
                    get(Statistic::DomPower)
                );
            }
        }
    }

    #[test]
    fn run_diverging_points_marked_others_intact() {
        let mut spec = fake_spec(&[1.0, 500.0, 2.0], &[0.0, 1.0]);
        spec.summaries = vec![Statistic::Mean, Statistic::Max];
        spec.block_size = 2;
        let mut sink = MemorySink::new();
        let s = run_fake(&spec, &mut sink, RunControl::default()).unwrap();
        let r = sink.into_result().unwrap();
        assert_eq!(s.points_failed, 2);
        for p in 0..6 {
            let eta = r.grid_values[0][p];
            let a = r.trace(p, 0).unwrap();
            if eta > 100.0 {
                assert_eq!(r.status[p], PointStatus::NonFinite { t: 0.6000000000000001 });
                assert!(r.summary(Statistic::Mean, p, 0).unwrap().is_nan());
                assert!(a[0] == 0.5 + eta * 0.5 && a[1].is_nan(), "{a:?}");
            } else {
                assert_eq!(r.status[p], PointStatus::Ok);
                assert_eq!(a[14], 0.5 + eta * r.time[14]);
                assert!(r.summary(Statistic::Max, p, 0).unwrap().is_finite());
            }
        }
    }

    #[test]
    fn run_cancel_flag_stops_between_blocks() {
        let mut spec = fake_spec(&[1.0, 2.0, 3.0, 4.0], &[0.0, 1.0]);
        (spec.chunk_size, spec.block_size, spec.threads) = (2, 1, Some(1));
        let cancel = AtomicBool::new(false);
        let progress = |p: Progress| {
            if p.points_done >= 3 {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let mut sink = MemorySink::new();
        let ctrl = RunControl {
            cancel: Some(&cancel),
            progress: Some(&progress),
            ..RunControl::default()
        };
        let err = run_fake(&spec, &mut sink, ctrl).unwrap_err();
        assert!(matches!(err, SweepError::Cancelled { points_done: 3 }), "{err:?}");
    }

    #[test]
    fn run_unknown_output_input_and_shard_are_errors() {
        let mut spec = fake_spec(&[1.0], &[0.0]);
        spec.outputs = vec![("x".into(), "A/op/xx".into())];
        let err = run_fake(&spec, &mut MemorySink::new(), RunControl::default()).unwrap_err();
        assert!(
            matches!(&err, SweepError::UnknownOutput { suggestion: Some(s), .. } if s == "A/op/x"),
            "{err:?}"
        );
        let mut spec = fake_spec(&[1.0], &[0.0]);
        spec.inputs = vec![("A/op/eta".into(), Signal::Constant(1.0))];
        let err = run_fake(&spec, &mut MemorySink::new(), RunControl::default()).unwrap_err();
        assert!(
            matches!(
                err,
                SweepError::NotAnInput {
                    kind: VarKind::Param,
                    ..
                }
            ),
            "{err:?}"
        );
        let spec = fake_spec(&[1.0], &[0.0]);
        let ctrl = RunControl {
            shard: Some(Shard { index: 2, count: 2 }),
            ..RunControl::default()
        };
        let err = run_fake(&spec, &mut MemorySink::new(), ctrl).unwrap_err();
        assert!(matches!(err, SweepError::BadShard { index: 2, count: 2 }));
    }

    // ---- With the real solver (solve::run_block) ----

    use crate::model::{BinOp, ExprId};

    fn one_node(name: &str, vars: &[(&str, VarKind, f64)]) -> Circuit {
        let mut c = Circuit {
            name: name.into(),
            ..Circuit::default()
        };
        c.nodes = vec!["n".into()];
        c.node_operators = vec![("n".into(), vec!["op".into()])];
        for &(v, kind, value) in vars {
            c.add_var(Var {
                name: format!("n/op/{v}"),
                kind,
                value,
                node: Some("n".into()),
                external_input: None,
                span: None,
            });
        }
        c
    }

    fn var_expr(c: &mut Circuit, name: &str) -> ExprId {
        let id = c.find_var(&format!("n/op/{name}")).unwrap();
        c.add_expr(Expr::Var(id))
    }

    /// x' = a·x², x(0) = 1: x = 1/(1 − a t), infinite at t = 1/a.
    fn blowup() -> Circuit {
        let mut c = one_node("Blow", &[("x", VarKind::State, 1.0), ("a", VarKind::Param, 1.0)]);
        let (x, a) = (var_expr(&mut c, "x"), var_expr(&mut c, "a"));
        let xx = c.add_expr(Expr::Binary(BinOp::Mul, x, x));
        let rhs = c.add_expr(Expr::Binary(BinOp::Mul, a, xx));
        let var = c.find_var("n/op/x").unwrap();
        c.odes.push(Ode { var, rhs, span: None });
        c
    }

    /// x' = (inp − x)/tau, a low-pass of the input.
    fn lowpass() -> Circuit {
        let mut c = one_node(
            "Low",
            &[
                ("x", VarKind::State, 0.0),
                ("inp", VarKind::Input, 0.0),
                ("tau", VarKind::Param, 0.1),
            ],
        );
        let (x, u, tau) = (var_expr(&mut c, "x"), var_expr(&mut c, "inp"), var_expr(&mut c, "tau"));
        let d = c.add_expr(Expr::Binary(BinOp::Sub, u, x));
        let rhs = c.add_expr(Expr::Binary(BinOp::Div, d, tau));
        let var = c.find_var("n/op/x").unwrap();
        c.odes.push(Ode { var, rhs, span: None });
        c
    }

    pub(crate) fn reference_qif() -> Circuit {
        let opts = crate::template::LoadOptions::default();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/models/reference_qif.yaml/pc_iin"
        );
        crate::model::load_circuit(path, &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit
    }

    struct Collect {
        rows: Vec<Vec<f64>>,
    }
    impl SampleSink for Collect {
        fn samples(&mut self, _index: usize, _t: f64, _lanes: usize, values: &[f64]) {
            self.rows.push(values.to_vec());
        }
    }

    /// One point run on its own through `solve::run_block` (one lane): `[time][output]`,
    /// with `set` giving (variable name, value) overrides of parameters or initial values.
    fn single_run(
        circuit: &Circuit,
        spec: &SweepSpec,
        point: usize,
        set: &[(&str, f64)],
    ) -> (Vec<Vec<f64>>, PointStatus) {
        let lowered = if circuit.edges.is_empty() {
            circuit.clone()
        } else {
            crate::model::passes::lower_edges(circuit)
        };
        let kernel = Kernel::compile(
            &lowered,
            &KernelOptions {
                backend: spec.backend,
                ..KernelOptions::default()
            },
        )
        .unwrap();
        let layout = lowered.layout();
        let mut params: Vec<f64> = layout.params.iter().map(|&id| lowered.var(id).value).collect();
        let mut init: Vec<f64> = layout.states.iter().map(|&id| lowered.var(id).value).collect();
        for &(name, value) in set {
            let id = lowered.find_var(name).unwrap();
            let slot = layout.slot[id.0 as usize] as usize;
            match lowered.var(id).kind {
                VarKind::State => init[slot] = value,
                _ => params[slot] = value,
            }
        }
        let inputs: Vec<InputBinding> = spec
            .inputs
            .iter()
            .map(|(n, s)| InputBinding {
                var: lowered
                    .find_var(n)
                    .map(|id| lowered.var(id).external_input.unwrap_or(id))
                    .unwrap(),
                signal: s.clone(),
            })
            .collect();
        let outputs: Vec<OutputBinding> = spec
            .outputs
            .iter()
            .flat_map(|(k, p)| match p.strip_prefix("all/") {
                Some(rest) => lowered
                    .nodes
                    .iter()
                    .filter_map(|n| lowered.find_var(&format!("{n}/{rest}")))
                    .map(|var| OutputBinding { key: k.clone(), var })
                    .collect::<Vec<_>>(),
                None => vec![OutputBinding {
                    key: k.clone(),
                    var: lowered.find_var(p).unwrap(),
                }],
            })
            .collect();
        let mut sink = Collect { rows: Vec::new() };
        let block = Block {
            first_point: point,
            lanes: 1,
            params: &params,
            init: &init,
        };
        let status = solve::run_block(&kernel, &spec.sim, &inputs, &outputs, block, &mut sink).unwrap();
        (sink.rows, status[0])
    }

    pub(crate) fn qif_spec(n: usize) -> SweepSpec {
        let etas: Vec<f64> = (0..n).map(|i| -5.0 + 10.0 * i as f64 / (n - 1) as f64).collect();
        let values: IndexMap<String, Vec<f64>> = [("eta_pc".to_string(), etas.clone()), ("eta_iin".to_string(), etas)]
            .into_iter()
            .collect();
        let grid = Grid::from_values(&values, true).unwrap();
        let map = ParamMap::new()
            .nodes("eta_pc", &["qif_op/eta"], &["PC"])
            .nodes("eta_iin", &["eta"], &["IIN"]);
        let sim = SimConfig {
            simulation_time: 0.5,
            dt: 1e-4,
            sampling_step: Some(1e-3),
            method: Method::Euler,
            cutoff: 0.1,
        };
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.inputs = vec![("PC/qif_op/I_ext".into(), Signal::Constant(1.0))];
        spec.outputs = vec![("r".into(), "all/qif_op/r".into())];
        spec.backend = Backend::Reference;
        (spec.block_size, spec.threads) = (4, Some(2));
        spec
    }

    #[test]
    fn sweep_qif_traces_equal_single_runs_bit_for_bit() {
        for backend in [Backend::Reference, Backend::Jit, Backend::C] {
            qif_traces_equal_single_runs(backend);
        }
    }

    fn qif_traces_equal_single_runs(backend: Backend) {
        let c = reference_qif();
        let mut spec = qif_spec(3);
        spec.backend = backend;
        let mut sink = MemorySink::new();
        run(&spec, &c, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        assert_eq!(
            r.columns,
            vec![
                ("PC".to_string(), "r".to_string()),
                ("IIN".to_string(), "r".to_string())
            ]
        );
        assert_eq!(r.time.len(), 400);
        for p in 0..9 {
            let (e_pc, e_iin) = (r.grid_values[0][p], r.grid_values[1][p]);
            let (rows, status) = single_run(&c, &spec, p, &[("PC/qif_op/eta", e_pc), ("IIN/qif_op/eta", e_iin)]);
            assert_eq!(status, PointStatus::Ok);
            assert_eq!(rows.len(), r.time.len());
            for col in 0..2 {
                let tr = r.trace(p, col).unwrap();
                let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
                assert!(same(&tr, &single), "point {p} column {col}");
            }
        }
    }

    #[test]
    fn sweep_edge_weight_equals_single_runs_with_weight_in_yaml() {
        let base = reference_qif();
        let values: IndexMap<String, Vec<f64>> = [("w".to_string(), vec![5.0, 15.0, 25.0])].into_iter().collect();
        let mut spec = qif_spec(2);
        spec.param_grid = Grid::from_values(&values, false).unwrap();
        spec.param_map = ParamMap::new().edges("w", &["weight"], &[("PC", "PC", None)]);
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        let yaml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/reference_qif.yaml");
        let yaml = std::fs::read_to_string(yaml_path).unwrap();
        assert!(yaml.contains("[PC/qif_op/r, PC/qif_op/r_in, null, {weight: 15.0}]"));
        for (p, w) in [5.0, 15.0, 25.0].iter().enumerate() {
            // The template with that weight written into the YAML, loaded and run alone.
            let edited = yaml.replace(
                "[PC/qif_op/r, PC/qif_op/r_in, null, {weight: 15.0}]",
                &format!("[PC/qif_op/r, PC/qif_op/r_in, null, {{weight: {w:?}}}]"),
            );
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("edited.yaml");
            std::fs::write(&file, edited).unwrap();
            let opts = crate::template::LoadOptions::default();
            let c = crate::model::load_circuit(&format!("{}/pc_iin", file.display()), &opts)
                .map_err(|e| format!("{e:?}"))
                .unwrap()
                .circuit;
            let (rows, _) = single_run(&c, &spec, p, &[]);
            for col in 0..2 {
                let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
                assert!(same(&r.trace(p, col).unwrap(), &single), "weight {w} column {col}");
            }
        }
    }

    #[test]
    fn sweep_sine_input_dominant_frequency_within_one_bin() {
        // A 7 Hz sine of amplitude 2 drives the input; the input itself is an output. The
        // post-cutoff window is 1.5 s at dts = 1 ms: bins are 1/1.5 Hz apart.
        let c = lowpass();
        let (t_end, dt, f, amp) = (2.0, 1e-3, 7.0, 2.0);
        let steps = (t_end / dt) as usize;
        let sine: Vec<f64> = (0..steps)
            .map(|i| amp * (2.0 * std::f64::consts::PI * f * i as f64 * dt).sin())
            .collect();
        let values: IndexMap<String, Vec<f64>> = [("tau".to_string(), vec![0.05, 0.5])].into_iter().collect();
        let grid = Grid::from_values(&values, false).unwrap();
        let map = ParamMap::new().nodes("tau", &["tau"], &["n"]);
        let sim = SimConfig {
            simulation_time: t_end,
            dt,
            sampling_step: Some(dt),
            method: Method::Rk4,
            cutoff: 0.5,
        };
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.inputs = vec![("n/op/inp".into(), Signal::Shared(sine.into()))];
        spec.outputs = vec![("u".into(), "n/op/inp".into()), ("x".into(), "n/op/x".into())];
        spec.backend = Backend::Reference;
        spec.keep_traces = false;
        spec.summaries = vec![Statistic::DomFreq, Statistic::DomPower, Statistic::Std];
        let mut sink = MemorySink::new();
        run(&spec, &c, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        let bin = 1.0 / 1.5;
        for p in 0..2 {
            for col in 0..2 {
                let freq = r.summary(Statistic::DomFreq, p, col).unwrap();
                assert!((freq - f).abs() <= bin, "point {p} column {col}: {freq} Hz");
            }
            // The input's sine sits on a bin (7 Hz × 1.5 s = 10.5 cycles: half a bin off, so
            // leakage takes part of the power); its std is A/√2 to sampling accuracy.
            let std = r.summary(Statistic::Std, p, 0).unwrap();
            assert!((std - amp / 2f64.sqrt()).abs() < 0.01 * amp, "{std}");
        }
        // The slower low-pass (tau = 0.5) attenuates the sine more than the fast one.
        assert!(r.summary(Statistic::Std, 1, 1).unwrap() < r.summary(Statistic::Std, 0, 1).unwrap());
    }

    #[test]
    fn sweep_diverging_points_marked_exactly_others_equal_single_runs() {
        let c = blowup();
        // x = 1/(1 − a t) blows up at t = 1/a: a = 4 and 20 diverge within T = 1, 0.1 and 0.5 do not.
        let values: IndexMap<String, Vec<f64>> = [("a".to_string(), vec![0.1, 4.0, 0.5, 20.0])].into_iter().collect();
        let grid = Grid::from_values(&values, false).unwrap();
        let map = ParamMap::new().nodes("a", &["a"], &["n"]);
        let sim = SimConfig {
            simulation_time: 1.0,
            dt: 1e-3,
            sampling_step: Some(1e-2),
            method: Method::Euler,
            cutoff: 0.0,
        };
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.outputs = vec![("x".into(), "n/op/x".into())];
        spec.backend = Backend::Reference;
        spec.summaries = vec![Statistic::Mean, Statistic::Last];
        spec.block_size = 4;
        let mut sink = MemorySink::new();
        let s = run(&spec, &c, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        assert_eq!(s.points_failed, 2);
        for p in 0..4 {
            let a = r.grid_values[0][p];
            let tr = r.trace(p, 0).unwrap();
            if a > 1.0 {
                let PointStatus::NonFinite { t } = r.status[p] else {
                    panic!("point {p}: {:?}", r.status[p])
                };
                assert!(t > 1.0 / a - 0.05 && t <= 1.0, "a = {a}: diverged at {t}");
                assert!(tr.last().unwrap().is_nan() && r.summary(Statistic::Mean, p, 0).unwrap().is_nan());
            } else {
                assert_eq!(r.status[p], PointStatus::Ok);
                let (rows, _) = single_run(&c, &spec, p, &[("n/op/a", a)]);
                let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
                assert!(same(&tr, &single), "point {p}");
                // Euler on x' = a x² stays below the exact 1/(1 − a t) and within 1 %.
                let exact = 1.0 / (1.0 - a * 0.99);
                assert!((tr[99] - exact).abs() < 0.01 * exact, "{} vs {exact}", tr[99]);
            }
        }
    }

    #[test]
    fn sweep_edge_delay_equals_single_runs_with_delay_in_yaml() {
        // The reference circuit with a delay on IIN -> PC, swept; each point must equal the
        // template with that delay written into the YAML, run alone.
        let yaml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/reference_qif.yaml");
        let yaml = std::fs::read_to_string(yaml_path).unwrap();
        let line = "[IIN/qif_op/r, PC/qif_op/r_in, null, {weight: -10.0}]";
        assert!(yaml.contains(line));
        let with_delay = |d: f64| {
            yaml.replace(
                line,
                &format!("[IIN/qif_op/r, PC/qif_op/r_in, null, {{weight: -10.0, delay: {d:?}}}]"),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let load = |text: String, name: &str| {
            let file = dir.path().join(name);
            std::fs::write(&file, text).unwrap();
            let opts = crate::template::LoadOptions::default();
            crate::model::load_circuit(&format!("{}/pc_iin", file.display()), &opts)
                .map_err(|e| format!("{e:?}"))
                .unwrap()
                .circuit
        };
        let base = load(with_delay(0.01), "base.yaml");
        let delays = [0.002, 0.01, 0.03];
        let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec())].into_iter().collect();
        let mut spec = qif_spec(2);
        spec.param_grid = Grid::from_values(&values, false).unwrap();
        spec.param_map = ParamMap::new().edges("d", &["delay"], &[("IIN", "PC", Some(0))]);
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        let mut differ = false;
        for (p, &d) in delays.iter().enumerate() {
            let c = load(with_delay(d), &format!("d{p}.yaml"));
            let (rows, _) = single_run(&c, &spec, p, &[]);
            for col in 0..2 {
                let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
                assert!(same(&r.trace(p, col).unwrap(), &single), "delay {d} column {col}");
            }
            differ |= p > 0 && !same(&r.trace(p, 0).unwrap(), &r.trace(0, 0).unwrap());
        }
        assert!(differ, "the delay changes the traces");
    }

    /// A source relaxing to 1 feeds a low-pass through a gamma-distributed edge (template
    /// delay 0.15, spread 0.1: n = round(2.25) = 2 stages).
    fn gamma_yaml(delay: f64, spread: f64) -> String {
        format!(
            r#"
P:
  base: OperatorTemplate
  equations: "r' = (u - r) / 0.05 + r_in"
  variables: {{r: output(0.0), u: 1.0, r_in: input(0.0)}}
Q:
  base: OperatorTemplate
  equations: "y' = (r_in - y) / 0.02"
  variables: {{y: output(0.0), r_in: input(0.0)}}
Src: {{base: NodeTemplate, operators: [P]}}
Dst: {{base: NodeTemplate, operators: [Q]}}
Net:
  base: CircuitTemplate
  nodes: {{a: Src, b: Dst}}
  edges:
    - [a/P/r, b/Q/r_in, null, {{weight: 2.0, delay: {delay:?}, spread: {spread:?}}}]
"#
        )
    }

    fn load_yaml(dir: &std::path::Path, name: &str, text: String) -> Circuit {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let opts = crate::template::LoadOptions::default();
        crate::model::load_circuit(&format!("{}/Net", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit
    }

    /// Issue 14 item 7: a flat sum as deep as the parser accepts goes through every stage in a
    /// debug build: template, model passes and dropping the trees on an 8 MiB stack (a main
    /// thread's, where the CLI and Python load templates), each back end's compile on its own
    /// thread ([`COMPILE_STACK`]), the run; and one term more is a positioned error. Reference: x' = Σ a_k is a
    /// constant, so Euler gives x(t) = t·Σ a_k (up to the rounding of the sum and of the
    /// steps: 1e-12 relative).
    #[test]
    fn parse_equation_flat_sum_at_the_height_limit_compiles_in_a_small_stack() {
        let terms = crate::syntax::parser::MAX_TREE_HEIGHT;
        let sum: Vec<String> = (0..terms).map(|i| format!("a{}", i % 3)).collect();
        let yaml = |sum: &str| {
            format!(
                "Op:\n  base: OperatorTemplate\n  equations: \"d/dt * x = {sum}\"\n  variables:\n    x: output(0.0)\n    a0: 1.0\n    a1: 2.0\n    a2: 3.0\nN: {{base: NodeTemplate, operators: [Op]}}\nNet: {{base: CircuitTemplate, nodes: {{p: N}}}}\n"
            )
        };
        let text = yaml(&sum.join(" + "));
        let rate: f64 = (0..terms).map(|i| [1.0, 2.0, 3.0][i % 3]).sum();
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let circuit = load_yaml(dir.path(), "deep.yaml", text);
                for backend in [Backend::Reference, Backend::Jit, Backend::C] {
                    let grid = Grid::from_rows(Vec::new(), &[Vec::new()]).unwrap();
                    let sim = SimConfig {
                        simulation_time: 0.01,
                        dt: 1e-3,
                        sampling_step: None,
                        method: Method::Euler,
                        cutoff: 0.0,
                    };
                    let mut spec = SweepSpec::new(grid, ParamMap::new(), sim);
                    spec.outputs = vec![("x".into(), "p/Op/x".into())];
                    spec.backend = backend;
                    let mut sink = MemorySink::new();
                    run(&spec, &circuit, &mut sink).unwrap();
                    let r = sink.into_result().unwrap();
                    let traces = r.traces.unwrap();
                    for (k, (&t, &x)) in r.time.iter().zip(&traces).enumerate() {
                        assert!(
                            (x - rate * t).abs() <= 1e-12 * rate * t.max(1e-3),
                            "{backend:?} sample {k}: {x} vs {}",
                            rate * t
                        );
                    }
                }
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        let dir = tempfile::tempdir().unwrap();
        let one_more: Vec<String> = (0..=terms).map(|i| format!("a{}", i % 3)).collect();
        std::fs::write(dir.path().join("deeper.yaml"), yaml(&one_more.join(" + "))).unwrap();
        let opts = crate::template::LoadOptions::default();
        let Err(err) = crate::model::load_circuit(&format!("{}/Net", dir.path().join("deeper.yaml").display()), &opts)
        else {
            panic!("one term more is refused");
        };
        let codes: Vec<&str> = err.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["eq/too-deep"]);
        let d = err.diagnostics.iter().next().unwrap();
        let (line, col) = err.sources.line_col(d.span.unwrap());
        // The `+` that makes the tree one level too deep, the `terms`-th: `  equations: "d/dt *
        // x = ` is 25 columns, then `aK + ` per term.
        assert_eq!((line, col), (3, 25 + 5 * (terms - 1) + 4), "{}", d.message);
    }

    fn gamma_spec(delays: &[f64], spreads: &[f64], backend: Backend) -> SweepSpec {
        let values: IndexMap<String, Vec<f64>> =
            [("d".to_string(), delays.to_vec()), ("s".to_string(), spreads.to_vec())]
                .into_iter()
                .collect();
        let grid = Grid::from_values(&values, false).unwrap();
        let map = ParamMap::new().edges("d", &["delay"], &[("a", "b", Some(0))]).edges(
            "s",
            &["spread"],
            &[("a", "b", Some(0))],
        );
        let sim = SimConfig {
            simulation_time: 1.0,
            dt: 1e-3,
            sampling_step: Some(1e-2),
            method: Method::Rk4,
            cutoff: 0.0,
        };
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.outputs = vec![("y".into(), "b/Q/y".into())];
        spec.backend = backend;
        spec.summaries = vec![Statistic::Mean, Statistic::Last];
        (spec.block_size, spec.chunk_size, spec.threads) = (4, 4, Some(2));
        spec
    }

    /// Issue 14 item 5: a swept delay or spread that is negative or NaN would act as no
    /// delay; it is refused, naming the key and the point, before anything compiles. 0 (no
    /// delay) stays valid.
    #[test]
    fn sweep_negative_or_nan_delay_is_an_error_naming_key_and_point() {
        let dir = tempfile::tempdir().unwrap();
        let circuit = load_yaml(dir.path(), "g.yaml", gamma_yaml(0.2, 0.1));
        for (delays, spreads, key, point) in [
            (vec![0.2, -0.1], vec![0.1, 0.1], "d", 1),
            (vec![0.2, f64::NAN], vec![0.1, 0.1], "d", 1),
            (vec![0.2, 0.2], vec![-0.1, 0.1], "s", 0),
        ] {
            let spec = gamma_spec(&delays, &spreads, Backend::Reference);
            let mut sink = MemorySink::new();
            let err = run(&spec, &circuit, &mut sink).unwrap_err();
            let SweepError::Settings(problems) = &err else {
                panic!("{err}")
            };
            assert_eq!(problems[0].setting, checks::Setting::GridKey(key.into()), "{err}");
            assert!(problems[0].message.contains(&format!("point {point}")), "{err}");
            assert!(sink.into_result().is_none(), "nothing ran");
            assert!(matches!(check(&spec, &circuit), Err(SweepError::Settings(_))));
        }
        let spec = gamma_spec(&[0.0, 0.2], &[0.1, 0.1], Backend::Reference);
        check(&spec, &circuit).unwrap();
    }

    #[test]
    fn sweep_gamma_delays_with_different_chain_lengths_equal_single_runs() {
        // n = round((d/s)²): 1, 4, 2 (the template's), 9, 4, 6, 1 (spread 0.3: 0.44 → 0, kept
        // at 1), 4 — five distinct chains, interleaved so that chunks of 4 and blocks mix them.
        let delays = [0.1, 0.2, 0.14, 0.3, 0.2, 0.25, 0.2, 0.4];
        let spreads = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2];
        let dir = tempfile::tempdir().unwrap();
        let base = load_yaml(dir.path(), "base.yaml", gamma_yaml(0.15, 0.1));
        for backend in [Backend::Reference, Backend::Jit] {
            let spec = gamma_spec(&delays, &spreads, backend);
            let plan = build_plan(&spec, &base).unwrap();
            assert_eq!(plan.groups.len(), 5, "one kernel per distinct chain length");
            // Groups: the template's n = 2 first, then by first appearance n = 1, 4, 9, 6; each
            // block holds one group's points of a chunk.
            assert!(plan.gather);
            assert_eq!(
                plan.blocks(0..4, 4),
                vec![
                    Lanes::Gathered(vec![2]),
                    Lanes::Gathered(vec![0]),
                    Lanes::Gathered(vec![1]),
                    Lanes::Gathered(vec![3])
                ]
            );
            assert_eq!(
                plan.blocks(4..8, 4),
                vec![
                    Lanes::Gathered(vec![6]),
                    Lanes::Gathered(vec![4, 7]),
                    Lanes::Gathered(vec![5])
                ]
            );
            let mut sink = MemorySink::new();
            run(&spec, &base, &mut sink).unwrap();
            let r = sink.into_result().unwrap();
            // Summaries only: blocks deliver through the sink instead of its trace array.
            let mut lean = spec.clone();
            lean.keep_traces = false;
            let mut sink = MemorySink::new();
            run(&lean, &base, &mut sink).unwrap();
            let lean = sink.into_result().unwrap();
            for (p, (&d, &s)) in delays.iter().zip(&spreads).enumerate() {
                let c = load_yaml(dir.path(), &format!("p{p}.yaml"), gamma_yaml(d, s));
                let (rows, status) = single_run(&c, &spec, p, &[]);
                assert_eq!((status, r.status[p]), (PointStatus::Ok, PointStatus::Ok));
                let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
                let tr = r.trace(p, 0).unwrap();
                assert!(same(&tr, &single), "{backend:?} point {p}: delay {d} spread {s}");
                let last = single.last().copied().unwrap();
                assert_eq!(r.summary(Statistic::Last, p, 0).unwrap().to_bits(), last.to_bits());
                assert_eq!(lean.summary(Statistic::Last, p, 0).unwrap().to_bits(), last.to_bits());
                // The mean of the single run's trace, up to summation order (relative 1e-12
                // is ~1e4 ulp for 100 samples); another point's or statistic's value would
                // be off by far more.
                let mean = single.iter().sum::<f64>() / single.len() as f64;
                for res in [&r, &lean] {
                    let m = res.summary(Statistic::Mean, p, 0).unwrap();
                    assert!((m - mean).abs() <= 1e-12 * mean.abs(), "point {p}: mean {m} vs {mean}");
                }
            }
            // The chain length matters: same delay 0.2, n = 4 vs n = 1 differ.
            assert!(!same(&r.trace(1, 0).unwrap(), &r.trace(6, 0).unwrap()));
        }
    }

    #[test]
    fn sweep_gamma_delays_with_one_chain_length_compile_one_kernel() {
        // (d/s)² = 4, 4.04, 3.96, 4.41: all round to the template's 4 stages.
        let dir = tempfile::tempdir().unwrap();
        let base = load_yaml(dir.path(), "base.yaml", gamma_yaml(0.2, 0.1));
        let spec = gamma_spec(&[0.2, 0.201, 0.199, 0.21], &[0.1; 4], Backend::Reference);
        let plan = build_plan(&spec, &base).unwrap();
        assert_eq!(plan.groups.len(), 1);
        assert!(plan.group_of.is_none());
        assert_eq!(plan.blocks(0..4, 4), vec![Lanes::Run(0, 4)]);
        // A common length other than the template's (9, 9.3 → 9): still one kernel.
        let spec = gamma_spec(&[0.3, 0.305], &[0.1; 2], Backend::Reference);
        let plan = build_plan(&spec, &base).unwrap();
        assert_eq!(plan.groups.len(), 1);
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        let c = load_yaml(dir.path(), "p1.yaml", gamma_yaml(0.305, 0.1));
        let (rows, _) = single_run(&c, &spec, 1, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(1, 0).unwrap(), &single));
    }

    #[test]
    fn sweep_gamma_source_initial_value_starts_the_chain_like_single_runs() {
        // The chain's stages start at the source's initial value: sweeping that value must
        // move them too, as writing it into the YAML does.
        let dir = tempfile::tempdir().unwrap();
        let yaml = |r0: f64| gamma_yaml(0.2, 0.1).replace("r: output(0.0)", &format!("r: output({r0:?})"));
        let base = load_yaml(dir.path(), "base.yaml", yaml(0.0));
        let values: IndexMap<String, Vec<f64>> = [("r0".to_string(), vec![0.0, 3.0])].into_iter().collect();
        let mut spec = gamma_spec(&[0.2], &[0.1], Backend::Reference);
        spec.param_grid = Grid::from_values(&values, false).unwrap();
        spec.param_map = ParamMap::new().nodes("r0", &["P/r"], &["a"]);
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        for (p, r0) in [0.0, 3.0].into_iter().enumerate() {
            let c = load_yaml(dir.path(), &format!("p{p}.yaml"), yaml(r0));
            let (rows, _) = single_run(&c, &spec, p, &[]);
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            assert!(same(&r.trace(p, 0).unwrap(), &single), "r0 = {r0}");
        }
        assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(1, 0).unwrap()));
    }

    #[cfg(feature = "hdf5")]
    #[test]
    fn sweep_gamma_chain_groups_through_part_files_equal_memory_result() {
        // Chunks of 4 mix chain lengths 1, 4, 2, 9 | 4, 6, 1, 4; the file path delivers blocks
        // through the sink (no shared trace array) and must give the in-memory result.
        let delays = [0.1, 0.2, 0.14, 0.3, 0.2, 0.25, 0.2, 0.4];
        let spreads = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2];
        let dir = tempfile::tempdir().unwrap();
        let text = gamma_yaml(0.15, 0.1);
        let base = load_yaml(dir.path(), "base.yaml", text.clone());
        let spec = gamma_spec(&delays, &spreads, Backend::Reference);
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let mem = sink.into_result().unwrap();
        let out = dir.path().join("gamma.h5");
        let opts = crate::io::h5::FileOptions::new(&text, "base.yaml/Net");
        crate::io::h5::sweep_to_file(&spec, &base, &out, &opts, RunControl::default()).unwrap();
        let file = crate::io::h5::read_results(&out).unwrap();
        assert!(same_result(&mem, &file));
    }

    #[test]
    fn sweep_jrc_2delaycoupled_gamma_delay_equals_single_runs_with_delay_in_yaml() {
        // The library's delay-coupled pair, the 1 → 2 delay swept at spread 1 ms:
        // n = 9, 16 (the template's), 25, 9.
        let opts = crate::template::LoadOptions::default();
        let base = crate::model::load_circuit("model_templates.neural_mass_models.jansenrit.JRC_2delaycoupled", &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit;
        let yaml = include_str!("../library/model_templates/neural_mass_models/jansenrit.yaml");
        let edge = "[jrc1/pc/pro/m, jrc2/pc/rpo_e_in/m_in, null, {weight: 20.0, delay: 0.004, spread: 0.001}]";
        assert!(yaml.contains(edge));
        let delays = [0.003, 0.004, 0.005, 0.003];
        let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec())].into_iter().collect();
        let sim = SimConfig {
            simulation_time: 0.2,
            dt: 1e-4,
            sampling_step: Some(1e-3),
            method: Method::Euler,
            cutoff: 0.0,
        };
        let mut spec = SweepSpec::new(
            Grid::from_values(&values, false).unwrap(),
            ParamMap::new().edges("d", &["delay"], &[("jrc1/pc", "jrc2/pc", Some(0))]),
            sim,
        );
        spec.outputs = vec![("v".into(), "jrc2/pc/rpo_e_in/v".into())];
        spec.backend = Backend::Reference;
        (spec.block_size, spec.threads) = (2, Some(2));
        assert_eq!(build_plan(&spec, &base).unwrap().groups.len(), 3);
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (p, &d) in delays.iter().enumerate() {
            let file = dir.path().join(format!("jr{p}.yaml"));
            let edited = edge.replace("delay: 0.004", &format!("delay: {d:?}"));
            std::fs::write(&file, yaml.replace(edge, &edited)).unwrap();
            let c = crate::model::load_circuit(&format!("{}/JRC_2delaycoupled", file.display()), &opts)
                .map_err(|e| format!("{e:?}"))
                .unwrap()
                .circuit;
            let (rows, _) = single_run(&c, &spec, p, &[]);
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            assert!(same(&r.trace(p, 0).unwrap(), &single), "delay {d}");
        }
        // The delay reaches the output: 3 ms and 5 ms differ.
        assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(2, 0).unwrap()));
    }

    #[test]
    fn sweep_gamma_chains_with_per_point_input_run_consecutive_blocks_equal_single_runs() {
        // A per-point input column is addressed by `first_point + lane`: blocks stay runs of
        // consecutive points of one group, and every point still equals its single run.
        let delays = [0.2, 0.2, 0.1, 0.1, 0.3, 0.2];
        let spreads = [0.1; 6];
        let dir = tempfile::tempdir().unwrap();
        let base = load_yaml(dir.path(), "base.yaml", gamma_yaml(0.15, 0.1));
        let mut spec = gamma_spec(&delays, &spreads, Backend::Reference);
        let steps = 1000;
        let data: Vec<f64> = (0..steps * 6).map(|i| 0.5 * (i % 6) as f64).collect();
        spec.inputs = vec![(
            "a/P/r_in".into(),
            Signal::PerPoint {
                points: 6,
                data: data.into(),
            },
        )];
        (spec.block_size, spec.chunk_size) = (4, 0);
        let plan = build_plan(&spec, &base).unwrap();
        assert!(!plan.gather);
        assert_eq!(
            plan.blocks(0..6, 3),
            vec![Lanes::Run(0, 2), Lanes::Run(2, 2), Lanes::Run(4, 1), Lanes::Run(5, 1)]
        );
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        for (p, &d) in delays.iter().enumerate() {
            let c = load_yaml(dir.path(), &format!("p{p}.yaml"), gamma_yaml(d, 0.1));
            let (rows, _) = single_run(&c, &spec, p, &[]);
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            assert!(same(&r.trace(p, 0).unwrap(), &single), "point {p}");
        }
        // The input columns differ per point: equal delays, different traces.
        assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(1, 0).unwrap()));
    }
}
