//! The fixed-step explicit Runge–Kutta stepper over a block of lanes.
//!
//! Per step: stage 0 evaluates f(t, y) for the whole block (its algebraics are the ones
//! sampled, consistent with the sampled state), later stages evaluate at
//! `y + dt·Σ a_sj k_j`, then `y += dt·Σ b_s k_s`. Buffers are allocated once per block; the
//! kernel is called once per stage on the whole block, lanes innermost. Input row `i` is
//! used for every stage of step `i`.

use super::runtime::{self, Runtime};
use super::{Block, PointStatus, Prepared, RunOptions, SampleSink, Source, Tableau};
use crate::kernel::aligned::LineAligned;
use crate::kernel::ring::{self, DelayRing, Planes};
use crate::kernel::{Kernel, KernelCtx, RhsArgs, StepSamples, StepsArgs};
use crate::model::{Expr, VarId, VarKind};

/// The state precision of a run: `f64`, or `f32` (PyRates' old default) with samples widened.
pub(crate) use crate::kernel::precision::Real as Float;

/// Fill `out[o * lanes + lane]` from the block buffers; frozen lanes read NaN.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather<T: Float>(
    outputs: &[Source],
    lanes: usize,
    y: &[T],
    a: &[T],
    p: &[T],
    u: &[T],
    frozen: &[bool],
    out: &mut [f64],
) {
    for (o, src) in outputs.iter().enumerate() {
        let (buf, slot) = match *src {
            Source::State(s) => (y, s),
            Source::Algebraic(s) => (a, s),
            Source::Param(s) => (p, s),
            Source::Input(s) => (u, s),
        };
        let dst = &mut out[o * lanes..(o + 1) * lanes];
        for (l, d) in dst.iter_mut().enumerate() {
            *d = if frozen[l] {
                f64::NAN
            } else {
                buf[slot * lanes + l].wide()
            };
        }
    }
}

/// Bytes a lane of a fixed-step run of `kernel` keeps in its delay ring (the values plane of
/// every delayed variable over the slots the longest constant delay needs at step `dt`; with
/// slopes or longer per-lane delays the ring is larger), 0 when the run keeps no ring: the
/// kernel's loops do not read one, or `method` is rk45 (the deque history).
pub(crate) fn ring_bytes_per_lane(kernel: &Kernel, method: super::Method, dt: f64) -> usize {
    let Some(span) = kernel.delay_ring_span() else {
        return 0;
    };
    if matches!(method, super::Method::Rk45 { .. }) {
        return 0;
    }
    let (delayed, _) = runtime::scan(kernel.circuit());
    delayed.len() * DelayRing::slots_for(span, dt) * std::mem::size_of::<f64>()
}

/// Record the step-start point of every delayed variable (states before stage 0, with their
/// derivative after it; algebraics after stage 0 with a backward-difference slope).
pub(crate) fn record_history<T: Float>(
    rt: &mut Runtime,
    kernel: &Kernel,
    lanes: usize,
    t: f64,
    y: &[T],
    k0: Option<&[T]>,
    a: &[T],
) {
    let layout = kernel.layout();
    for h in 0..rt.delayed.len() {
        let v = rt.delayed[h];
        let slot = layout.slot[v.0 as usize] as usize;
        let state = kernel.vars()[v.0 as usize].kind == VarKind::State;
        for l in 0..lanes {
            let i = slot * lanes + l;
            match (state, k0) {
                (true, None) => rt.push(h, l, t, y[i].wide(), f64::NAN),
                (true, Some(k)) => rt.set_last_dx(h, l, k[i].wide()),
                (false, None) => {}
                (false, Some(_)) => {
                    let x = a[i].wide();
                    let slope = rt
                        .last(h, l)
                        .filter(|(t0, _)| *t0 < t)
                        .map_or(f64::NAN, |(t0, x0)| (x - x0) / (t - t0));
                    rt.push(h, l, t, x, slope);
                }
            }
        }
    }
}

