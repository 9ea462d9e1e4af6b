//! What the kernels call back into during a run: delay histories (`past`) and noise
//! (`randn`). Installed into [`KernelCtx`] by the steppers; one `Runtime` per block.
//!
//! Delays: every state or algebraic variable read through `Past` keeps, per lane, the points
//! `(t, x, x')` at step starts. A delayed read at `t − d` interpolates with a cubic Hermite
//! polynomial on the step containing it (third-order accurate, so fixed-step methods keep
//! their order up to 3 on smooth histories); before t = 0 the history is constant (the initial
//! value); a read inside the step in progress (delay shorter than the step) extrapolates
//! linearly from the step start. In a fixed-step run a read whose delay and time are both whole
//! steps (`kernel::ring::whole_steps`, e.g. every read of an Euler run with a delay of k·dt)
//! takes the recorded point of step `n − k` itself. Each lane has its own deque, so lanes may have their own delays
//! and (rk45) their own step times.
//!
//! Noise: `randn()` is a pure function of (seed, global grid point, step, source): the same
//! point gives the same stream whatever block, thread or chunk it runs in, and every stage of a
//! step sees the same sample (Euler–Maruyama reads `x' = f + σ·randn()/sqrt(dt)` as
//! `dx = f dt + σ dW`).

use std::collections::VecDeque;

use crate::kernel::ring::{hermite_weights, whole_step_read};
use crate::kernel::KernelCtx;
use crate::model::{Circuit, Expr, VarId, VarKind};

#[derive(Clone, Copy, Debug)]
struct Point {
    t: f64,
    x: f64,
    /// NaN until known (a state's derivative arrives with the first stage of its step).
    dx: f64,
    /// Dense output of the step that starts here (rk45): `x(t + θh) = x + h·Σ_j c_j θ^(j+1)`
    /// with `h` the step to the next point; NaN in `c[0]` when absent (Hermite is used).
    poly: [f64; 4],
}

/// Per-block state behind the kernel hooks.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) seed: u64,
    pub(crate) first_point: usize,
    /// Noise counter: the step index (fixed step) or the lane's attempt count (rk45).
    pub(crate) step: u64,
    /// Per-lane noise counters for solvers whose lanes step independently (empty: use `step`).
    pub(crate) lane_step: Vec<u64>,
    pub(crate) lanes: usize,
    /// History index of every variable (`u32::MAX` when not delayed), by `VarId`.
    hist_of: Vec<u32>,
    /// Delayed variables in history order.
    pub(crate) delayed: Vec<VarId>,
    /// `hist[h * lanes + lane]`.
    hist: Vec<VecDeque<Point>>,
    /// Constant history before t = 0: `init[h * lanes + lane]`.
    pub(crate) init: Vec<f64>,
    /// Largest lag seen per history, for trimming (0: never read yet, keep everything).
    max_lag: Vec<f64>,
    /// Distinct delays read so far (at most 16): adaptive steppers step onto their
    /// multiples, where the solution's derivatives jump.
    pub(crate) delays_seen: Vec<f64>,
    /// The step of a fixed-step run: its history points sit at consecutive steps `k·dt`, so a
    /// read finds its step by index instead of searching, and no breakpoints are collected.
    pub(crate) grid_dt: Option<f64>,
}

/// Variables the circuit reads with `Past`, and whether it draws noise.
pub(crate) fn scan(circuit: &Circuit) -> (Vec<VarId>, bool) {
    let mut delayed = Vec::new();
    let mut noise = false;
    for e in &circuit.exprs {
        match e {
            Expr::Past(v, _) if !delayed.contains(v) => delayed.push(*v),
            Expr::Randn => noise = true,
            _ => {}
        }
    }
    // A kept coupling with delays reads every source through the history, as its expansion
    // (one `past` per entry) would.
    for cp in circuit.couplings.iter().filter(|cp| cp.delays.is_some()) {
        for v in &cp.sources {
            if !delayed.contains(v) {
                delayed.push(*v);
            }
        }
    }
    delayed.retain(|v| matches!(circuit.var(*v).kind, VarKind::State | VarKind::Algebraic));
    (delayed, noise)
}

