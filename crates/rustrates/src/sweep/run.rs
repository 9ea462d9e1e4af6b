//! Sweep execution: compile once, chunks of points, blocks of lanes on a rayon pool.
//!
//! The grid is cut into chunks of `chunk_size` points (the unit a sink persists: part files,
//! resume, shards) and each chunk into blocks of at most `block_size` lanes (the unit of
//! parallel work; smaller when a chunk has fewer points than `block_size × threads`, so small
//! sweeps still use every core, and when a delay ring would outgrow a core's cache:
//! [`crate::kernel::ring::block_lanes`]). Each block builds its parameter and initial-value arrays from
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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::block::{BlockData, Lanes};
use super::checks::{self};
use super::plan::{build_plan, on_compile_stack};
use super::{BlockOutput, Progress, RunControl, Shard, SweepError, SweepMeta, SweepSink, SweepSpec, SweepSummary};
use crate::kernel::Kernel;
use crate::model::Circuit;
use crate::solve::{self, Block, InputBinding, OutputBinding, PointStatus, SampleSink, SimConfig, SolveError};

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

impl SweepSummary {
    /// The counts of a run that has computed nothing yet, on `backend`.
    pub(crate) fn nothing_run(backend: crate::kernel::Backend, notes: Vec<String>) -> SweepSummary {
        SweepSummary {
            points_run: 0,
            points_skipped: 0,
            chunks_run: 0,
            chunks_skipped: 0,
            lane_steps: 0,
            points_failed: 0,
            backend,
            notes,
        }
    }
}

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
    if let Some(refine) = &spec.refine {
        if ctrl.shard.is_some() {
            super::refine::check_distributable(spec)?;
        }
        return super::refine::run(spec, refine, circuit, sink, ctrl);
    }
    let solver: &BlockSolver<'_> = ctrl.solver.unwrap_or(&solve::run_block);
    run_inner(spec, circuit, sink, ctrl, solver)
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

/// Runs `each` on every block, on every thread of `pool`, handing the blocks out in their
/// order (the points' order): a file sink then receives a chunk's blocks in ascending file
/// offsets, one sequential stream for the disk, where rayon's halving of the list would make
/// two (each thread working through its half). After an error no block is started; the
/// first error (in the order they happened) is returned.
fn in_point_order(
    pool: &rayon::ThreadPool,
    blocks: &[Lanes],
    each: impl Fn(&Lanes) -> Result<(), SweepError> + Sync,
) -> Result<(), SweepError> {
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<SweepError>> = Mutex::new(None);
    let stopped = AtomicBool::new(false);
    pool.broadcast(|_| {
        while !stopped.load(Ordering::Acquire) {
            let Some(b) = blocks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            if let Err(e) = each(b) {
                stopped.store(true, Ordering::Release);
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
    let plan = on_compile_stack(|| build_plan(spec, circuit, ctrl.plans))?;
    checks::check_run_memory(spec, plan.n_time, plan.n_cols, n_threads, in_memory, plan.buffer_traces)?;
    let chunks = spec.chunks();
    sink.begin(&SweepMeta::of(spec, &circuit.name, &plan.time, &plan.columns, &chunks))?;

    let total = spec.param_grid.len();
    let steps = spec.steps();
    let done = AtomicUsize::new(0);
    let lane_steps = AtomicU64::new(0);
    let failed = AtomicUsize::new(0);
    let mut summary = SweepSummary::nothing_run(plan.groups[0].kernel.backend(), threads_note.into_iter().collect());
    let per_point = plan.n_time * plan.n_cols;
    // Blocks finish on several threads: the count a block computed may reach the callback
    // after a larger one, so reports pass one at a time and only forward.
    let last_reported = Mutex::new(0usize);
    let report = |points_done: usize, lane_steps: u64| {
        if let Some(p) = ctrl.progress {
            let mut last = last_reported.lock().unwrap_or_else(|e| e.into_inner());
            if points_done > *last {
                *last = points_done;
                p(Progress {
                    points_done,
                    points_total: total,
                    lane_steps,
                });
            }
        }
    };
    // Blocks of a kernel reading a delay ring keep their ring near a core's L2 cache.
    let ring_bytes_per_lane = plan
        .groups
        .iter()
        .map(|g| solve::ring_bytes_per_lane(&g.kernel, spec.sim.method, spec.sim.dt))
        .max()
        .unwrap_or(0);
    for (ci, range) in chunks.iter().enumerate() {
        if ctrl.shard.is_some_and(|s| ci % s.count != s.index) {
            continue;
        }
        if !sink.begin_chunk(ci, range.clone())? {
            summary.chunks_skipped += 1;
            summary.points_skipped += range.len();
            let d = done.fetch_add(range.len(), Ordering::Relaxed) + range.len();
            report(d, lane_steps.load(Ordering::Relaxed));
            continue;
        }
        let lanes = spec.block_size.min(range.len().div_ceil(n_threads)).max(1);
        let lanes = crate::kernel::ring::block_lanes(lanes, ring_bytes_per_lane);
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
            report(d, ls);
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
            in_point_order(&pool, &blocks, |b| {
                deliver(|o| handler.block(o), &one_block(b, None)?, plan.n_cols)
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
