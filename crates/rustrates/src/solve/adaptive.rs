//! Dormand–Prince 5(4) with error control per lane and dense output for sampling.
//!
//! Each lane takes its own steps: the kernel is called on one lane at a time (`lanes = 1`,
//! so the time argument is that lane's own), which makes a lane's result independent of the
//! block by construction. Samples of the whole block are buffered and emitted in order at
//! the end. Step control as in Hairer–Nørsett–Wanner (II.4): RMS norm of the error scaled by
//! `atol + rtol·max(|y|, |y_new|)`, factor `0.9·err^(−1/5)` clamped to [0.2, 10].

use super::fixed::{block_values, gather, init_history, Float};
use super::last_state::LastState;
use super::runtime::{self, Runtime};
use super::{Block, PointStatus, Prepared, RunOptions, SampleSink, Tableau, TimeGrid};
use crate::kernel::{Kernel, KernelCtx};
use crate::model::{Expr, VarKind};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Tolerance {
    pub(crate) rtol: f64,
    pub(crate) atol: f64,
}

/// Dense output of Dormand–Prince (Hairer's continuous extension, as in scipy's `RK45.P`):
/// `y(t + θh) = y + h·Σ_s k_s·Σ_j P[s][j]·θ^(j+1)`.
const P: [[f64; 4]; 7] = [
    [
        1.0,
        -8048581381.0 / 2820520608.0,
        8663915743.0 / 2820520608.0,
        -12715105075.0 / 11282082432.0,
    ],
    [0.0, 0.0, 0.0, 0.0],
    [
        0.0,
        131558114200.0 / 32700410799.0,
        -68118460800.0 / 10900136933.0,
        87487479700.0 / 32700410799.0,
    ],
    [
        0.0,
        -1754552775.0 / 470086768.0,
        14199869525.0 / 1410260304.0,
        -10690763975.0 / 1880347072.0,
    ],
    [
        0.0,
        127303824393.0 / 49829197408.0,
        -318862633887.0 / 49829197408.0,
        701980252875.0 / 199316789632.0,
    ],
    [
        0.0,
        -282668133.0 / 205662961.0,
        2019193451.0 / 616988883.0,
        -1453857185.0 / 822651844.0,
    ],
    [
        0.0,
        40617522.0 / 29380423.0,
        -110615467.0 / 29380423.0,
        69997945.0 / 29380423.0,
    ],
];

/// Counters of one block, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    pub rejected: u64,
}

struct LaneInputs<'p, 'a> {
    prep: &'p Prepared<'a>,
    lane: usize,
}

impl LaneInputs<'_, '_> {
    fn set<T: Float>(&self, t: f64, u: &mut [T]) {
        for d in &self.prep.series {
            let (slot, v) = d.at(t, self.prep.plan.dt, self.lane);
            u[slot] = T::of(v);
        }
    }
}

/// One block's Dormand–Prince problem, what each stepper here is handed: the kernel, the
/// checked run, the block of lanes and the tolerances.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub(crate) kernel: &'a Kernel,
    pub(crate) prep: &'a Prepared<'a>,
    pub(crate) block: &'a Block<'a>,
    pub(crate) tol: Tolerance,
}

/// Dormand–Prince over a block, with its counters: the masked block stepper where the
/// circuit allows it, lane by lane otherwise.
pub(crate) fn run_with_stats<T: Float>(
    problem: Problem<'_>,
    sink: &mut dyn SampleSink,
    opts: &RunOptions,
) -> (Vec<PointStatus>, Stats) {
    if masked_ok(problem.kernel) {
        run_masked::<T>(problem, sink)
    } else {
        run_stats::<T>(problem, sink, opts)
    }
}

/// Whether the whole block can step together, each lane with its own `t` and `h`: the
/// kernel takes one time per call, so the circuit must not read `t`, and delays and noise
/// (whose hooks are keyed by time and step) take the lane-by-lane path.
fn masked_ok(kernel: &Kernel) -> bool {
    kernel.circuit().couplings.iter().all(|cp| cp.delays.is_none())
        && !kernel
            .circuit()
            .exprs
            .iter()
            .any(|e| matches!(e, Expr::Time | Expr::Past(..) | Expr::Randn))
}

