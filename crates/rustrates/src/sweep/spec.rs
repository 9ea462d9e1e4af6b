//! What defines a sweep ([`SweepSpec`]) and how a run is driven and observed.

use std::ops::Range;
use std::sync::atomic::AtomicBool;

use super::grid::Grid;
use super::param_map::ParamMap;
use super::regime::{self, RegimeSettings};
use super::summary::Statistic;
use super::BlockSolver;
use crate::kernel::{Backend, Precision};
use crate::solve::{self, PointStatus, Signal, SimConfig};

/// Default lanes per block (one SIMD-friendly block of structure-of-arrays lanes).
pub const DEFAULT_BLOCK_SIZE: usize = 64;
/// Default points per chunk: the unit of resume (one part file), not of memory (the results
/// writer's queue bounds that, see `io::h5::QUEUE_BYTES`). A chunk of 65,536 points of 50,000
/// steps is tens of seconds on one core, and a sweep of up to that many points needs no part
/// files at all: writing, hashing, merging and deleting the three part files of a 10,000-point
/// sweep took about a tenth of a summaries-only sweep's time and 3.7 of the 5 seconds of a
/// sweep keeping traces. A user who wants a finer resume sets `chunk_size`.
pub const DEFAULT_CHUNK_SIZE: usize = 65_536;

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
    /// Random starts per point, run after the `initial_conditions` ones (see
    /// [`regime::RandomStarts`] for the distribution and the seeding).
    pub random_starts: Option<regime::RandomStarts>,
    /// Worker threads (default: rayon's default, i.e. `RAYON_NUM_THREADS` or all cores),
    /// capped at the cores unless `oversubscribe`.
    pub threads: Option<usize>,
    /// Run more threads than cores when `threads` asks for them.
    pub oversubscribe: bool,
    pub block_size: usize,
    /// Points per chunk (part file). 0 = the whole grid in one chunk. [`SweepSpec::new`] sets
    /// [`DEFAULT_CHUNK_SIZE`].
    pub chunk_size: usize,
    /// Adaptive refinement: the grid is the coarse level ([`super::refine`]).
    pub refine: Option<super::refine::Refine>,
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
            random_starts: None,
            threads: None,
            oversubscribe: false,
            block_size: DEFAULT_BLOCK_SIZE,
            chunk_size: DEFAULT_CHUNK_SIZE,
            refine: None,
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
        // The solver's rule (`solve::TimeGrid::first_emitted`): a hair of tolerance so that a
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
        if let Some(r) = &self.refine {
            settings["refine"] = r.to_json();
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
        if let Some(rs) = &self.random_starts {
            settings["random_starts"] = serde_json::json!({
                "n": rs.n,
                "seed": rs.seed,
                "bounds": rs.bounds.iter().map(|(k, lo, hi)| (k.clone(), serde_json::json!([lo, hi]))).collect::<serde_json::Map<_, _>>(),
            });
        }
        settings
    }

    /// Starts per point: the `initial_conditions` entries and the random ones.
    pub fn starts_per_point(&self) -> usize {
        (self.initial_conditions.len() + self.random_starts.as_ref().map_or(0, |r| r.n)).max(1)
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
    /// Called after every block, from the worker threads, one call at a time; `points_done`
    /// only grows from one call to the next (a block that finishes with a count already
    /// passed by another thread's report is not reported).
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    pub shard: Option<Shard>,
    /// Replaces [`solve::run_block`] when set.
    pub solver: Option<&'a BlockSolver<'a>>,
    /// Keeps the compiled kernel across runs of this spec with other points (refine passes).
    pub plans: Option<&'a super::PlanMemo>,
    /// Computes refine passes elsewhere (the cluster mode's workers) instead of in this
    /// process; the refine rule and the results stay the engine's.
    pub refine_passes: Option<&'a (dyn super::refine::PassRunner + Sync)>,
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

impl<'a> SweepMeta<'a> {
    /// What a sink is told before the first chunk of `spec`, run as `circuit_name` with the
    /// plan's sample `time`s and `columns`.
    pub(crate) fn of(
        spec: &'a SweepSpec,
        circuit_name: &'a str,
        time: &'a [f64],
        columns: &'a [(String, String)],
        chunks: &'a [Range<usize>],
    ) -> SweepMeta<'a> {
        SweepMeta {
            circuit_name,
            grid: &spec.param_grid,
            time,
            columns,
            summaries: &spec.summaries,
            keep_traces: spec.keep_traces,
            chunks,
            block_size: spec.block_size,
            spec,
        }
    }
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