/// [`record_history`] into the ring buffer the kernel reads (see [`crate::kernel::ring`]):
/// point `step` of every delayed variable, with the same values and slopes.
pub(crate) fn record_ring<T: Float>(
    ring: &mut DelayRing,
    delayed: &[VarId],
    kernel: &Kernel,
    step: usize,
    y: &[T],
    k0: Option<&[T]>,
    a: &[T],
) {
    let layout = kernel.layout();
    let lanes = ring.lanes();
    for (h, v) in delayed.iter().enumerate() {
        let slot = layout.slot[v.0 as usize] as usize;
        let state = kernel.vars()[v.0 as usize].kind == VarKind::State;
        match (state, k0) {
            (true, None) => ring.push_row(h, step, &y[slot * lanes..(slot + 1) * lanes]),
            (true, Some(k)) => ring.set_row_dx(h, &k[slot * lanes..(slot + 1) * lanes]),
            (false, None) => {}
            (false, Some(_)) => {
                let t = step as f64 * ring.dt();
                let last: Vec<Option<(f64, f64)>> = (0..lanes).map(|l| ring.last(h, l)).collect();
                ring.begin_point(h, step);
                for (l, prev) in last.into_iter().enumerate() {
                    let x = a[slot * lanes + l].wide();
                    let slope = prev
                        .filter(|(t0, _)| *t0 < t)
                        .map_or(f64::NAN, |(t0, x0)| (x - x0) / (t - t0));
                    ring.push_lane(h, l, x, slope);
                }
            }
        }
    }
}

/// The delay of every `past` read of the kernel's circuit, in the run's precision as the
/// kernel computes it (`None`: not a constant, known only while running).
fn past_delays<T: Float>(kernel: &Kernel) -> impl Iterator<Item = Option<f64>> + '_ {
    let c = kernel.circuit();
    c.exprs.iter().filter_map(move |e| match e {
        Expr::Past(_, d) => Some(match c.expr(*d) {
            Expr::Const(d) => Some(T::of(*d).wide()),
            _ => None,
        }),
        _ => None,
    })
}

/// Each lane's delay of the terms whose delays differ per lane (`[term][lane]`): the length
/// over the lane's velocity divided in the run's precision, as the written-out
/// `length / velocity` is (in `f64`, `model::conduction_delay`'s division), or the constant
/// delay rounded to it, as the constant terms are.
fn lane_delays<T: Float>(terms: &[(f64, u32)], p: &[T], lanes: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(terms.len() * lanes);
    for &(length, slot) in terms {
        for l in 0..lanes {
            out.push(match slot {
                u32::MAX => T::of(length).wide(),
                s => (T::of(length) / p[s as usize * lanes + l]).wide(),
            });
        }
    }
    out
}

/// Initial (constant) histories: states from `y0`; algebraics from evaluating the circuit
/// at t = 0, twice, so an algebraic that itself reads a delayed algebraic settles.
#[allow(clippy::too_many_arguments)]
pub(crate) fn init_history<T: Float>(
    ctx: &mut KernelCtx,
    kernel: &Kernel,
    lanes: usize,
    y: &[T],
    p: &[T],
    u: &[T],
    dy: &mut [T],
    a: &mut [T],
) {
    let layout = kernel.layout();
    let delayed = runtime::rt_mut(ctx).delayed.clone();
    let any_alg = delayed
        .iter()
        .any(|v| kernel.vars()[v.0 as usize].kind == VarKind::Algebraic);
    let rounds = if any_alg { 2 } else { 0 };
    let fill = |ctx: &mut KernelCtx, y: &[T], a: &[T]| {
        let rt = runtime::rt_mut(ctx);
        for (h, v) in delayed.iter().enumerate() {
            let slot = layout.slot[v.0 as usize] as usize;
            let buf = if kernel.vars()[v.0 as usize].kind == VarKind::State {
                y
            } else {
                a
            };
            for l in 0..lanes {
                rt.init[h * lanes + l] = buf[slot * lanes + l].wide();
            }
        }
    };
    fill(ctx, y, a);
    for _ in 0..rounds {
        T::rhs(kernel, 0.0, lanes, y, p, u, dy, a, ctx);
        fill(ctx, y, a);
    }
}