/// What both steppers set up for a block: the Dormand–Prince tableau with its error weights
/// `e` (`b − b_err`), the samples to emit and their store, and the per-lane results.
struct BlockSetup {
    ns: usize,
    tab: Tableau,
    stages: usize,
    e: Vec<f64>,
    nout: usize,
    first: usize,
    emitted: usize,
    store: Vec<f64>,
    status: Vec<PointStatus>,
    stats: Stats,
    t_end: f64,
}

impl BlockSetup {
    fn new(kernel: &Kernel, prep: &Prepared<'_>) -> Self {
        let (lanes, plan) = (prep.lanes, prep.plan);
        let tab = Tableau::dopri5();
        let b_err = tab.b_err.clone().unwrap_or_default();
        let e = tab.b.iter().zip(&b_err).map(|(b, be)| b - be).collect();
        let nout = prep.outputs.len();
        let emitted = plan.emitted();
        BlockSetup {
            ns: kernel.layout().states.len(),
            stages: tab.stages(),
            tab,
            e,
            nout,
            first: plan.first_emitted(),
            emitted,
            store: vec![f64::NAN; emitted * nout * lanes],
            status: vec![PointStatus::Ok; lanes],
            stats: Stats::default(),
            t_end: plan.sample_time(plan.samples.saturating_sub(1)),
        }
    }
}

/// Lane state of the masked stepper.
#[derive(Clone, Copy, Debug)]
struct LaneClock {
    t: f64,
    h: f64,
    /// The step being attempted (0 for a lane that no longer steps).
    h_step: f64,
    next: usize,
    active: bool,
}

