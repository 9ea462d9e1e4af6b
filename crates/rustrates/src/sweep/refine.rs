//! Adaptive refinement of 1-D and 2-D regime maps (`refine=`).
//!
//! The spec's grid is the coarse level: a Cartesian grid of one or two keys (any spacing).
//! With `levels = L`, the finest lattice divides every coarse interval into 2^L equal steps;
//! lattice node `i` of an axis lies at `c[i / 2^L] + (c[i / 2^L + 1] − c[i / 2^L]) · (i mod 2^L) / 2^L`.
//!
//! A cell (an interval, or a rectangle of lattice nodes) is split in two (1-D) or four (2-D)
//! when the computed points on it differ by the criterion: in regime (every output's `regime`
//! code, its `multistable` flag when the sweep computes it, and the point's status), or in one
//! summary by more than `tolerance` (max − min over the cell, per output). Splitting computes
//! the cell's midpoints that no earlier pass computed; nothing is ever computed twice. Cells
//! are checked on every computed point of their border, so a cell whose corners agree is still
//! split when a neighbour's refinement finds a different regime on their shared edge; passes
//! repeat until no cell of more than one finest step differs. A boundary that enters and
//! leaves a cell between points that agree (a region narrower than the cell) is not seen.
//!
//! Results are a point set: the coarse points in the grid's order, then each pass's new points
//! (ordered by the second key's lattice index, then the first's). The level of each point —
//! the coarsest level whose lattice holds it, 0 for the coarse grid — is the extra grid column
//! [`LEVEL_KEY`]. [`regular_view`] fills the finest lattice from such a point set for plotting.

use std::collections::{HashMap, HashSet, VecDeque};

use super::grid::Grid;
use super::plan::{build_plan, on_compile_stack, PlanMemo};
use super::summary::Statistic;
use super::{
    run_with, BlockOutput, MemorySink, Progress, RunControl, SweepError, SweepMeta, SweepResult, SweepSink, SweepSpec,
    SweepSummary,
};
use crate::kernel::Backend;
use crate::model::Circuit;
use crate::solve::{PointStatus, Signal};

/// The grid column that records each point's refinement level.
pub const LEVEL_KEY: &str = "refine_level";
/// The most levels: 2^16 finest steps per coarse interval.
pub const MAX_LEVELS: u32 = 16;

/// What decides that a cell is split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Criterion {
    /// The points differ in regime code, `multistable` flag or status.
    Regime,
    /// The points' values of this summary span more than the tolerance (or one is NaN and
    /// another not), for any output.
    Summary(Statistic),
}

/// `refine=`: how many levels below the coarse grid, and when to split a cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refine {
    pub levels: u32,
    pub criterion: Criterion,
    /// Used by [`Criterion::Summary`]: the largest spread of the summary within a cell that
    /// leaves the cell whole.
    pub tolerance: f64,
}

impl Criterion {
    /// `regime`, or the name of a summary (`mean`, `period`, …).
    pub fn parse(name: &str) -> Option<Criterion> {
        if name == "regime" {
            return Some(Criterion::Regime);
        }
        Statistic::parse(name).map(Criterion::Summary)
    }
}

impl Refine {
    /// What a results file records of the refinement (its settings' `refine` entry).
    pub fn to_json(&self) -> serde_json::Value {
        let criterion = match self.criterion {
            Criterion::Regime => "regime".to_string(),
            Criterion::Summary(s) => s.name().to_string(),
        };
        serde_json::json!({
            "levels": self.levels,
            "criterion": criterion,
            "tolerance": self.tolerance,
            "level_key": LEVEL_KEY,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RefineError {
    #[error("refine works on grids of one or two keys; this grid has {found}")]
    Keys { found: usize },
    #[error("refine: key '{key}' has {found} distinct value(s); the coarse grid needs at least 2 per key")]
    TooFewValues { key: String, found: usize },
    #[error(
        "refine needs a Cartesian coarse grid (every combination of the keys' values once, e.g. permute_grid=True): \
         the grid has {points} points, its values make {expected} combinations"
    )]
    NotCartesian { points: usize, expected: usize },
    #[error("refine levels must be 1 … {MAX_LEVELS}, got {levels}")]
    Levels { levels: u32 },
    #[error("refine tolerance must be a finite number ≥ 0, got {tolerance}")]
    Tolerance { tolerance: f64 },
    #[error("refine criterion `{}` needs that summary: add `{}` to the summaries", .stat.name(), .stat.name())]
    MissingSummary { stat: Statistic },
    #[error("grid key '{LEVEL_KEY}' is reserved: refine records each point's level under that name")]
    ReservedKey,
    #[error(
        "refine runs level after level (each level's points depend on the last), so it cannot be cut \
         into shards; run it without --shard, or on a cluster with ClusterGridSearch.run(refine=...), \
         which hands each level's points to the workers"
    )]
    Shard,
    #[error(
        "input '{name}' gives one series per grid point, which refine cannot follow (it makes its points as it runs); \
         use one series for all points"
    )]
    PerPointInput { name: String },
}

/// The coarse values of one axis and the lattice built on them.
#[derive(Clone, Debug)]
struct Axis {
    coarse: Vec<f64>,
    /// Finest steps per coarse interval, 2^levels.
    scale: usize,
}

impl Axis {
    fn nodes(&self) -> usize {
        (self.coarse.len() - 1) * self.scale + 1
    }
    fn value(&self, node: usize) -> f64 {
        let (i, k) = (node / self.scale, node % self.scale);
        if k == 0 {
            return self.coarse[i];
        }
        let (a, b) = (self.coarse[i], self.coarse[i + 1]);
        a + (b - a) * k as f64 / self.scale as f64
    }
    /// The lattice node of value `x` (nearest; `None` outside the axis).
    fn node_of(&self, x: f64) -> Option<usize> {
        let (first, last) = (self.coarse[0], *self.coarse.last()?);
        if !(x >= first && x <= last) {
            return None;
        }
        let i = self.coarse.partition_point(|c| *c <= x).saturating_sub(1);
        let i = i.min(self.coarse.len() - 2);
        let (a, b) = (self.coarse[i], self.coarse[i + 1]);
        let k = ((x - a) / (b - a) * self.scale as f64).round() as usize;
        Some(i * self.scale + k.min(self.scale))
    }
}