/// The block's initial states, parameters and first input values in the stepper's precision.
pub(crate) fn block_values<T: Float>(block: &Block<'_>, prep: &Prepared<'_>) -> (Vec<T>, Vec<T>, Vec<T>) {
    let of = |values: &[f64]| values.iter().map(|v| T::of(*v)).collect();
    (of(block.init), of(block.params), of(&prep.u0))
}

pub(crate) fn run<T: Float>(
    kernel: &Kernel,
    prep: &Prepared<'_>,
    block: &Block<'_>,
    tab: &Tableau,
    sink: &mut dyn SampleSink,
    opts: &RunOptions,
) -> Vec<PointStatus> {
    let lanes = prep.lanes;
    let plan = prep.plan;
    let layout = kernel.layout();
    let n = layout.states.len() * lanes;
    let stages = tab.stages();
    let dt = plan.dt;
    let dt_t = T::of(dt);

    // The arrays the kernel reads and writes in rows of lanes start on a cache line (as
    // network_grid.c's do): a row of 16 doubles is then two lines, not three.
    let (y, p, u) = block_values::<T>(block, prep);
    let (mut y, p, mut u) = (
        LineAligned::from_slice(&y),
        LineAligned::from_slice(&p),
        LineAligned::from_slice(&u),
    );
    let mut a = LineAligned::new(layout.algebraics.len() * lanes, T::default());
    let mut k = LineAligned::new(stages * n, T::default());
    let mut ytmp = LineAligned::new(n, T::default());
    let mut acc = vec![T::default(); n];
    let mut out = vec![0.0; prep.outputs.len() * lanes];
    let mut status = vec![PointStatus::Ok; lanes];
    let mut frozen = vec![false; lanes];
    let mut bad = vec![false; lanes];
    // Nonzero coefficients only: skipping exact zeros changes no finite result.
    let a_rows: Vec<Vec<(usize, T)>> = (0..tab.stages())
        .map(|s| tab.nonzero_row(s).into_iter().map(|(j, c)| (j, T::of(c))).collect())
        .collect();
    let b: Vec<(usize, T)> = tab
        .b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0.0)
        .map(|(j, c)| (j, T::of(*c)))
        .collect();

    let (delayed, noise) = runtime::scan(kernel.circuit());
    let hooks = !delayed.is_empty() || noise;
    let mut ctx = if hooks {
        let mut rt = Runtime::new(kernel.circuit(), delayed, opts.seed, block.first_point, lanes);
        rt.grid_dt = Some(dt);
        runtime::make_ctx(rt)
    } else {
        KernelCtx {
            first_point: block.first_point,
            ..KernelCtx::default()
        }
    };
    let delays = hooks && runtime::rt_mut(&mut ctx).has_delays();
    if delays {
        for d in &prep.series {
            d.fill(0, lanes, &mut u);
        }
        let (k0, _) = k.split_at_mut(n);
        init_history(&mut ctx, kernel, lanes, &y, &p, &u, k0, &mut a);
        // Network loops read the history from a ring buffer instead of calling back per
        // term; its initial values are the ones just settled.
        if let Some(span) = kernel.delay_ring_span() {
            let rt = runtime::rt_mut(&mut ctx);
            let vars: Vec<u32> = rt.delayed.iter().map(|v| v.0).collect();
            let terms: Vec<f64> = kernel.delay_ring_terms().iter().map(|d| T::of(*d).wide()).collect();
            let lane_terms = lane_delays(kernel.delay_ring_lane_terms(), &p, lanes);
            let whole_only = ring::reads_whole_steps_only(
                tab.stages() == 1,
                terms
                    .iter()
                    .chain(&lane_terms)
                    .map(|d| Some(*d))
                    .chain(past_delays::<T>(kernel)),
                dt,
            );
            ctx.ring = Some(DelayRing::new(
                kernel.vars().len(),
                &vars,
                &rt.init,
                lanes,
                dt,
                span,
                &terms,
                &lane_terms,
                Planes::for_reads(whole_only),
            ));
        }
    }
    let deque_history = delays && ctx.ring.is_none();
    let ring_vars: Vec<VarId> = if ctx.ring.is_some() {
        runtime::rt_mut(&mut ctx).delayed.clone()
    } else {
        Vec::new()
    };

    let first_emitted = plan.first_emitted();
    let wants_last_state = sink.wants_last_state();
    let mut emitted = 0usize;
    for i in 0..=plan.steps {
        let sample_k = i / plan.stride;
        let sample_now = i.is_multiple_of(plan.stride) && sample_k < plan.samples;
        if i == plan.steps && !(sample_now && sample_k >= first_emitted) {
            break;
        }
        let t = i as f64 * dt;
        for d in &prep.series {
            d.fill(i, lanes, &mut u);
        }
        if hooks {
            let rt = runtime::rt_mut(&mut ctx);
            rt.step = i as u64;
            if deque_history {
                record_history(rt, kernel, lanes, t, &y, None, &a);
            }
        }
        if let Some(ring) = ctx.ring.as_mut() {
            record_ring(ring, &ring_vars, kernel, i, &y, None, &a);
        }
        {
            let (k0, _) = k.split_at_mut(n);
            T::rhs(kernel, t, lanes, &y, &p, &u, k0, &mut a, &mut ctx);
        }
        if let Some(ring) = ctx.ring.as_mut() {
            record_ring(ring, &ring_vars, kernel, i, &y, Some(&k[..n]), &a);
        } else if deque_history {
            record_history(runtime::rt_mut(&mut ctx), kernel, lanes, t, &y, Some(&k[..n]), &a);
        }
        if sample_now && sample_k >= first_emitted {
            gather(&prep.outputs, lanes, &y, &a, &p, &u, &frozen, &mut out);
            sink.samples(emitted, plan.sample_time(sample_k), lanes, &out);
            if wants_last_state && sample_k + 1 == plan.samples {
                super::last_state::hand(sink, lanes, &y, &frozen);
            }
            emitted += 1;
        }
        if i == plan.steps {
            break;
        }
        for (s, row) in a_rows.iter().enumerate().skip(1) {
            let (done, rest) = k.split_at_mut(s * n);
            combine(&mut ytmp, &y, dt_t, row, done, n, &mut acc);
            T::rhs(
                kernel,
                t + tab.c[s] * dt,
                lanes,
                &ytmp,
                &p,
                &u,
                &mut rest[..n],
                &mut a,
                &mut ctx,
            );
        }
        advance(&mut y, dt_t, &b, &k, n, &mut acc);
        check_finite(&mut y, lanes, &mut frozen, &mut bad, &mut status, (i + 1) as f64 * dt);
    }
    status
}