/// Dormand–Prince over the whole block at once: every stage is one kernel call on all lanes,
/// each lane advancing by its own step (`h_step`, 0 for finished lanes). Accept/reject and
/// step-size control are per lane, so a lane's numbers do not depend on its neighbours.
pub(crate) fn run_masked<T: Float>(problem: Problem<'_>, sink: &mut dyn SampleSink) -> (Vec<PointStatus>, Stats) {
    let (kernel, prep, block, tol) = (problem.kernel, problem.prep, problem.block, problem.tol);
    let mut dp = BlockSetup::new(kernel, prep);
    let (lanes, plan, ns) = (prep.lanes, prep.plan, dp.ns);
    let layout = kernel.layout();
    let n = ns * lanes;
    let mut last_state = LastState::new(sink, dp.emitted, ns, lanes);
    let need_a = prep.outputs.iter().any(|o| matches!(o, super::Source::Algebraic(_)));

    let (mut y, p, mut u) = block_values::<T>(block, prep);
    let mut a = vec![T::default(); layout.algebraics.len() * lanes];
    let mut k = vec![T::default(); dp.stages * n];
    let mut ytmp = vec![T::default(); n];
    let mut ynew = vec![T::default(); n];
    let mut hs = vec![T::default(); lanes];
    let mut out = vec![0.0; dp.nout * lanes];
    let mut out1 = vec![0.0; dp.nout];
    // Single-lane buffers for samples that need algebraics at an interpolated state.
    let mut y1 = vec![T::default(); ns];
    let mut p1 = vec![T::default(); layout.params.len()];
    let mut u1 = vec![T::default(); layout.inputs.len()];
    let mut a1 = vec![T::default(); layout.algebraics.len()];
    let mut dy1 = vec![T::default(); ns];
    let mut ctx = KernelCtx {
        first_point: block.first_point,
        ..KernelCtx::default()
    };
    let not_frozen = vec![false; lanes];
    let set_inputs = |u: &mut [T], clocks: &[LaneClock], c: f64| {
        for d in &prep.series {
            for (l, ck) in clocks.iter().enumerate() {
                let (slot, v) = d.at(ck.t + c * ck.h_step, plan.dt, l);
                u[slot * lanes + l] = T::of(v);
            }
        }
    };

    let mut clocks = vec![
        LaneClock {
            t: 0.0,
            h: plan.dt,
            h_step: 0.0,
            next: 0,
            active: true
        };
        lanes
    ];
    set_inputs(&mut u, &clocks, 0.0);
    T::rhs(kernel, 0.0, lanes, &y, &p, &u, &mut k[..n], &mut a, &mut ctx);
    if plan.samples > 0 {
        if dp.first == 0 {
            gather(&prep.outputs, lanes, &y, &a, &p, &u, &not_frozen, &mut out);
            dp.store[..dp.nout * lanes].copy_from_slice(&out);
            if plan.samples == 1 {
                for lane in 0..lanes {
                    last_state.keep(lane, (0..ns).map(|s| y[s * lanes + lane]));
                }
            }
        }
        for ck in &mut clocks {
            ck.next = 1;
        }
    }
    for ck in &mut clocks {
        ck.active = ck.next < plan.samples;
    }
    while clocks.iter().any(|c| c.active) {
        for (l, ck) in clocks.iter_mut().enumerate() {
            if !ck.active {
                ck.h_step = 0.0;
            } else {
                let floor = 1e-12 * ck.t.abs().max(plan.dt);
                if ck.h.partial_cmp(&floor).is_none_or(|o| o == std::cmp::Ordering::Less) {
                    let bad = (0..ns).any(|s| !y[s * lanes + l].finite());
                    dp.status[l] = if bad {
                        PointStatus::NonFinite { t: ck.t }
                    } else {
                        PointStatus::StepTooSmall { t: ck.t }
                    };
                    ck.active = false;
                    ck.h_step = 0.0;
                } else {
                    ck.h_step = ck.h.min(dp.t_end - ck.t).max(floor);
                }
            }
            hs[l] = T::of(ck.h_step);
        }
        for s in 1..dp.stages {
            for slot in 0..ns {
                let base = slot * lanes;
                for (l, hl) in hs.iter().enumerate() {
                    let j = base + l;
                    let mut acc = T::default();
                    for (m, c) in dp.tab.row(s).iter().enumerate() {
                        if *c != 0.0 {
                            acc = acc + T::of(*c) * k[m * n + j];
                        }
                    }
                    ytmp[j] = y[j] + *hl * acc;
                }
            }
            set_inputs(&mut u, &clocks, dp.tab.c[s]);
            let (_, rest) = k.split_at_mut(s * n);
            T::rhs(kernel, 0.0, lanes, &ytmp, &p, &u, &mut rest[..n], &mut a, &mut ctx);
            if s == dp.stages - 1 {
                ynew.copy_from_slice(&ytmp);
            }
        }
        for l in 0..lanes {
            let ck = clocks[l];
            if !ck.active {
                continue;
            }
            let h_step = ck.h_step;
            let err = error_norm(&dp.e, &k, n, &y, &ynew, (lanes, l, ns), h_step, tol);
            if !err.is_finite() || err > 1.0 {
                dp.stats.rejected += 1;
                clocks[l].h = h_step * shrink_factor(err);
                continue;
            }
            dp.stats.accepted += 1;
            let t_new = ck.t + h_step;
            let mut next = ck.next;
            while next < plan.samples && plan.sample_time(next) <= t_new + 1e-9 * plan.dts {
                let ts = plan.sample_time(next);
                if next >= dp.first {
                    let theta = ((ts - ck.t) / h_step).clamp(0.0, 1.0);
                    let q = dense_weights(theta);
                    for (slot, yv) in y1.iter_mut().enumerate() {
                        let j = slot * lanes + l;
                        let mut acc = T::default();
                        for (s, qs) in q.iter().enumerate() {
                            if *qs != 0.0 {
                                acc = acc + T::of(*qs) * k[s * n + j];
                            }
                        }
                        *yv = y[j] + hs[l] * acc;
                    }
                    for (i, v) in p1.iter_mut().enumerate() {
                        *v = p[i * lanes + l];
                    }
                    for (i, v) in u1.iter_mut().enumerate() {
                        *v = T::of(prep.u0[i * lanes + l]);
                    }
                    for d in &prep.series {
                        let (slot, v) = d.at(ts, plan.dt, l);
                        u1[slot] = T::of(v);
                    }
                    if need_a {
                        let mut c1 = KernelCtx {
                            first_point: block.first_point + l,
                            ..KernelCtx::default()
                        };
                        T::rhs(kernel, ts, 1, &y1, &p1, &u1, &mut dy1, &mut a1, &mut c1);
                    }
                    gather(&prep.outputs, 1, &y1, &a1, &p1, &u1, &[false], &mut out1);
                    put(&mut dp.store, &out1, next - dp.first, lanes, l);
                    if next + 1 == plan.samples {
                        last_state.keep(l, y1.iter().copied());
                    }
                }
                next += 1;
            }
            let mut finite = true;
            for slot in 0..ns {
                let j = slot * lanes + l;
                y[j] = ynew[j];
                k[j] = k[(dp.stages - 1) * n + j];
                finite &= y[j].finite();
            }
            let factor = if err == 0.0 {
                10.0
            } else {
                (0.9 * err.powf(-0.2)).clamp(0.2, 10.0)
            };
            let ck = &mut clocks[l];
            ck.t = t_new;
            ck.h = h_step * factor;
            ck.next = next;
            ck.active = next < plan.samples;
            if !finite {
                dp.status[l] = PointStatus::NonFinite { t: t_new };
                ck.active = false;
            }
        }
    }
    deliver(sink, &plan, &dp.store, dp.emitted, dp.nout * lanes, lanes);
    last_state.hand(sink, lanes);
    (dp.status, dp.stats)
}

