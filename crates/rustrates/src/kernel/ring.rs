//! Delay history of a fixed-step run as ring buffers the generated C code reads directly.
//!
//! The history rule is the solver's (`solve::runtime`): points `(t_k, x_k, x'_k)` at step
//! starts `t_k = k·dt`; a read at `t_q = t − d` returns the initial value for `t_q ≤ 0`,
//! extrapolates linearly from the newest point for `t_q` at or after it (slope 0 while the
//! newest slope is unknown), and otherwise interpolates with a cubic Hermite polynomial on the
//! step containing `t_q`, a missing end slope replaced by the step's secant. The ring keeps the
//! same numbers in a layout a loop can read without calling back: per delayed variable `h`
//! and slot `k mod slots`, three rows of `lanes` values — `x_k`, the left slope `m0` and the
//! right slope `m1` of the step `[t_k, t_k+1]`, each already resolved (given slope, or the
//! secant) — so one source's past is contiguous, and a Hermite read is four products per lane
//! with weights computed once per (edge, evaluation) by [`hermite_weights`]. Reads agree with
//! the solver's deque history bit for bit (same operations in the same order).
//!
//! Only the population loops of the C back end use it, for couplings whose delays are
//! constants (the ring length follows from the largest); rk45 keeps the deque history.

/// `x(t0 + s·h) ≈ w[0]·x0 + w[1]·m0 + w[2]·x1 + w[3]·m1` (cubic Hermite basis, the slope
/// weights already multiplied by `h`). The C loops compute the same expressions.
pub(crate) fn hermite_weights(s: f64, h: f64) -> [f64; 4] {
    let s2 = s * s;
    let s3 = s2 * s;
    [
        2.0 * s3 - 3.0 * s2 + 1.0,
        (s3 - 2.0 * s2 + s) * h,
        -2.0 * s3 + 3.0 * s2,
        (s3 - s2) * h,
    ]
}

/// Rows per slot: the value, the step's left slope and its right slope.
const ROWS: usize = 3;

/// Per-block delay history of the variables a network's couplings read with a delay.
#[derive(Debug, Default)]
pub struct DelayRing {
    lanes: usize,
    slots: usize,
    dt: f64,
    /// History index by `VarId` (`u32::MAX`: not delayed).
    hist_of: Vec<u32>,
    /// Step index of the newest point per history (`-1`: none yet).
    newest: Vec<i64>,
    /// Its slot (`newest mod slots`), so the C reads need no integer division.
    newest_slot: Vec<u64>,
    /// `[h][slot][row][lane]`, rows `x`, `m0`, `m1`.
    data: Vec<f64>,
    /// Slope of the newest point as recorded (NaN: not known yet), `[h][lane]`.
    newest_dx: Vec<f64>,
    /// Extrapolation slope of the newest point (its slope, 0 while unknown), `[h][lane]`.
    extrapolate: Vec<f64>,
    /// Constant history before t = 0, `[h][lane]`.
    init: Vec<f64>,
}

/// What the generated C code receives (`rr_ring` in `emit_net`'s helpers).
#[repr(C)]
pub(crate) struct RingView {
    data: *const f64,
    extrapolate: *const f64,
    init: *const f64,
    newest: *const i64,
    newest_slot: *const u64,
    hist_of: *const u32,
    vars: u64,
    slots: u64,
    lanes: u64,
    dt: f64,
}

impl DelayRing {
    /// Slots needed for reads up to `max_delay` back on steps of `dt`: the step containing
    /// `t − max_delay` and the one after it, from the newest point (a stage reads at most one
    /// step ahead of the newest point, and an algebraic's newest point is one step old), with
    /// one step of slack for rounding.
    pub(crate) fn slots_for(max_delay: f64, dt: f64) -> usize {
        let steps = (max_delay / dt).ceil();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let steps = if steps.is_finite() && steps > 0.0 {
            steps as usize
        } else {
            0
        };
        steps + 4
    }

    /// An empty history for the variables `delayed` (by `VarId` index, in history order) of a
    /// circuit with `vars` variables; `init[h * lanes + lane]` is the constant history.
    pub(crate) fn new(vars: usize, delayed: &[u32], init: &[f64], lanes: usize, dt: f64, max_delay: f64) -> DelayRing {
        let slots = Self::slots_for(max_delay, dt);
        let mut hist_of = vec![u32::MAX; vars];
        for (h, v) in delayed.iter().enumerate() {
            hist_of[*v as usize] = h as u32;
        }
        let n = delayed.len();
        DelayRing {
            lanes,
            slots,
            dt,
            hist_of,
            newest: vec![-1; n],
            newest_slot: vec![0; n],
            data: vec![0.0; n * slots * ROWS * lanes],
            newest_dx: vec![f64::NAN; n * lanes],
            extrapolate: vec![0.0; n * lanes],
            init: init.to_vec(),
        }
    }

    /// Bytes held, for the record.
    pub fn bytes(&self) -> usize {
        8 * (self.data.len() + self.newest_dx.len() + self.extrapolate.len() + self.init.len())
    }

    fn row(&self, h: usize, step: usize, row: usize) -> usize {
        ((h * self.slots + step % self.slots) * ROWS + row) * self.lanes
    }