/// `out = y + dt·Σ c_m·k_m` over the nonzero coefficients `(m, c_m)`, with the sum taken
/// left to right. Stage-outer loops over contiguous slices, so each one vectorizes.
fn combine<T: Float>(out: &mut [T], y: &[T], dt: T, coeffs: &[(usize, T)], k: &[T], n: usize, acc: &mut [T]) {
    match coeffs {
        [] => out.copy_from_slice(y),
        [(m, c)] => {
            for ((o, yv), kv) in out.iter_mut().zip(y).zip(&k[m * n..(m + 1) * n]) {
                *o = *yv + dt * (*c * *kv);
            }
        }
        [(m0, c0), rest @ ..] => {
            weighted_sum(acc, (*m0, *c0), rest, k, n);
            for ((o, yv), av) in out.iter_mut().zip(y).zip(acc.iter()) {
                *o = *yv + dt * *av;
            }
        }
    }
}

/// `acc = c0·k_m0 + c1·k_m1 + …`, summed left to right: the order the fused steppers
/// reproduce bit for bit.
fn weighted_sum<T: Float>(acc: &mut [T], (m0, c0): (usize, T), rest: &[(usize, T)], k: &[T], n: usize) {
    for (av, kv) in acc.iter_mut().zip(&k[m0 * n..(m0 + 1) * n]) {
        *av = c0 * *kv;
    }
    for (m, c) in rest {
        for (av, kv) in acc.iter_mut().zip(&k[m * n..(m + 1) * n]) {
            *av = *av + *c * *kv;
        }
    }
}