/// Dormand–Prince lane by lane (each lane its own steps; delays and noise read through the
/// solver's hooks).
pub(crate) fn run_stats<T: Float>(
    problem: Problem<'_>,
    sink: &mut dyn SampleSink,
    opts: &RunOptions,
) -> (Vec<PointStatus>, Stats) {
    let (kernel, prep, block, tol) = (problem.kernel, problem.prep, problem.block, problem.tol);
    let mut dp = BlockSetup::new(kernel, prep);
    let (lanes, plan, ns) = (prep.lanes, prep.plan, dp.ns);
    let layout = kernel.layout();
    let mut last_state = LastState::new(sink, dp.emitted, ns, lanes);
    let (delayed, noise) = runtime::scan(kernel.circuit());
    let hooks = !delayed.is_empty() || noise;
    let has_delays = !delayed.is_empty();

    let mut y = vec![T::default(); ns];
    let mut ynew = vec![T::default(); ns];
    let mut ytmp = vec![T::default(); ns];
    let mut k = vec![T::default(); dp.stages * ns];
    let mut p = vec![T::default(); layout.params.len()];
    let mut u = vec![T::default(); layout.inputs.len()];
    let mut a = vec![T::default(); layout.algebraics.len()];
    let mut dy = vec![T::default(); ns];
    let mut out = vec![0.0; dp.nout];
    let not_frozen = [false];

    #[allow(clippy::needless_range_loop)] // `lane` also picks parameter and input columns
    for lane in 0..lanes {
        let inputs = LaneInputs { prep, lane };
        for (s, v) in y.iter_mut().enumerate() {
            *v = T::of(block.init[s * lanes + lane]);
        }
        for (s, v) in p.iter_mut().enumerate() {
            *v = T::of(block.params[s * lanes + lane]);
        }
        for (s, v) in u.iter_mut().enumerate() {
            *v = T::of(prep.u0[s * lanes + lane]);
        }
        let mut ctx = if hooks {
            runtime::make_ctx(Runtime::new(
                kernel.circuit(),
                delayed.clone(),
                opts.seed,
                block.first_point + lane,
                1,
            ))
        } else {
            KernelCtx {
                first_point: block.first_point + lane,
                ..KernelCtx::default()
            }
        };
        let mut t = 0.0f64;
        let mut h = plan.dt;
        let mut attempt = 0u64;
        inputs.set(0.0, &mut u);
        if has_delays {
            init_history(&mut ctx, kernel, 1, &y, &p, &u, &mut dy, &mut a);
        }
        T::rhs(kernel, 0.0, 1, &y, &p, &u, &mut k[..ns], &mut a, &mut ctx);
        if has_delays {
            push_point(runtime::rt_mut(&mut ctx), kernel, 0.0, &y, &k[..ns], &a);
        }
        let mut next = 0usize;
        if plan.samples > 0 {
            if next >= dp.first {
                gather(&prep.outputs, 1, &y, &a, &p, &u, &not_frozen, &mut out);
                put(&mut dp.store, &out, next - dp.first, lanes, lane);
                if plan.samples == 1 {
                    last_state.keep(lane, y.iter().copied());
                }
            }
            next = 1;
        }
        'steps: while next < plan.samples {
            let floor = 1e-12 * t.abs().max(plan.dt);
            if h.partial_cmp(&floor).is_none_or(|o| o == std::cmp::Ordering::Less) {
                let non_finite = y.iter().any(|v| !v.finite());
                dp.status[lane] = if non_finite {
                    PointStatus::NonFinite { t }
                } else {
                    PointStatus::StepTooSmall { t }
                };
                break 'steps;
            }
            let mut h_step = h.min(dp.t_end - t).max(floor);
            let mut landing = None;
            if has_delays {
                let seen = &runtime::rt_mut(&mut ctx).delays_seen;
                // Never step past the shortest delay: stage reads then stay in the history.
                if let Some(dmin) = seen.iter().copied().reduce(f64::min) {
                    h_step = h_step.min(dmin);
                }
                if let Some(bp) = runtime::next_breakpoint(seen, t) {
                    if t + h_step >= bp {
                        h_step = bp - t;
                        landing = Some(bp);
                    }
                }
            }
            let ht = T::of(h_step);
            attempt += 1;
            if hooks {
                runtime::rt_mut(&mut ctx).step = attempt;
            }
            for s in 1..dp.stages {
                for j in 0..ns {
                    let mut acc = T::default();
                    for (m, c) in dp.tab.row(s).iter().enumerate() {
                        if *c != 0.0 {
                            acc = acc + T::of(*c) * k[m * ns + j];
                        }
                    }
                    ytmp[j] = y[j] + ht * acc;
                }
                let ts = t + dp.tab.c[s] * h_step;
                inputs.set(ts, &mut u);
                let (_, rest) = k.split_at_mut(s * ns);
                T::rhs(kernel, ts, 1, &ytmp, &p, &u, &mut rest[..ns], &mut a, &mut ctx);
                if s == dp.stages - 1 {
                    // The last stage is evaluated at the new solution (a[6] = b, FSAL).
                    ynew.copy_from_slice(&ytmp);
                }
            }
            let err = error_norm(&dp.e, &k, ns, &y, &ynew, (1, 0, ns), h_step, tol);
            if !err.is_finite() || err > 1.0 {
                dp.stats.rejected += 1;
                h = h_step * shrink_factor(err);
                continue;
            }
            dp.stats.accepted += 1;
            let t_new = landing.unwrap_or(t + h_step);
            if has_delays {
                let rt = runtime::rt_mut(&mut ctx);
                attach_dense(rt, kernel, &k, ns);
                push_point(rt, kernel, t_new, &ynew, &k[(dp.stages - 1) * ns..], &a);
            }
            // Samples inside (t, t_new], from the continuous extension.
            while next < plan.samples && plan.sample_time(next) <= t_new + 1e-9 * plan.dts {
                let ts = plan.sample_time(next);
                if next >= dp.first {
                    let theta = ((ts - t) / h_step).clamp(0.0, 1.0);
                    let q = dense_weights(theta);
                    for j in 0..ns {
                        let mut acc = T::default();
                        for (s, qs) in q.iter().enumerate() {
                            if *qs != 0.0 {
                                acc = acc + T::of(*qs) * k[s * ns + j];
                            }
                        }
                        ytmp[j] = y[j] + ht * acc;
                    }
                    let need_rhs = prep.outputs.iter().any(|o| matches!(o, super::Source::Algebraic(_)));
                    inputs.set(ts, &mut u);
                    if need_rhs {
                        T::rhs(kernel, ts, 1, &ytmp, &p, &u, &mut dy, &mut a, &mut ctx);
                    }
                    gather(&prep.outputs, 1, &ytmp, &a, &p, &u, &not_frozen, &mut out);
                    put(&mut dp.store, &out, next - dp.first, lanes, lane);
                    if next + 1 == plan.samples {
                        last_state.keep(lane, ytmp.iter().copied());
                    }
                }
                next += 1;
            }
            y.copy_from_slice(&ynew);
            let (k0, rest) = k.split_at_mut(ns);
            k0.copy_from_slice(&rest[(dp.stages - 2) * ns..]);
            t = t_new;
            let factor = if err == 0.0 {
                10.0
            } else {
                (0.9 * err.powf(-0.2)).clamp(0.2, 10.0)
            };
            // A step shortened to land on a breakpoint says nothing about the step size.
            h = if landing.is_some() {
                h.max(h_step * factor)
            } else {
                h_step * factor
            };
            if y.iter().any(|v| !v.finite()) {
                dp.status[lane] = PointStatus::NonFinite { t };
                break 'steps;
            }
        }
        // Samples a failed lane did not reach stay NaN.
    }
    deliver(sink, &plan, &dp.store, dp.emitted, dp.nout * lanes, lanes);
    last_state.hand(sink, lanes);
    (dp.status, dp.stats)
}