/// Sorted distinct values.
fn distinct(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// The axes of a coarse grid, checked to be Cartesian.
fn coarse_axes(grid: &Grid, scale: usize) -> Result<Vec<Axis>, RefineError> {
    let k = grid.keys().len();
    if !(1..=2).contains(&k) {
        return Err(RefineError::Keys { found: k });
    }
    if grid.keys().iter().any(|key| key == LEVEL_KEY) {
        return Err(RefineError::ReservedKey);
    }
    let mut axes = Vec::with_capacity(k);
    for (key, column) in grid.keys().iter().zip(grid.columns()) {
        let coarse = distinct(column);
        if coarse.len() < 2 || coarse.iter().any(|v| !v.is_finite()) {
            return Err(RefineError::TooFewValues {
                key: key.clone(),
                found: coarse.len(),
            });
        }
        axes.push(Axis { coarse, scale });
    }
    let expected: usize = axes.iter().map(|a| a.coarse.len()).product();
    let combos: HashSet<Vec<u64>> = (0..grid.len())
        .map(|p| (0..k).map(|key| grid.value(p, key).to_bits()).collect())
        .collect();
    if grid.len() != expected || combos.len() != expected {
        return Err(RefineError::NotCartesian {
            points: grid.len(),
            expected,
        });
    }
    Ok(axes)
}

/// A lattice node: `(first key's index, second key's index)`; the second is 0 in 1-D.
type Node = (usize, usize);

/// A cell of the lattice: its lowest corner and side in finest steps.
#[derive(Clone, Copy, Debug)]
struct Cell {
    corner: Node,
    size: usize,
}

/// The level of a node: the coarsest level whose lattice holds it.
fn level_of(node: Node, levels: u32, two_d: bool) -> u32 {
    let tz = |i: usize| if i == 0 { levels } else { i.trailing_zeros().min(levels) };
    let zeros = if two_d { tz(node.0).min(tz(node.1)) } else { tz(node.0) };
    levels - zeros
}

/// The results gathered so far, one entry per computed point.
struct Points {
    nodes: Vec<Node>,
    status: Vec<PointStatus>,
    /// `[statistic][point * n_columns + column]`.
    summaries: Vec<Vec<f64>>,
    /// `[point][time][column]`, when traces are kept.
    traces: Option<Vec<f64>>,
    at: HashMap<Node, usize>,
}

/// Which summaries (by index in the spec) a cell's points are compared on, and how.
struct Compare {
    stats: Vec<usize>,
    tolerance: Option<f64>,
    n_columns: usize,
}

impl Compare {
    fn new(spec: &SweepSpec, refine: &Refine) -> Result<Compare, RefineError> {
        let index = |s: Statistic| spec.summaries.iter().position(|x| *x == s);
        let (stats, tolerance) = match refine.criterion {
            Criterion::Regime => {
                let regime = index(Statistic::Regime).ok_or(RefineError::MissingSummary {
                    stat: Statistic::Regime,
                })?;
                (
                    std::iter::once(regime).chain(index(Statistic::Multistable)).collect(),
                    None,
                )
            }
            Criterion::Summary(s) => (
                vec![index(s).ok_or(RefineError::MissingSummary { stat: s })?],
                Some(refine.tolerance),
            ),
        };
        Ok(Compare {
            stats,
            tolerance,
            n_columns: 0,
        })
    }

    /// Whether the points `members` differ.
    fn differ(&self, points: &Points, members: &[usize]) -> bool {
        let Some((&first, rest)) = members.split_first() else {
            return false;
        };
        if rest.iter().any(|&p| points.status[p] != points.status[first]) {
            return true;
        }
        let nc = self.n_columns;
        for &si in &self.stats {
            let values = &points.summaries[si];
            for c in 0..nc {
                let at = |p: usize| values[p * nc + c];
                match self.tolerance {
                    // Codes: equal, NaN equal to NaN (a failed point has none).
                    None => {
                        let a = at(first);
                        if rest.iter().any(|&p| at(p).to_bits() != a.to_bits() && at(p) != a) {
                            return true;
                        }
                    }
                    Some(tol) => {
                        let nan = members.iter().filter(|&&p| at(p).is_nan()).count();
                        if nan != 0 && nan != members.len() {
                            return true;
                        }
                        let (lo, hi) = members
                            .iter()
                            .map(|&p| at(p))
                            .filter(|v| !v.is_nan())
                            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
                        if hi - lo > tol {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }
}

/// The computed points on the closed cell (its border: a cell's interior is computed only by
/// splitting it).
fn members(points: &Points, cell: Cell, two_d: bool) -> Vec<usize> {
    let (i0, j0) = cell.corner;
    let s = cell.size;
    let mut out = Vec::new();
    let mut add = |n: Node| {
        if let Some(&p) = points.at.get(&n) {
            out.push(p);
        }
    };
    if !two_d {
        for i in i0..=i0 + s {
            add((i, 0));
        }
        return out;
    }
    for i in i0..=i0 + s {
        add((i, j0));
        add((i, j0 + s));
    }
    for j in j0 + 1..j0 + s {
        add((i0, j));
        add((i0 + s, j));
    }
    out
}

/// Computes the points of one refine pass outside this process's memory — the cluster mode
/// hands them to its workers as chunks. `spec` is an ordinary sweep of the pass's points (no
/// `refine`, the concrete back end of the whole refine run); the result holds them in
/// `spec`'s point order. Deciding the next pass and writing the results stay with [`run`].
pub trait PassRunner {
    fn run_pass(&self, spec: &SweepSpec, circuit: &Circuit) -> Result<SweepResult, SweepError>;
}

/// Runs the sweep `spec` (its grid the coarse level) refined by `refine` into `sink`: the
/// sink sees one sweep over the final point set, whose grid has the extra column
/// [`LEVEL_KEY`].
pub fn run(
    spec: &SweepSpec,
    refine: &Refine,
    circuit: &Circuit,
    sink: &mut dyn SweepSink,
    ctrl: RunControl<'_>,
) -> Result<SweepSummary, SweepError> {
    check(spec, refine)?;
    let scale = 1usize << refine.levels;
    let axes = coarse_axes(&spec.param_grid, scale)?;
    let two_d = axes.len() == 2;
    let mut compare = Compare::new(spec, refine)?;

    let done_before = std::sync::atomic::AtomicUsize::new(0);
    let steps_before = std::sync::atomic::AtomicU64::new(0);
    let outer = ctrl.progress;
    let shifted = |p: Progress| {
        if let Some(f) = outer {
            let before = done_before.load(std::sync::atomic::Ordering::Relaxed);
            f(Progress {
                points_done: before + p.points_done,
                points_total: before + p.points_total,
                lane_steps: steps_before.load(std::sync::atomic::Ordering::Relaxed) + p.lane_steps,
            });
        }
    };
    let level_ctrl = RunControl {
        progress: Some(&shifted),
        shard: None,
        ..ctrl
    };
    let mut summary = SweepSummary {
        points_run: 0,
        points_skipped: 0,
        chunks_run: 0,
        chunks_skipped: 0,
        lane_steps: 0,
        points_failed: 0,
        backend: spec.backend,
        notes: Vec::new(),
    };
    // Every pass runs on the back end `Auto` picks for the coarse grid (one kernel for all
    // passes, and the same choice wherever a pass runs), compiled once into `memo`.
    let own_memo = PlanMemo::default();
    let memo = ctrl.plans.unwrap_or(&own_memo);
    let backend = match spec.backend {
        Backend::Auto => {
            let mut coarse = spec.clone();
            coarse.refine = None;
            on_compile_stack(|| build_plan(&coarse, circuit, Some(memo)).map(|p| p.groups[0].kernel.backend()))?
        }
        b => b,
    };
    let level_ctrl = RunControl {
        plans: Some(memo),
        refine_passes: None,
        ..level_ctrl
    };
    // One pass: the points `grid`, in memory or by `ctrl.refine_passes`.
    let run_pass = |grid: Grid, summary: &mut SweepSummary| -> Result<SweepResult, SweepError> {
        let mut pass = spec.clone();
        pass.refine = None;
        pass.param_grid = grid;
        pass.chunk_size = 0;
        pass.backend = backend;
        if let Some(runner) = ctrl.refine_passes {
            let result = runner.run_pass(&pass, circuit)?;
            let n_stats = result.summaries.as_ref().map_or(0, |s| s.values.len());
            if result.status.len() != pass.param_grid.len() || n_stats != pass.summaries.len() {
                return Err(SweepError::Output {
                    source: format!(
                        "a refine pass of {} points came back with {} points and {n_stats} summaries",
                        pass.param_grid.len(),
                        result.status.len()
                    )
                    .into(),
                });
            }
            let failed = result.status.iter().filter(|s| **s != PointStatus::Ok).count();
            let n = pass.param_grid.len();
            done_before.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            summary.points_run += n;
            summary.lane_steps += n as u64 * pass.steps();
            summary.points_failed += failed;
            summary.backend = backend;
            return Ok(result);
        }
        let mut mem = MemorySink::new();
        let s = run_with(&pass, circuit, &mut mem, level_ctrl)?;
        done_before.fetch_add(s.points_run, std::sync::atomic::Ordering::Relaxed);
        steps_before.fetch_add(s.lane_steps, std::sync::atomic::Ordering::Relaxed);
        summary.points_run += s.points_run;
        summary.lane_steps += s.lane_steps;
        summary.points_failed += s.points_failed;
        summary.backend = s.backend;
        for note in s.notes {
            if !summary.notes.contains(&note) {
                summary.notes.push(note);
            }
        }
        Ok(mem.into_result().expect("a finished run has begun its sink"))
    };

    let coarse = run_pass(spec.param_grid.clone(), &mut summary)?;
    compare.n_columns = coarse.columns.len();
    let node_of = |p: usize, values: &[Vec<f64>]| -> Node {
        let i = axes[0].node_of(values[0][p]).expect("a coarse value lies on its axis");
        let j = if two_d {
            axes[1].node_of(values[1][p]).expect("a coarse value lies on its axis")
        } else {
            0
        };
        (i, j)
    };
    let nodes: Vec<Node> = (0..spec.param_grid.len())
        .map(|p| node_of(p, spec.param_grid.columns()))
        .collect();
    let mut points = Points {
        at: nodes.iter().enumerate().map(|(p, n)| (*n, p)).collect(),
        nodes,
        status: coarse.status.clone(),
        summaries: coarse.summaries.as_ref().map_or_else(Vec::new, |s| s.values.clone()),
        traces: coarse.traces.clone(),
    };
    let (time, columns) = (coarse.time, coarse.columns);

    let cells_per_axis = |a: &Axis| a.coarse.len() - 1;
    let mut leaves: Vec<Cell> = Vec::new();
    for cj in 0..if two_d { cells_per_axis(&axes[1]) } else { 1 } {
        for ci in 0..cells_per_axis(&axes[0]) {
            leaves.push(Cell {
                corner: (ci * scale, if two_d { cj * scale } else { 0 }),
                size: scale,
            });
        }
    }
    let mut passes = 1;
    loop {
        let (split, keep): (Vec<Cell>, Vec<Cell>) = leaves
            .into_iter()
            .partition(|c| c.size > 1 && compare.differ(&points, &members(&points, *c, two_d)));
        leaves = keep;
        if split.is_empty() {
            break;
        }
        let mut new_nodes: HashSet<Node> = HashSet::new();
        for cell in split {
            let half = cell.size / 2;
            let (i0, j0) = cell.corner;
            let (a_max, b_max) = (2, if two_d { 2 } else { 0 });
            for b in 0..=b_max {
                for a in 0..=a_max {
                    let node = (i0 + a * half, j0 + b * half);
                    if !points.at.contains_key(&node) {
                        new_nodes.insert(node);
                    }
                }
            }
            for b in 0..b_max.max(1) {
                for a in 0..2 {
                    leaves.push(Cell {
                        corner: (i0 + a * half, j0 + b * half),
                        size: half,
                    });
                }
            }
        }
        let mut new_nodes: Vec<Node> = new_nodes.into_iter().collect();
        if new_nodes.is_empty() {
            continue;
        }
        new_nodes.sort_by_key(|&(i, j)| (j, i));
        let mut cols = vec![new_nodes.iter().map(|n| axes[0].value(n.0)).collect::<Vec<f64>>()];
        if two_d {
            cols.push(new_nodes.iter().map(|n| axes[1].value(n.1)).collect());
        }
        let grid = Grid::from_columns(spec.param_grid.keys().to_vec(), cols)?;
        let result = run_pass(grid, &mut summary)?;
        passes += 1;
        let base = points.nodes.len();
        for (k, node) in new_nodes.iter().enumerate() {
            points.at.insert(*node, base + k);
        }
        points.nodes.extend(new_nodes);
        points.status.extend(result.status);
        if let Some(s) = result.summaries {
            for (dst, src) in points.summaries.iter_mut().zip(s.values) {
                dst.extend(src);
            }
        }
        if let (Some(dst), Some(src)) = (points.traces.as_mut(), result.traces) {
            dst.extend(src);
        }
    }

    // Passes are the unit of work here (what chunks are to a plain sweep); `points_run`
    // counts every computed point (notes are for what the user must know: fronts warn them).
    summary.chunks_run = passes;

    // The final point set, levels as an extra column.
    let mut keys = spec.param_grid.keys().to_vec();
    keys.push(LEVEL_KEY.to_string());
    let mut cols: Vec<Vec<f64>> = (0..axes.len())
        .map(|a| {
            points
                .nodes
                .iter()
                .map(|n| axes[a].value(if a == 0 { n.0 } else { n.1 }))
                .collect()
        })
        .collect();
    // The coarse points keep the values the user gave (not the lattice's recomputation).
    for (a, col) in cols.iter_mut().enumerate() {
        col[..spec.param_grid.len()].copy_from_slice(spec.param_grid.column(a));
    }
    cols.push(
        points
            .nodes
            .iter()
            .map(|n| f64::from(level_of(*n, refine.levels, two_d)))
            .collect(),
    );
    let mut final_spec = spec.clone();
    final_spec.param_grid = Grid::from_columns(keys, cols)?;
    replay(&final_spec, circuit, &time, &columns, &points, sink)?;
    Ok(summary)
}

/// Whether `spec` can be cut into shards that run independently: not when it refines, since
/// each level's points depend on the level before (the cluster mode runs each level's
/// points as chunks through a [`PassRunner`] instead).
pub fn check_distributable(spec: &SweepSpec) -> Result<(), RefineError> {
    if spec.refine.is_some() {
        return Err(RefineError::Shard);
    }
    Ok(())
}

/// What the engine refuses before anything runs.
pub fn check(spec: &SweepSpec, refine: &Refine) -> Result<(), RefineError> {
    if refine.levels == 0 || refine.levels > MAX_LEVELS {
        return Err(RefineError::Levels { levels: refine.levels });
    }
    if !(refine.tolerance.is_finite() && refine.tolerance >= 0.0) {
        return Err(RefineError::Tolerance {
            tolerance: refine.tolerance,
        });
    }
    Compare::new(spec, refine)?;
    coarse_axes(&spec.param_grid, 1)?;
    if let Some((name, _)) = spec.inputs.iter().find(|(_, s)| matches!(s, Signal::PerPoint { .. })) {
        return Err(RefineError::PerPointInput { name: name.clone() });
    }
    Ok(())
}

/// Gives the sink the point set as one sweep, chunk by chunk and block by block.
fn replay(
    spec: &SweepSpec,
    circuit: &Circuit,
    time: &[f64],
    columns: &[(String, String)],
    points: &Points,
    sink: &mut dyn SweepSink,
) -> Result<(), SweepError> {
    let chunks = spec.chunks();
    sink.begin(&SweepMeta {
        circuit_name: &circuit.name,
        grid: &spec.param_grid,
        time,
        columns,
        summaries: &spec.summaries,
        keep_traces: spec.keep_traces,
        chunks: &chunks,
        block_size: spec.block_size,
        spec,
    })?;
    let nc = columns.len();
    let per_point = time.len() * nc;
    for (ci, range) in chunks.iter().enumerate() {
        if !sink.begin_chunk(ci, range.clone())? {
            continue;
        }
        let mut traces_placed = false;
        if let (Some(src), Some(dst)) = (points.traces.as_ref(), sink.trace_target(range.clone())) {
            dst.copy_from_slice(&src[range.start * per_point..range.end * per_point]);
            traces_placed = true;
        }
        let handler = sink.block_handler();
        let mut start = range.start;
        while start < range.end {
            let end = (start + spec.block_size.max(1)).min(range.end);
            let summaries: Vec<f64> = points
                .summaries
                .iter()
                .flat_map(|v| v[start * nc..end * nc].iter().copied())
                .collect();
            let out = BlockOutput {
                first_point: start,
                lanes: end - start,
                traces: points
                    .traces
                    .as_ref()
                    .filter(|_| !traces_placed)
                    .map(|t| &t[start * per_point..end * per_point]),
                summaries: &summaries,
                status: &points.status[start..end],
            };
            match &handler {
                Some(h) => h.block(out)?,
                None => sink.block(out)?,
            }
            start = end;
        }
        drop(handler);
        sink.end_chunk(ci, range.clone())?;
    }
    sink.finish()
}

/// The finest lattice of a refined point set, each node filled from the nearest point.
#[derive(Clone, Debug, PartialEq)]
pub struct RegularView {
    /// The lattice values of the first and (2-D) second key.
    pub axes: Vec<Vec<f64>>,
    /// Per node (first key fastest), the index of the point whose values it shows.
    pub source: Vec<usize>,
}

/// The regular view of a refined point set: `keys` and `values` are its grid columns,
/// [`LEVEL_KEY`] among them. The lattice is the finest level present (coarse values: the
/// level-0 points'). Every node takes the point nearest to it in lattice steps (Chebyshev
/// distance: a breadth-first fill over the 8 neighbours in 2-D), ties going to the point first
/// in file order; computed nodes show themselves. `None` when the columns are not a refined
/// point set (no level column, or points off the lattice).
pub fn regular_view(keys: &[String], values: &[Vec<f64>]) -> Option<RegularView> {
    let li = keys.iter().position(|k| k == LEVEL_KEY)?;
    let param: Vec<usize> = (0..keys.len()).filter(|&k| k != li).collect();
    if !(1..=2).contains(&param.len()) {
        return None;
    }
    let levels = values[li].iter().copied().fold(0.0f64, f64::max);
    if !(0.0..=f64::from(MAX_LEVELS)).contains(&levels) {
        return None;
    }
    let scale = 1usize << levels as u32;
    let coarse_of = |k: usize| -> Vec<f64> {
        let level0: Vec<f64> = values[k]
            .iter()
            .zip(&values[li])
            .filter(|(_, l)| **l == 0.0)
            .map(|(v, _)| *v)
            .collect();
        distinct(&level0)
    };
    let axes: Vec<Axis> = param
        .iter()
        .map(|&k| Axis {
            coarse: coarse_of(k),
            scale,
        })
        .collect();
    if axes.iter().any(|a| a.coarse.len() < 2) {
        return None;
    }
    let (nx, ny) = (axes[0].nodes(), axes.get(1).map_or(1, Axis::nodes));
    let mut source = vec![usize::MAX; nx * ny];
    let mut queue = VecDeque::new();
    for (p, &x) in values[param[0]].iter().enumerate() {
        let i = axes[0].node_of(x)?;
        let j = match axes.get(1) {
            Some(a) => a.node_of(values[param[1]][p])?,
            None => 0,
        };
        let at = j * nx + i;
        if source[at] == usize::MAX {
            source[at] = p;
            queue.push_back(at);
        }
    }
    while let Some(at) = queue.pop_front() {
        let (i, j) = ((at % nx) as isize, (at / nx) as isize);
        for dj in -1..=1isize {
            for di in -1..=1isize {
                let (x, y) = (i + di, j + dj);
                if (di, dj) == (0, 0) || x < 0 || y < 0 || x >= nx as isize || y >= ny as isize {
                    continue;
                }
                let next = y as usize * nx + x as usize;
                if source[next] == usize::MAX {
                    source[next] = source[at];
                    queue.push_back(next);
                }
            }
        }
    }
    Some(RegularView {
        axes: axes
            .iter()
            .map(|a| (0..a.nodes()).map(|n| a.value(n)).collect())
            .collect(),
        source,
    })
}

/// A refined result as a regular result over the finest lattice ([`regular_view`]): grid
/// keys without [`LEVEL_KEY`], first key fastest, summaries and status of each node's source
/// point, no traces. `None` when the result is not refined.
pub fn regular_result(result: &SweepResult) -> Option<SweepResult> {
    let view = regular_view(&result.grid_keys, &result.grid_values)?;
    let nx = view.axes[0].len();
    let nc = result.columns.len();
    let keys: Vec<String> = result.grid_keys.iter().filter(|k| *k != LEVEL_KEY).cloned().collect();
    let mut grid_values = vec![view
        .source
        .iter()
        .enumerate()
        .map(|(at, _)| view.axes[0][at % nx])
        .collect::<Vec<_>>()];
    if let Some(ys) = view.axes.get(1) {
        grid_values.push((0..view.source.len()).map(|at| ys[at / nx]).collect());
    }
    Some(SweepResult {
        circuit_name: result.circuit_name.clone(),
        labels: (0..view.source.len())
            .map(|at| format!("{}_{at}", result.circuit_name))
            .collect(),
        grid_keys: keys,
        grid_values,
        time: result.time.clone(),
        columns: result.columns.clone(),
        traces: None,
        summaries: result.summaries.as_ref().map(|s| super::Summaries {
            stats: s.stats.clone(),
            values: s
                .values
                .iter()
                .map(|v| {
                    view.source
                        .iter()
                        .flat_map(|&p| v[p * nc..(p + 1) * nc].iter().copied())
                        .collect()
                })
                .collect(),
        }),
        status: view.source.iter().map(|&p| result.status[p]).collect(),
    })
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::kernel::Backend;
    use crate::model::jacobian::tests::stuart_landau;
    use crate::model::test_models;
    use crate::solve::{Method, SimConfig};
    use crate::sweep::regime::Regime;
    use crate::sweep::{ParamMap, Statistic};

    fn grid(keys: &[(&str, Vec<f64>)]) -> Grid {
        let values: IndexMap<String, Vec<f64>> = keys.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Grid::from_values(&values, true).unwrap()
    }

    fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
    }

    fn run_memory(spec: &SweepSpec, c: &Circuit) -> (SweepResult, SweepSummary) {
        let mut sink = MemorySink::new();
        let summary = crate::sweep::run(spec, c, &mut sink).unwrap();
        (sink.into_result().unwrap(), summary)
    }

    fn codes(r: &SweepResult, stat: Statistic) -> Vec<f64> {
        let nc = r.columns.len();
        let i = r
            .summaries
            .as_ref()
            .unwrap()
            .stats
            .iter()
            .position(|s| *s == stat)
            .unwrap();
        (0..r.labels.len())
            .map(|p| r.summaries.as_ref().unwrap().values[i][p * nc])
            .collect()
    }

    /// `(value, label)` of every point, sorted by value (1-D).
    fn sorted(r: &SweepResult, stat: Statistic) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = r.grid_values[0].iter().copied().zip(codes(r, stat)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    #[test]
    fn lattice_levels_and_axis_round_trip() {
        let axis = Axis {
            coarse: vec![-1.0, 0.0, 3.0],
            scale: 4,
        };
        assert_eq!(axis.nodes(), 9);
        assert_eq!(axis.value(2), -0.5);
        assert_eq!(axis.value(6), 1.5);
        for n in 0..9 {
            assert_eq!(axis.node_of(axis.value(n)), Some(n));
        }
        assert_eq!(axis.node_of(3.5), None);
        // Levels with L = 2: multiples of 4 are level 0, of 2 level 1, odd level 2; in 2-D
        // the finer of the two indices decides.
        assert_eq!(level_of((8, 0), 2, false), 0);
        assert_eq!(level_of((6, 0), 2, false), 1);
        assert_eq!(level_of((5, 0), 2, false), 2);
        assert_eq!(level_of((4, 2), 2, true), 1);
        assert_eq!(level_of((4, 3), 2, true), 2);
    }

    #[test]
    fn regular_view_fills_each_node_from_the_nearest_point() {
        // Coarse x ∈ {0, 4}, y ∈ {0, 4} (level 0), one level-2 point at (1, 1): the 5 × 5
        // lattice of step 1. Chebyshev distance decides; (2, 2) is 1 step from (1, 1) and 2
        // from every corner, (3, 3) is 1 from (4, 4).
        let keys = vec!["x".to_string(), "y".to_string(), LEVEL_KEY.to_string()];
        let values = vec![
            vec![0.0, 4.0, 0.0, 4.0, 1.0],
            vec![0.0, 0.0, 4.0, 4.0, 1.0],
            vec![0.0, 0.0, 0.0, 0.0, 2.0],
        ];
        let view = regular_view(&keys, &values).unwrap();
        assert_eq!(view.axes, vec![linspace(0.0, 4.0, 5), linspace(0.0, 4.0, 5)]);
        let at = |x: usize, y: usize| view.source[y * 5 + x];
        assert_eq!((at(0, 0), at(4, 0), at(0, 4), at(4, 4), at(1, 1)), (0, 1, 2, 3, 4));
        assert_eq!((at(2, 2), at(0, 2), at(3, 3), at(4, 1), at(1, 4)), (4, 4, 3, 1, 2));
        // Not refined: no view.
        assert_eq!(regular_view(&keys[..2], &values[..2]), None);
    }

    #[test]
    fn refine_settings_errors_name_what_to_fix() {
        let map = ParamMap::new().nodes("mu", &["sl/mu"], &["p"]);
        let sim = SimConfig {
            simulation_time: 1.0,
            dt: 0.01,
            sampling_step: None,
            method: Method::Rk4,
            cutoff: 0.0,
        };
        let mut spec = SweepSpec::new(grid(&[("mu", vec![-1.0, 1.0])]), map, sim);
        spec.summaries = vec![Statistic::Mean];
        let refine = |levels, criterion, tolerance| Refine {
            levels,
            criterion,
            tolerance,
        };
        let err = |spec: &SweepSpec, r: Refine| check(spec, &r).unwrap_err().to_string();
        assert!(err(&spec, refine(2, Criterion::Regime, 0.0)).contains("add `regime` to the summaries"));
        assert!(err(&spec, refine(0, Criterion::Summary(Statistic::Mean), 0.0)).contains("levels must be 1"));
        assert!(err(&spec, refine(2, Criterion::Summary(Statistic::Mean), -1.0)).contains("tolerance"));
        assert!(check(&spec, &refine(2, Criterion::Summary(Statistic::Mean), 0.1)).is_ok());
        spec.param_grid = Grid::from_columns(vec!["mu".into()], vec![vec![1.0]]).unwrap();
        assert!(err(&spec, refine(2, Criterion::Summary(Statistic::Mean), 0.0)).contains("at least 2"));
        spec.param_grid =
            Grid::from_columns(vec!["a".into(), "b".into()], vec![vec![0., 1., 0.], vec![0., 0., 1.]]).unwrap();
        assert!(err(&spec, refine(2, Criterion::Summary(Statistic::Mean), 0.0)).contains("Cartesian"));
    }

    #[test]
    fn stuart_landau_hopf_found_within_the_finest_cell() {
        // x' = μx − ωz − x r², z' = ωx + μz − z r² (ω = 2): a stable focus for μ < 0, a cycle
        // for μ > 0 (Hopf at μ = 0 exactly). Coarse μ every 0.5 from −1.03, 3 levels: finest
        // step 1/16, lattice nodes −0.03 and 0.0325 either side of 0. At |μ| ≥ 0.03 the
        // transient decays like e^{−|μ|t}: by the cutoff (t = 500) below 1e-6, so both sides
        // classify as the analytic answer.
        let mus: Vec<f64> = (0..5).map(|i| -1.03 + 0.5 * f64::from(i)).collect();
        let map = ParamMap::new().nodes("mu", &["sl/mu"], &["p"]);
        let sim = SimConfig {
            simulation_time: 600.0,
            dt: 0.02,
            sampling_step: Some(0.02),
            method: Method::Rk4,
            cutoff: 500.0,
        };
        let mut spec = SweepSpec::new(grid(&[("mu", mus)]), map, sim);
        spec.outputs = vec![("x".into(), "p/sl/x".into())];
        spec.summaries = vec![Statistic::Regime];
        spec.keep_traces = false;
        spec.backend = Backend::Jit;
        spec.refine = Some(Refine {
            levels: 3,
            criterion: Criterion::Regime,
            tolerance: 0.0,
        });
        let (r, summary) = run_memory(&spec, &stuart_landau(0.0, 2.0));
        // The one boundary cell halved three times: 5 coarse + 3 points, not the 33 nodes.
        assert_eq!(r.labels.len(), 8, "{:?}", r.grid_values);
        assert_eq!(summary.points_run, 8);
        let step = 0.5 / 8.0;
        let points = sorted(&r, Statistic::Regime);
        for &(mu, code) in &points {
            let want = if mu < 0.0 {
                Regime::StableFocus
            } else {
                Regime::Periodic
            };
            assert_eq!(Regime::from_code(code), Some(want), "mu {mu}");
        }
        let switch = points.windows(2).find(|w| w[0].1 != w[1].1).unwrap();
        assert!(switch[0].0 < 0.0 && switch[1].0 > 0.0);
        assert!((switch[1].0 - switch[0].0 - step).abs() < 1e-12, "{switch:?}");
        // Levels: the coarse points 0, then one point per level 1, 2, 3.
        let mut levels = r.grid_values[1].clone();
        levels.sort_by(f64::total_cmp);
        assert_eq!(levels, [0., 0., 0., 0., 0., 1., 2., 3.]);
        // The regular view labels all 33 lattice nodes as the analytic answer.
        let view = regular_result(&r).unwrap();
        assert_eq!(view.labels.len(), 33);
        for (mu, code) in view.grid_values[0].iter().zip(codes(&view, Statistic::Regime)) {
            let want = if *mu < 0.0 {
                Regime::StableFocus
            } else {
                Regime::Periodic
            };
            assert_eq!(Regime::from_code(code), Some(want), "mu {mu}");
        }
        // With traces kept, every point's trace and summaries are those of a plain sweep of
        // the same point set, bit for bit (the passes and the replay lose nothing).
        spec.keep_traces = true;
        let (kept, _) = run_memory(&spec, &stuart_landau(0.0, 2.0));
        let mut plain = spec.clone();
        plain.refine = None;
        plain.param_grid = Grid::from_columns(vec!["mu".into()], vec![kept.grid_values[0].clone()]).unwrap();
        let (direct, _) = run_memory(&plain, &stuart_landau(0.0, 2.0));
        assert_eq!(kept.grid_values[0], r.grid_values[0]);
        assert_eq!(kept.traces.as_ref().unwrap().len(), 8 * 5000);
        assert!(kept
            .traces
            .iter()
            .flatten()
            .zip(direct.traces.iter().flatten())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let bits = |r: &SweepResult| -> Vec<u64> {
            r.summaries
                .iter()
                .flat_map(|s| s.values.iter().flatten().map(|v| v.to_bits()))
                .collect()
        };
        assert_eq!(bits(&kept), bits(&direct));
        assert_eq!(kept.status, direct.status);
    }

    fn stuart_landau_refined(backend: Backend) -> SweepSpec {
        let mus: Vec<f64> = (0..5).map(|i| -1.03 + 0.5 * f64::from(i)).collect();
        let map = ParamMap::new().nodes("mu", &["sl/mu"], &["p"]);
        let sim = SimConfig {
            simulation_time: 60.0,
            dt: 0.02,
            sampling_step: Some(0.02),
            method: Method::Rk4,
            cutoff: 40.0,
        };
        let mut spec = SweepSpec::new(grid(&[("mu", mus)]), map, sim);
        spec.outputs = vec![("x".into(), "p/sl/x".into())];
        spec.summaries = Statistic::expand(&[Statistic::Regime, Statistic::Mean]);
        spec.keep_traces = false;
        spec.backend = backend;
        spec.refine = Some(Refine {
            levels: 4,
            criterion: Criterion::Regime,
            tolerance: 0.0,
        });
        spec
    }

    /// The result's summaries, every statistic and column, as bits (NaN compared by its bits).
    fn summary_bits(r: &SweepResult) -> Vec<Vec<u64>> {
        let s = r.summaries.as_ref().unwrap();
        s.values
            .iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    }

    #[test]
    fn every_refine_pass_runs_on_one_kernel_compiled_once() {
        // Auto resolves once (for the coarse grid) and every pass reuses that kernel: one
        // build for all passes. The results are a plain sweep's of the same points on that
        // back end, bit for bit (a second kernel, compiled by the plain sweep itself).
        let circuit = stuart_landau(0.0, 2.0);
        let spec = stuart_landau_refined(Backend::Auto);
        let memo = PlanMemo::default();
        let mut sink = MemorySink::new();
        let ctrl = RunControl {
            plans: Some(&memo),
            ..RunControl::default()
        };
        let summary = run_with(&spec, &circuit, &mut sink, ctrl).unwrap();
        let refined = sink.into_result().unwrap();
        assert!(summary.chunks_run >= 4, "passes: {}", summary.chunks_run);
        assert_eq!(memo.builds(), 1, "{} passes", summary.chunks_run);
        assert_ne!(summary.backend, Backend::Auto);
        let mut plain = spec.clone();
        plain.refine = None;
        plain.backend = summary.backend;
        plain.param_grid = Grid::from_columns(vec!["mu".into()], vec![refined.grid_values[0].clone()]).unwrap();
        let (direct, _) = run_memory(&plain, &circuit);
        assert_eq!(summary_bits(&refined), summary_bits(&direct));
        assert_eq!(refined.status, direct.status);
        // A concrete back end: no resolution, the first pass builds and the others reuse.
        let memo = PlanMemo::default();
        let ctrl = RunControl {
            plans: Some(&memo),
            ..RunControl::default()
        };
        let jit = stuart_landau_refined(Backend::Jit);
        let summary = run_with(&jit, &circuit, &mut MemorySink::new(), ctrl).unwrap();
        assert!(summary.chunks_run >= 4);
        assert_eq!(memo.builds(), 1);
    }

    /// Runs each pass as two halves (as workers would run chunks) and records the passes.
    struct HalvesRunner {
        passes: std::sync::Mutex<Vec<(usize, Backend)>>,
    }

    impl PassRunner for HalvesRunner {
        fn run_pass(&self, spec: &SweepSpec, circuit: &Circuit) -> Result<SweepResult, SweepError> {
            assert!(spec.refine.is_none());
            self.passes.lock().unwrap().push((spec.param_grid.len(), spec.backend));
            let n = spec.param_grid.len();
            let half = |range: std::ops::Range<usize>| {
                let mut part = spec.clone();
                let cols = (0..spec.param_grid.keys().len())
                    .map(|k| spec.param_grid.column(k)[range.clone()].to_vec())
                    .collect();
                part.param_grid = Grid::from_columns(spec.param_grid.keys().to_vec(), cols).unwrap();
                run_memory(&part, circuit).0
            };
            let (mut a, b) = (half(0..n / 2), half(n / 2..n));
            a.labels.extend(b.labels);
            for (x, y) in a.grid_values.iter_mut().zip(b.grid_values) {
                x.extend(y);
            }
            a.status.extend(b.status);
            if let (Some(sa), Some(sb)) = (a.summaries.as_mut(), b.summaries) {
                for (x, y) in sa.values.iter_mut().zip(sb.values) {
                    x.extend(y);
                }
            }
            Ok(a)
        }
    }

    #[test]
    fn passes_run_elsewhere_give_the_in_process_result_bit_for_bit() {
        // The cluster mode's route: the engine decides each pass, a PassRunner computes its
        // points (here in two halves, as chunks), the engine writes the point set. Same points,
        // labels, levels and summaries as the in-process refine.
        let circuit = stuart_landau(0.0, 2.0);
        let spec = stuart_landau_refined(Backend::Jit);
        let (local, local_summary) = run_memory(&spec, &circuit);
        let runner = HalvesRunner {
            passes: std::sync::Mutex::new(Vec::new()),
        };
        let mut sink = MemorySink::new();
        let ctrl = RunControl {
            refine_passes: Some(&runner),
            ..RunControl::default()
        };
        let summary = run_with(&spec, &circuit, &mut sink, ctrl).unwrap();
        let remote = sink.into_result().unwrap();
        let passes = runner.passes.into_inner().unwrap();
        assert_eq!(passes.len(), summary.chunks_run);
        assert_eq!(passes.len(), local_summary.chunks_run);
        assert!(passes.iter().all(|(_, b)| *b == Backend::Jit));
        assert_eq!(passes.iter().map(|p| p.0).sum::<usize>(), local.labels.len());
        assert_eq!(remote.labels, local.labels);
        let bits = |r: &SweepResult| -> Vec<Vec<u64>> {
            r.grid_values
                .iter()
                .map(|c| c.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&remote), bits(&local));
        assert_eq!(summary_bits(&remote), summary_bits(&local));
        assert_eq!(remote.status, local.status);
    }

    fn mpr_spec(grid: Grid, map: ParamMap) -> SweepSpec {
        // Three starts per point: near the low state and near the high one at either end of
        // its range (as `sweep::regime`'s boundary test).
        let sim = SimConfig {
            simulation_time: 100.0,
            dt: 0.005,
            sampling_step: Some(0.05),
            method: Method::Rk4,
            cutoff: 90.0,
        };
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.outputs = vec![("r".into(), "p/qif_op/r".into())];
        spec.summaries = vec![Statistic::Regime, Statistic::Multistable];
        spec.initial_conditions = vec![
            vec![("p/qif_op/r".into(), 0.01), ("p/qif_op/v".into(), -2.0)],
            vec![("p/qif_op/r".into(), 0.9), ("p/qif_op/v".into(), -0.19)],
            vec![("p/qif_op/r".into(), 1.25), ("p/qif_op/v".into(), -0.13)],
        ];
        spec.keep_traces = false;
        spec.backend = Backend::Jit;
        spec.block_size = 16;
        spec
    }

    fn mpr() -> Circuit {
        let (mut c, _) = test_models::mpr_single();
        c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
        c
    }

    #[test]
    fn montbrio_bistable_interval_boundaries_within_the_finest_cell() {
        // One MPR population (τ = Δ = 1, J = 15), bistable for η ∈ (−5.7435, −3.1361) (the
        // quartic's root count, `mpr_fixed_points`: an independent method). Coarse η every
        // 0.8 over [−7, −2.2], 4 levels: finest cell 0.05. Within one cell of a fold the slow
        // decay may leave an end still moving (the `sweep::regime` boundary test), so the
        // first and last multistable points must lie within one finest cell of the folds.
        let etas: Vec<f64> = (0..7).map(|i| -7.0 + 0.8 * f64::from(i)).collect();
        let map = ParamMap::new().nodes("eta", &["qif_op/eta"], &["p"]);
        let mut spec = mpr_spec(grid(&[("eta", etas)]), map);
        spec.refine = Some(Refine {
            levels: 4,
            criterion: Criterion::Regime,
            tolerance: 0.0,
        });
        let (r, _) = run_memory(&spec, &mpr());
        let cell = 0.8 / 16.0;
        for fold in [-5.7435, -3.1361] {
            let roots = |eta: f64| test_models::mpr_fixed_points(eta, 0.0, 15.0, 1.0).len();
            assert_ne!(roots(fold - 0.01), roots(fold + 0.01), "the analytic fold at {fold}");
        }
        let points = sorted(&r, Statistic::Multistable);
        let flagged: Vec<f64> = points.iter().filter(|p| p.1 == 1.0).map(|p| p.0).collect();
        let (first, last) = (flagged[0], flagged[flagged.len() - 1]);
        assert!(
            (first - -5.7435f64).abs() <= cell + 1e-12 && (last - -3.1361f64).abs() <= cell + 1e-12,
            "{first} … {last}"
        );
        // Around each fold the computed points are one finest cell apart.
        for fold in [-5.7435, -3.1361] {
            let below = points.iter().rev().find(|p| p.0 < fold).unwrap().0;
            let above = points.iter().find(|p| p.0 > fold).unwrap().0;
            assert!((above - below - cell).abs() < 1e-9, "{below} {above}");
        }
        // Fewer points than the 97 of the finest grid.
        assert!(r.labels.len() < 60, "{}", r.labels.len());
    }

    #[test]
    fn montbrio_2d_refined_map_labels_as_the_full_grid_away_from_boundaries() {
        // Over (η, J) the bistable region of one MPR population is a wedge ending in a cusp:
        // curved boundaries. A 5 × 5 coarse grid with 3 levels against the full 33 × 33
        // grid of the same lattice: the regular view must give every node the full grid's
        // regime and multistable flag, except nodes within one finest cell of a boundary
        // (a node of the full grid with a differently labelled neighbour among its 8).
        let etas = linspace(-8.0, 0.0, 5);
        let js = linspace(8.0, 20.0, 5);
        let map = ParamMap::new()
            .nodes("eta", &["qif_op/eta"], &["p"])
            .nodes("J", &["qif_op/J"], &["p"]);
        let mut spec = mpr_spec(grid(&[("eta", etas.clone()), ("J", js.clone())]), map);
        spec.sim.simulation_time = 60.0;
        spec.sim.cutoff = 50.0;
        spec.sim.dt = 0.01;
        let mut full = spec.clone();
        full.param_grid = grid(&[("eta", linspace(-8.0, 0.0, 33)), ("J", linspace(8.0, 20.0, 33))]);
        spec.refine = Some(Refine {
            levels: 3,
            criterion: Criterion::Regime,
            tolerance: 0.0,
        });
        let c = mpr();
        let (refined, _) = run_memory(&spec, &c);
        let (full, _) = run_memory(&full, &c);
        let view = regular_result(&refined).unwrap();
        assert_eq!(view.labels.len(), 33 * 33);
        // The full grid's point of each lattice node (its order is PyRates', not the view's).
        let node = |x: f64, y: f64| -> usize {
            let i = ((x + 8.0) / 8.0 * 32.0).round() as usize;
            let j = ((y - 8.0) / 12.0 * 32.0).round() as usize;
            j * 33 + i
        };
        let mut full_at = vec![usize::MAX; 33 * 33];
        for p in 0..full.labels.len() {
            full_at[node(full.grid_values[0][p], full.grid_values[1][p])] = p;
        }
        let label = |r: &SweepResult, p: usize| {
            (
                codes(r, Statistic::Regime)[p].to_bits(),
                codes(r, Statistic::Multistable)[p].to_bits(),
            )
        };
        let full_labels: Vec<_> = (0..33 * 33).map(|n| label(&full, full_at[n])).collect();
        let view_labels: Vec<_> = (0..33 * 33).map(|n| label(&view, n)).collect();
        let mut boundary_nodes = 0;
        for n in 0..33 * 33 {
            let (i, j) = ((n % 33) as isize, (n / 33) as isize);
            let near_boundary = (-1..=1).any(|dj| {
                (-1..=1).any(|di| {
                    let (x, y) = (i + di, j + dj);
                    (0..33).contains(&x) && (0..33).contains(&y) && full_labels[(y * 33 + x) as usize] != full_labels[n]
                })
            });
            boundary_nodes += usize::from(near_boundary);
            if !near_boundary {
                assert_eq!(view_labels[n], full_labels[n], "node ({i}, {j})");
            }
        }
        // Both regimes and a boundary are present, and refinement saved points.
        eprintln!(
            "2-D: {} computed of 1089, {boundary_nodes} nodes near a boundary",
            refined.labels.len()
        );
        assert!(boundary_nodes > 20, "{boundary_nodes}");
        assert!(full_labels.iter().any(|l| l.1 == 1.0f64.to_bits()));
        assert!(refined.labels.len() < 33 * 33 / 2, "{}", refined.labels.len());
        // Every computed point carries the full grid's values.
        for p in 0..refined.labels.len() {
            let n = node(refined.grid_values[0][p], refined.grid_values[1][p]);
            assert_eq!(label(&refined, p), full_labels[n], "point {p}");
        }
    }
}