/// `y += dt·Σ c_m·k_m` in place, with the same arithmetic as [`combine`].
fn advance<T: Float>(y: &mut [T], dt: T, coeffs: &[(usize, T)], k: &[T], n: usize, acc: &mut [T]) {
    match coeffs {
        [] => {}
        [(m, c)] => {
            for (yv, kv) in y.iter_mut().zip(&k[m * n..(m + 1) * n]) {
                *yv = *yv + dt * (*c * *kv);
            }
        }
        [(m0, c0), rest @ ..] => {
            weighted_sum(acc, (*m0, *c0), rest, k, n);
            for (yv, av) in y.iter_mut().zip(acc.iter()) {
                *yv = *yv + dt * *av;
            }
        }
    }
}

/// Mark lanes whose state just became non-finite, and freeze them at NaN.
pub(crate) fn check_finite<T: Float>(
    y: &mut [T],
    lanes: usize,
    frozen: &mut [bool],
    bad: &mut [bool],
    status: &mut [PointStatus],
    t: f64,
) {
    // Fast path: x·0 is 0 for finite x and NaN otherwise; eight independent accumulators
    // let the sum vectorize.
    let zero = T::default();
    let mut probe = [zero; 8];
    let chunks = y.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (p, v) in probe.iter_mut().zip(c) {
            *p = *p + *v * zero;
        }
    }
    for (p, v) in probe.iter_mut().zip(tail) {
        *p = *p + *v * zero;
    }
    if probe.iter().all(|p| *p == zero) {
        return;
    }
    bad.fill(false);
    for chunk in y.chunks_exact(lanes) {
        for (b, v) in bad.iter_mut().zip(chunk) {
            *b |= !v.finite();
        }
    }
    for l in 0..lanes {
        if bad[l] && !frozen[l] {
            frozen[l] = true;
            status[l] = PointStatus::NonFinite { t };
            for v in y.iter_mut().skip(l).step_by(lanes) {
                *v = T::NAN;
            }
        }
    }
}

/// Values of one fused call's sample buffer (`[sample][output][lane]`): 128 KiB, so the
/// samples a call records are still in (L2) cache when the sink reads them, and a network
/// block sampled every step still takes several steps per call (N = 68 × 64 lanes: 3), so
/// the per-call state copy and finiteness check do not run after every step.
const CALL_SAMPLE_VALUES: usize = 16384;

/// Steps one fused call may take when it records samples: bounds the one-step-per-call
/// replay after a lane diverges.
const CALL_STEPS: usize = 1024;