/// The weights of the stages in the continuous extension at `theta` of a step (`P`'s rows
/// as polynomials in `theta`).
fn dense_weights(theta: f64) -> [f64; 7] {
    let mut q = [0.0; 7];
    for (s, row) in P.iter().enumerate() {
        let mut pw = theta;
        for c in row {
            q[s] += c * pw;
            pw *= theta;
        }
    }
    q
}

/// Hands the `emitted` stored samples (`block_len` values each, from the plan's first
/// emitted one) to the sink, one call per sample also without outputs.
fn deliver(sink: &mut dyn SampleSink, plan: &TimeGrid, store: &[f64], emitted: usize, block_len: usize, lanes: usize) {
    let first = plan.first_emitted();
    for i in 0..emitted {
        sink.samples(
            i,
            plan.sample_time(first + i),
            lanes,
            &store[i * block_len..(i + 1) * block_len],
        );
    }
}

/// scipy's error norm for lane `l` of a block of `lanes` lanes with `ns` states: the RMS over
/// the states of `h·Σ e_s k_s / (atol + rtol·max(|y|, |ynew|))`, stage `s` of the derivatives
/// starting at `k[s * stage_len]`.
#[allow(clippy::too_many_arguments)]
fn error_norm<T: Float>(
    e: &[f64],
    k: &[T],
    stage_len: usize,
    y: &[T],
    ynew: &[T],
    (lanes, l, ns): (usize, usize, usize),
    h: f64,
    tol: Tolerance,
) -> f64 {
    if ns == 0 {
        return 0.0;
    }
    let mut err2 = 0.0f64;
    for slot in 0..ns {
        let j = slot * lanes + l;
        let mut est = 0.0f64;
        for (s, c) in e.iter().enumerate() {
            if *c != 0.0 {
                est += c * k[s * stage_len + j].wide();
            }
        }
        let scale = tol.atol + tol.rtol * y[j].wide().abs().max(ynew[j].wide().abs());
        let r = h * est / scale;
        err2 += r * r;
    }
    (err2 / ns as f64).sqrt()
}

