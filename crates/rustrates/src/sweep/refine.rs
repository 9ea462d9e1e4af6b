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

use std::collections::{HashMap, HashSet};

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

mod view;
pub use view::{regular_result, regular_view, RegularView};

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
    let mut summary = SweepSummary::nothing_run(spec.backend, Vec::new());
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
    sink.begin(&SweepMeta::of(spec, &circuit.name, time, columns, &chunks))?;
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

#[cfg(test)]
mod tests;