/// The fused path: a back end that integrates whole runs of steps itself
/// ([`Kernel::steps`]; C and JIT) is handed long stretches. When every output is a state and
/// no input is a time series, the back end also records the samples, so one call covers
/// many samples; otherwise a call ends at each sample (the solver samples, evaluating the
/// algebraics when an output needs them), or after every step when an input is a time
/// series. `None` when the back end has no fused path for this circuit (delays, noise, or the
/// reference back end), before anything was emitted.
///
/// Non-finite lanes are found at the end of each call; the call is then replayed one step
/// per call from its saved start (the same arithmetic, so the other lanes are unchanged bit
/// for bit) to mark the exact step.
pub(crate) fn run_fused(
    kernel: &Kernel,
    prep: &Prepared<'_>,
    block: &Block<'_>,
    tab: &Tableau,
    sink: &mut dyn SampleSink,
) -> Option<Vec<PointStatus>> {
    let lanes = prep.lanes;
    let plan = prep.plan;
    let layout = kernel.layout();
    let n = layout.states.len() * lanes;
    let dt = plan.dt;
    let tableau = tab;
    let mut y: Vec<f64> = block.init.to_vec();
    let p = block.params;
    let mut u = prep.u0.clone();
    let mut a = vec![0.0; layout.algebraics.len() * lanes];
    let mut dy = vec![0.0; n];
    let mut work = Vec::new();
    let mut ctx = KernelCtx {
        first_point: block.first_point,
        ..KernelCtx::default()
    };
    // One call of the fused stepper on this block's buffers.
    macro_rules! steps {
        ($nsteps:expr, $t0:expr, $samples:expr) => {
            kernel.steps(StepsArgs {
                lanes,
                nsteps: $nsteps,
                t0: $t0,
                dt,
                tableau,
                y: &mut y,
                p,
                u: &u,
                a: &mut a,
                work: &mut work,
                ctx: &mut ctx,
                samples: $samples,
            })
        };
    }
    if !steps!(0, 0.0, None) {
        return None;
    }
    let need_a = prep.outputs.iter().any(|o| matches!(o, Source::Algebraic(_)));
    // State slots the back end records itself, when it can record every output.
    let recorded: Option<Vec<u32>> = if prep.series.is_empty() {
        prep.outputs
            .iter()
            .map(|o| match *o {
                Source::State(s) => u32::try_from(s).ok(),
                _ => None,
            })
            .collect()
    } else {
        None
    };
    let width = prep.outputs.len() * lanes;
    let stride = plan.stride;
    let per_call = match recorded {
        Some(_) => (CALL_SAMPLE_VALUES / width.max(1)).min(CALL_STEPS / stride).max(1),
        None => 1,
    };
    let mut rows = vec![0.0; per_call * width];
    let mut saved = vec![0.0; n];
    let mut status = vec![PointStatus::Ok; lanes];
    let mut frozen = vec![false; lanes];
    let mut bad = vec![false; lanes];
    let total = plan.samples;
    // Next sample to emit; every sample before it with a step below `i` has been emitted.
    let mut k = plan.first_emitted();
    // The step of the last sample, when the sink wants the state there: a call ends at it,
    // so that the state is the one between two calls.
    let last_state_step = (sink.wants_last_state() && total > k).then(|| (total - 1) * stride);
    let mut emitted = 0usize;
    let mut i = 0usize;
    // The solver's own sampling at `step` into `row`: state, algebraics (evaluated at the
    // sample) and the rest.
    macro_rules! take {
        ($step:expr, $row:expr) => {{
            if need_a {
                kernel.rhs(RhsArgs {
                    t: ($step) as f64 * dt,
                    lanes,
                    y: &y,
                    p,
                    u: &u,
                    dy: &mut dy,
                    a: &mut a,
                    ctx: &mut ctx,
                });
            }
            gather(&prep.outputs, lanes, &y, &a, p, &u, &frozen, $row);
        }};
    }
    while i < plan.steps {
        if last_state_step == Some(i) {
            super::last_state::hand(sink, lanes, &y, &frozen);
        }
        for d in &prep.series {
            d.fill(i, lanes, &mut u);
        }
        let mut end = if !prep.series.is_empty() {
            i + 1
        } else {
            (i + per_call * stride - i % stride).min(plan.steps)
        };
        if let Some(last) = last_state_step.filter(|&last| i < last) {
            end = end.min(last);
        }
        // Samples at steps i .. end - 1.
        let count = total.min(end.div_ceil(stride)).saturating_sub(k);
        let t0 = i as f64 * dt;
        saved.copy_from_slice(&y);
        let samples = match &recorded {
            Some(slots) => Some(StepSamples {
                slots,
                first: k * stride - i,
                every: stride,
                count,
                out: &mut rows,
            }),
            None => {
                if count > 0 {
                    take!(i, &mut rows[..width]);
                }
                None
            }
        };
        steps!(end - i, t0, samples);
        if newly_non_finite(&y, lanes, &frozen) {
            y.copy_from_slice(&saved);
            for s in i..end {
                if s % stride == 0 && (k..k + count).contains(&(s / stride)) {
                    let j = s / stride - k;
                    take!(s, &mut rows[j * width..(j + 1) * width]);
                }
                steps!(1, t0 + (s - i) as f64 * dt, None);
                check_finite(&mut y, lanes, &mut frozen, &mut bad, &mut status, (s + 1) as f64 * dt);
            }
        } else if recorded.is_some() && frozen.contains(&true) {
            // Frozen lanes read NaN exactly as `gather` writes it.
            for row in rows[..count * width].chunks_exact_mut(lanes) {
                for (v, _) in row.iter_mut().zip(&frozen).filter(|(_, f)| **f) {
                    *v = f64::NAN;
                }
            }
        }
        // One call per sample, also when there are no outputs (sinks count the samples).
        for j in 0..count {
            sink.samples(
                emitted,
                plan.sample_time(k + j),
                lanes,
                &rows[j * width..(j + 1) * width],
            );
            emitted += 1;
        }
        k += count;
        i = end;
    }
    // A sample at the very end of the run (or the only one of a run shorter than a step).
    for d in &prep.series {
        d.fill(plan.steps, lanes, &mut u);
    }
    if last_state_step == Some(plan.steps) {
        super::last_state::hand(sink, lanes, &y, &frozen);
    }
    while k < total && k * stride <= plan.steps {
        take!(plan.steps, &mut rows[..width]);
        sink.samples(emitted, plan.sample_time(k), lanes, &rows[..width]);
        emitted += 1;
        k += 1;
    }
    Some(status)
}