/// How much a rejected step shrinks (scipy's safety 0.9 and exponent −1/5, at least ×0.2).
fn shrink_factor(err: f64) -> f64 {
    if err.is_finite() {
        (0.9 * err.powf(-0.2)).max(0.2)
    } else {
        0.2
    }
}

fn put(store: &mut [f64], out: &[f64], row: usize, lanes: usize, lane: usize) {
    let nout = out.len();
    for (o, v) in out.iter().enumerate() {
        store[row * nout * lanes + o * lanes + lane] = *v;
    }
}

/// Attach the step's dense output to the history points of delayed states.
fn attach_dense<T: Float>(rt: &mut Runtime, kernel: &Kernel, k: &[T], ns: usize) {
    let layout = kernel.layout();
    for h in 0..rt.delayed.len() {
        let v = rt.delayed[h];
        if kernel.vars()[v.0 as usize].kind != VarKind::State {
            continue;
        }
        let slot = layout.slot[v.0 as usize] as usize;
        let mut poly = [0.0; 4];
        for (s, row) in P.iter().enumerate() {
            let ks = k[s * ns + slot].wide();
            for (c, p) in poly.iter_mut().zip(row) {
                *c += p * ks;
            }
        }
        rt.set_last_poly(h, 0, poly);
    }
}

/// Record an accepted point `(t, y, f(t, y))` of every delayed variable (single lane).
fn push_point<T: Float>(rt: &mut Runtime, kernel: &Kernel, t: f64, y: &[T], dy: &[T], a: &[T]) {
    let layout = kernel.layout();
    for h in 0..rt.delayed.len() {
        let v = rt.delayed[h];
        let slot = layout.slot[v.0 as usize] as usize;
        if kernel.vars()[v.0 as usize].kind == VarKind::State {
            rt.push(h, 0, t, y[slot].wide(), dy[slot].wide());
        } else {
            let x = a[slot].wide();
            let slope = rt
                .last(h, 0)
                .filter(|(t0, _)| *t0 < t)
                .map_or(f64::NAN, |(t0, x0)| (x - x0) / (t - t0));
            rt.push(h, 0, t, x, slope);
        }
    }
}