impl Runtime {
    pub(crate) fn new(circuit: &Circuit, delayed: Vec<VarId>, seed: u64, first_point: usize, lanes: usize) -> Runtime {
        let mut hist_of = vec![u32::MAX; circuit.vars.len()];
        for (h, v) in delayed.iter().enumerate() {
            hist_of[v.0 as usize] = h as u32;
        }
        let n = delayed.len() * lanes;
        Runtime {
            seed,
            first_point,
            step: 0,
            lane_step: Vec::new(),
            lanes,
            hist_of,
            hist: vec![VecDeque::new(); n],
            init: vec![f64::NAN; n],
            max_lag: vec![0.0; delayed.len()],
            delays_seen: Vec::new(),
            grid_dt: None,
            delayed,
        }
    }

    pub(crate) fn has_delays(&self) -> bool {
        !self.delayed.is_empty()
    }

    /// Record `x` at time `t` for history `h`, lane `lane` (`dx` NaN when not known yet).
    pub(crate) fn push(&mut self, h: usize, lane: usize, t: f64, x: f64, dx: f64) {
        let lag = self.max_lag[h];
        let q = &mut self.hist[h * self.lanes + lane];
        if let Some(last) = q.back_mut() {
            if last.t == t {
                // A re-evaluation at the same time (final sample, rejected rk45 step) replaces.
                *last = Point {
                    t,
                    x,
                    dx,
                    poly: [f64::NAN; 4],
                };
                return;
            }
        }
        q.push_back(Point {
            t,
            x,
            dx,
            poly: [f64::NAN; 4],
        });
        if lag > 0.0 {
            // Keep one point before the oldest time still readable, with slack for stage
            // offsets and slowly growing delays.
            let horizon = t - 1.5 * lag - 1e-12;
            while q.len() > 3 && q[1].t < horizon {
                q.pop_front();
            }
        }
    }

    /// Set the derivative of the newest point (known after the first stage of a step).
    pub(crate) fn set_last_dx(&mut self, h: usize, lane: usize, dx: f64) {
        if let Some(last) = self.hist[h * self.lanes + lane].back_mut() {
            last.dx = dx;
        }
    }

    /// Attach the dense-output polynomial of the step starting at the newest point.
    pub(crate) fn set_last_poly(&mut self, h: usize, lane: usize, poly: [f64; 4]) {
        if let Some(last) = self.hist[h * self.lanes + lane].back_mut() {
            last.poly = poly;
        }
    }

    /// The newest recorded value, for backward-difference slopes of algebraic variables.
    pub(crate) fn last(&self, h: usize, lane: usize) -> Option<(f64, f64)> {
        self.hist[h * self.lanes + lane].back().map(|p| (p.t, p.x))
    }

    fn value_at(&mut self, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
        let Some(&h) = self.hist_of.get(var as usize) else {
            return f64::NAN;
        };
        if h == u32::MAX || lane >= self.lanes {
            return f64::NAN;
        }
        let h = h as usize;
        if delay > self.max_lag[h] {
            self.max_lag[h] = delay;
        }
        if self.grid_dt.is_none()
            && self.delays_seen.len() < 16
            && !self.delays_seen.iter().any(|d| (d - delay).abs() <= 1e-12 * delay)
        {
            self.delays_seen.push(delay);
        }
        // Fixed-step runs read whole-step delays at whole steps (the ring's rule, `kernel::ring`).
        let whole = self.grid_dt.and_then(|dt| whole_step_read(t, delay, dt));
        #[allow(clippy::cast_precision_loss)]
        let tq = match (whole, self.grid_dt) {
            (Some(m), Some(dt)) => m as f64 * dt,
            _ => t - delay,
        };
        let q = &self.hist[h * self.lanes + lane];
        let init = self.init[h * self.lanes + lane];
        let (Some(first), Some(last)) = (q.front(), q.back()) else {
            return init;
        };
        if tq <= 0.0 || tq < first.t {
            return if tq <= 0.0 { init } else { first.x };
        }
        if tq >= last.t {
            let slope = if last.dx.is_nan() { 0.0 } else { last.dx };
            return last.x + slope * (tq - last.t);
        }
        let lo = match self.grid_dt {
            Some(dt) => grid_step(q, dt, tq),
            None => search_step(q, tq),
        };
        let (p0, p1) = (q[lo], q[lo + 1]);
        if whole.is_some() && p0.t == tq {
            return p0.x;
        }
        if p0.poly[0].is_nan() {
            hermite(p0, p1, tq)
        } else {
            let h = p1.t - p0.t;
            let theta = (tq - p0.t) / h;
            let mut acc = 0.0;
            for c in p0.poly.iter().rev() {
                acc = (acc + c) * theta;
            }
            p0.x + h * acc
        }
    }
}