/// Whether every value is finite: run after every step over the whole state, so written
/// without an early exit inside a chunk, which the compiler vectorises (the early-exiting
/// `all` is a scalar loop with a branch per value: 11 % of an N = 68 network sweep).
fn all_finite(y: &[f64]) -> bool {
    let mut chunks = y.chunks_exact(32);
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |ok, v| ok & v.is_finite()) {
            return false;
        }
    }
    chunks.remainder().iter().all(|v| v.is_finite())
}

/// Whether a lane not yet frozen holds a non-finite state.
fn newly_non_finite(y: &[f64], lanes: usize, frozen: &[bool]) -> bool {
    if all_finite(y) {
        return false;
    }
    y.chunks_exact(lanes)
        .any(|c| c.iter().zip(frozen).any(|(v, f)| !f && !v.is_finite()))
}

#[cfg(test)]
mod finite_tests {
    /// The chunked check agrees with the plain definition for every length up to three
    /// chunks and a non-finite value (NaN, ±inf) at every position, inside chunks, at their
    /// edges and in the remainder.
    #[test]
    fn all_finite_equals_the_plain_check_at_every_position() {
        for len in 0..100 {
            let clean: Vec<f64> = (0..len).map(|i| i as f64 - 50.0).collect();
            assert!(super::all_finite(&clean), "len {len}");
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                for at in 0..len {
                    let mut y = clean.clone();
                    y[at] = bad;
                    assert!(!super::all_finite(&y), "len {len}, {bad} at {at}");
                }
            }
        }
        assert!(super::all_finite(&[f64::MAX, f64::MIN, f64::MIN_POSITIVE, -0.0]));
    }
}