    fn time(&self, step: usize) -> f64 {
        step as f64 * self.dt
    }

    /// Start point `step` of history `h` (its lanes follow with [`DelayRing::push_lane`]).
    pub(crate) fn begin_point(&mut self, h: usize, step: usize) {
        self.newest[h] = step as i64;
        self.newest_slot[h] = (step % self.slots) as u64;
    }

    /// The newest point's value and time in `lane` (for backward-difference slopes).
    pub(crate) fn last(&self, h: usize, lane: usize) -> Option<(f64, f64)> {
        let n = usize::try_from(self.newest[h]).ok()?;
        Some((self.time(n), self.data[self.row(h, n, 0) + lane]))
    }

    /// Value `x` (slope `dx`, NaN when not known yet) of the newest point in `lane`; resolves
    /// the slopes of the step that ends there.
    pub(crate) fn push_lane(&mut self, h: usize, lane: usize, x: f64, dx: f64) {
        let Ok(i) = usize::try_from(self.newest[h]) else {
            return;
        };
        let at = self.row(h, i, 0) + lane;
        self.data[at] = x;
        let hl = h * self.lanes + lane;
        if i > 0 {
            let prev_dx = self.newest_dx[hl];
            let (x0, step) = self.step_before(h, i, lane);
            let secant = (x - x0) / step;
            let m0 = self.row(h, i - 1, 1) + lane;
            self.data[m0] = if prev_dx.is_nan() { secant } else { prev_dx };
            let m1 = self.row(h, i - 1, 2) + lane;
            self.data[m1] = if dx.is_nan() { secant } else { dx };
        }
        self.set_newest(hl, dx);
    }

    /// The slope of the newest point in `lane`, known after its first stage.
    pub(crate) fn set_newest_dx(&mut self, h: usize, lane: usize, dx: f64) {
        let Ok(i) = usize::try_from(self.newest[h]) else {
            return;
        };
        if i > 0 {
            let x = self.data[self.row(h, i, 0) + lane];
            let (x0, step) = self.step_before(h, i, lane);
            let secant = (x - x0) / step;
            let m1 = self.row(h, i - 1, 2) + lane;
            self.data[m1] = if dx.is_nan() { secant } else { dx };
        }
        self.set_newest(h * self.lanes + lane, dx);
    }

    fn step_before(&self, h: usize, i: usize, lane: usize) -> (f64, f64) {
        (self.data[self.row(h, i - 1, 0) + lane], self.time(i) - self.time(i - 1))
    }

    fn set_newest(&mut self, hl: usize, dx: f64) {
        self.newest_dx[hl] = dx;
        self.extrapolate[hl] = if dx.is_nan() { 0.0 } else { dx };
    }

    /// The value of variable `var` in `lane` at `t − delay` (NaN when `var` has no history).
    pub(crate) fn value(&self, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
        let Some(&h) = self.hist_of.get(var as usize) else {
            return f64::NAN;
        };
        if h == u32::MAX || lane >= self.lanes {
            return f64::NAN;
        }
        let h = h as usize;
        let tq = t - delay;
        let newest = self.newest[h];
        let hl = h * self.lanes + lane;
        if newest < 0 || tq <= 0.0 {
            return self.init[hl];
        }
        #[allow(clippy::cast_sign_loss)]
        let newest = newest as usize;
        let tn = self.time(newest);
        if tq >= tn {
            return self.data[self.row(h, newest, 0) + lane] + self.extrapolate[hl] * (tq - tn);
        }
        let lo = self.step_of(tq, newest);
        let (t0, t1) = (self.time(lo), self.time(lo + 1));
        let step = t1 - t0;
        let w = hermite_weights((tq - t0) / step, step);
        let at = |row: usize, k: usize| self.data[self.row(h, k, row) + lane];
        w[0] * at(0, lo) + w[1] * at(1, lo) + w[2] * at(0, lo + 1) + w[3] * at(2, lo)
    }

    /// The step `lo < newest` with `t_lo <= tq < t_lo+1`, for `0 < tq < t_newest` (the
    /// solver's `grid_step` on a full history).
    fn step_of(&self, tq: f64, newest: usize) -> usize {
        let last = newest - 1;
        let guess = (tq / self.dt).floor();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut lo = if guess.is_finite() && guess > 0.0 {
            (guess as usize).min(last)
        } else {
            0
        };
        while lo < last && self.time(lo + 1) <= tq {
            lo += 1;
        }
        while lo > 0 && self.time(lo) > tq {
            lo -= 1;
        }
        lo
    }

    /// The C view; valid while `self` is neither moved nor resized.
    pub(crate) fn view(&self) -> RingView {
        RingView {
            data: self.data.as_ptr(),
            extrapolate: self.extrapolate.as_ptr(),
            init: self.init.as_ptr(),
            newest: self.newest.as_ptr(),
            newest_slot: self.newest_slot.as_ptr(),
            hist_of: self.hist_of.as_ptr(),
            vars: self.hist_of.len() as u64,
            slots: self.slots as u64,
            lanes: self.lanes as u64,
            dt: self.dt,
        }
    }

    pub(crate) fn lanes(&self) -> usize {
        self.lanes
    }

    pub(crate) fn dt(&self) -> f64 {
        self.dt
    }
}