/// Index `lo` of the step `[q[lo], q[lo + 1]]` containing `tq`, i.e. `q[lo].t <= tq <
/// q[lo + 1].t`, for `q[0].t <= tq < q[last].t`: binary search.
fn search_step(q: &VecDeque<Point>, tq: f64) -> usize {
    let (mut lo, mut hi) = (0usize, q.len() - 1);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if q[mid].t <= tq {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// [`search_step`] on points about `dt` apart: guess the index from `tq / dt`, then correct it
/// by comparing with the recorded times (so the answer is the same even where `k·dt`
/// rounds, or a point is missing).
fn grid_step(q: &VecDeque<Point>, dt: f64, tq: f64) -> usize {
    let last = q.len() - 2;
    let guess = ((tq - q[0].t) / dt).floor();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut lo = if guess.is_finite() && guess > 0.0 {
        (guess as usize).min(last)
    } else {
        0
    };
    while lo < last && q[lo + 1].t <= tq {
        lo += 1;
    }
    while lo > 0 && q[lo].t > tq {
        lo -= 1;
    }
    lo
}

/// The first multiple `m·d` (m = 1…6, d a delay seen) after `t`: a derivative jump of the
/// solution (of order m, so after six the solution is smooth enough for rk45).
pub(crate) fn next_breakpoint(delays: &[f64], t: f64) -> Option<f64> {
    let eps = 1e-12 * t.abs().max(1.0);
    let mut best: Option<f64> = None;
    for d in delays {
        for m in 1..=6 {
            let bp = f64::from(m) * d;
            if bp > t + eps {
                best = Some(best.map_or(bp, |b| b.min(bp)));
                break;
            }
        }
    }
    best
}

/// Cubic Hermite interpolation on [p0, p1]; a missing slope falls back to the secant. The
/// weights are the ring buffer's ([`hermite_weights`]), so both histories read alike.
fn hermite(p0: Point, p1: Point, t: f64) -> f64 {
    let h = p1.t - p0.t;
    let secant = (p1.x - p0.x) / h;
    let m0 = if p0.dx.is_nan() { secant } else { p0.dx };
    let m1 = if p1.dx.is_nan() { secant } else { p1.dx };
    let w = hermite_weights((t - p0.t) / h, h);
    w[0] * p0.x + w[1] * m0 + w[2] * p1.x + w[3] * m1
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal sample determined by (seed, point, step, source) alone (Box–Muller on
/// two counter-based uniforms).
pub fn normal_sample(seed: u64, point: u64, step: u64, source: u32) -> f64 {
    let k = splitmix(seed ^ splitmix(point ^ splitmix(step ^ splitmix(u64::from(source)))));
    let a = splitmix(k);
    let b = splitmix(k ^ 0xD1B5_4A32_D192_ED03);
    // u1 in (0, 1] so the log is finite; u2 in [0, 1).
    let u1 = ((a >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let u2 = (b >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn runtime(ctx: &mut KernelCtx) -> Option<&mut Runtime> {
    ctx.data.as_mut().and_then(|d| d.downcast_mut::<Runtime>())
}

fn past_hook(ctx: &mut KernelCtx, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
    if let Some(ring) = &ctx.ring {
        return ring.value(var, lane, t, delay);
    }
    runtime(ctx).map_or(f64::NAN, |rt| rt.value_at(var, lane, t, delay))
}

fn randn_hook(ctx: &mut KernelCtx, source: u32, lane: usize) -> f64 {
    runtime(ctx).map_or(f64::NAN, |rt| {
        let step = rt.lane_step.get(lane).copied().unwrap_or(rt.step);
        normal_sample(rt.seed, (rt.first_point + lane) as u64, step, source)
    })
}

/// A kernel context whose hooks answer from `rt`.
pub(crate) fn make_ctx(rt: Runtime) -> KernelCtx {
    KernelCtx {
        first_point: rt.first_point,
        past: Some(past_hook),
        randn: Some(randn_hook),
        data: Some(Box::new(rt)),
        ring: None,
    }
}

/// The runtime inside a context made by [`make_ctx`].
pub(crate) fn rt_mut(ctx: &mut KernelCtx) -> &mut Runtime {
    runtime(ctx).expect("the steppers only pass contexts built by make_ctx")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hermite_cubic_is_exact() {
        // x = t³ − 2t: the cubic Hermite interpolant with exact slopes reproduces any cubic.
        let f = |t: f64| t * t * t - 2.0 * t;
        let df = |t: f64| 3.0 * t * t - 2.0;
        let p0 = Point {
            t: 0.5,
            x: f(0.5),
            dx: df(0.5),
            poly: [f64::NAN; 4],
        };
        let p1 = Point {
            t: 1.25,
            x: f(1.25),
            dx: df(1.25),
            poly: [f64::NAN; 4],
        };
        for s in [0.5, 0.7, 1.0, 1.2, 1.25] {
            assert!((hermite(p0, p1, s) - f(s)).abs() < 1e-14, "{s}");
        }
    }

    /// A runtime with one delayed variable (id 0) over `lanes` lanes.
    fn one_history(lanes: usize, grid_dt: Option<f64>) -> Runtime {
        let mut rt = Runtime::new(&Circuit::default(), Vec::new(), 0, 0, lanes);
        rt.hist_of = vec![0];
        rt.delayed = vec![VarId(0)];
        rt.hist = vec![VecDeque::new(); lanes];
        rt.init = (0..lanes).map(|l| 0.25 - l as f64).collect();
        rt.max_lag = vec![0.0];
        rt.grid_dt = grid_dt;
        rt
    }

    #[test]
    fn fixed_step_reads_find_the_same_step_as_the_search() {
        // The reference is the binary search over the recorded times. dt = 1e-4 is not a
        // binary fraction, so k·dt rounds and delays of whole steps at stages between steps
        // land on or next to a recorded point: the index guess must be corrected exactly like
        // the search decides. A whole-step delay read at a step start takes the recorded point
        // of step m = n − k: the search's read at exactly t_m (Hermite at the point itself).
        let (lanes, dt) = (3, 1e-4);
        // The search read a fixed-step read stands for.
        let searched = |search: &mut Runtime, l: usize, t: f64, d: f64| match whole_step_read(t, d, dt) {
            Some(m) => search.value_at(0, l, m as f64 * dt, 0.0),
            None => search.value_at(0, l, t, d),
        };
        let mut grid = one_history(lanes, Some(dt));
        let mut search = one_history(lanes, None);
        let delays = [0.5 * dt, dt, 3.0 * dt, 2.5e-3, 7.3e-3, 2e-2, 0.0];
        let mut interior = 0usize;
        for k in 0..400usize {
            let t = k as f64 * dt;
            for l in 0..lanes {
                let x = (k as f64 * 0.37 + l as f64).sin();
                let dx = (k as f64 * 0.37 + l as f64).cos();
                for rt in [&mut grid, &mut search] {
                    rt.push(0, l, t, x, f64::NAN);
                }
                // Stage 0 reads the newest point before its slope is known (secant rule).
                for &d in &delays {
                    let (a, b) = (grid.value_at(0, l, t, d), searched(&mut search, l, t, d));
                    assert_eq!(a.to_bits(), b.to_bits(), "step {k} lane {l} delay {d} stage 0");
                }
                for rt in [&mut grid, &mut search] {
                    rt.set_last_dx(0, l, dx);
                }
                for c in [0.5, 1.0] {
                    for &d in &delays {
                        let tc = t + c * dt;
                        let (a, b) = (grid.value_at(0, l, tc, d), searched(&mut search, l, tc, d));
                        assert_eq!(a.to_bits(), b.to_bits(), "step {k} lane {l} delay {d} c {c}");
                        interior += usize::from(tc - d > 0.0 && tc - d < t);
                    }
                }
            }
        }
        // Most reads fall between recorded points, where the step index matters.
        assert!(interior > 5000, "{interior}");
    }

    /// The ring buffer the C network loops read answers every read like the deque history:
    /// a state (pushed before stage 0 without its slope, slope set after), an algebraic
    /// (pushed after stage 0 with a backward-difference slope, the first without one), a
    /// lane whose slope goes NaN for a while (secant fallback), reads at stage offsets 0, ½,
    /// 1 with delays below a step, of whole and fractional steps, zero and longer than the
    /// run: equal bit for bit. The ring is sized for the longest delay read.
    #[test]
    fn ring_reads_equal_the_deque_history_bit_for_bit() {
        use crate::kernel::ring::{DelayRing, Planes};
        let (lanes, dt, steps) = (3, 1e-4, 300usize);
        let delays = [0.0, 0.3 * dt, 0.5 * dt, dt, 3.0 * dt, 7.25 * dt, 2.5e-3, 0.05];
        let max_delay = 2.5e-3;
        for algebraic in [false, true] {
            let mut deque = one_history(lanes, Some(dt));
            let init = deque.init.clone();
            let mut ring = DelayRing::new(1, &[0], &init, lanes, dt, max_delay, &[], &[], Planes::WithSlopes);
            let mut compared = 0usize;
            let read = |deque: &mut Runtime, ring: &DelayRing, t: f64, what: &str, compared: &mut usize| {
                for l in 0..lanes {
                    // Reads beyond the ring's span are never made by the loops.
                    for &d in delays.iter().filter(|d| **d <= max_delay || t - **d <= 0.0) {
                        let (a, b) = (deque.value_at(0, l, t, d), ring.value(0, l, t, d));
                        assert_eq!(a.to_bits(), b.to_bits(), "{what} lane {l} t {t} delay {d}: {a} vs {b}");
                        *compared += 1;
                    }
                }
            };
            for k in 0..steps {
                let t = k as f64 * dt;
                let x = |l: usize| (k as f64 * 0.37 + l as f64).sin();
                // Lane 2's slope is unknown (NaN) on steps 40..45.
                let dx = |l: usize| {
                    if l == 2 && (40..45).contains(&k) {
                        f64::NAN
                    } else {
                        (k as f64 * 0.37 + l as f64).cos()
                    }
                };
                if algebraic {
                    read(&mut deque, &ring, t, "algebraic stage 0", &mut compared);
                    let last: Vec<_> = (0..lanes).map(|l| deque.last(0, l)).collect();
                    ring.begin_point(0, k);
                    for (l, prev) in last.iter().enumerate() {
                        let slope = prev
                            .filter(|(t0, _)| *t0 < t)
                            .map_or(f64::NAN, |(t0, x0)| (x(l) - x0) / (t - t0));
                        deque.push(0, l, t, x(l), slope);
                        ring.push_lane(0, l, x(l), slope);
                    }
                } else {
                    ring.begin_point(0, k);
                    for l in 0..lanes {
                        deque.push(0, l, t, x(l), f64::NAN);
                        ring.push_lane(0, l, x(l), f64::NAN);
                    }
                    read(&mut deque, &ring, t, "state stage 0", &mut compared);
                    for l in 0..lanes {
                        deque.set_last_dx(0, l, dx(l));
                        ring.set_newest_dx(0, l, dx(l));
                    }
                }
                for c in [0.5, 1.0] {
                    read(&mut deque, &ring, t + c * dt, "later stage", &mut compared);
                }
            }
            assert!(compared > 5000, "{compared}");
        }
    }

    #[test]
    fn normal_sample_moments_match_standard_normal() {
        // 200k samples: the standard error of the mean is 1/sqrt(n) ≈ 2.2e-3 and of the
        // variance sqrt(2/n) ≈ 3.2e-3; allow 4 standard errors.
        let n = 200_000u64;
        let (mut s1, mut s2) = (0.0, 0.0);
        for i in 0..n {
            let x = normal_sample(7, i % 97, i / 97, 3);
            s1 += x;
            s2 += x * x;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 4.0 * 2.24e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 4.0 * 3.17e-3, "var {var}");
    }
}
