//! Delay history of a fixed-step run as ring buffers the generated C code reads directly.
//!
//! The history rule is the solver's (`solve::runtime`): points `(t_k, x_k, x'_k)` at step
//! starts `t_k = k·dt`; a read at `t_q = t − d` returns the initial value for `t_q ≤ 0`,
//! extrapolates linearly from the newest point for `t_q` at or after it (slope 0 while the
//! newest slope is unknown), and otherwise interpolates with a cubic Hermite polynomial on the
//! step containing `t_q`, a missing end slope replaced by the step's secant. A read whose
//! delay and evaluation time are both whole steps ([`whole_steps`]) reads the point of that
//! step instead: the step `m = n − k` exactly (the initial value for `m ≤ 0`, the
//! extrapolation for `m` at or after the newest point), with no interpolation and no rounding
//! of `t − d`. The ring keeps the same numbers in a layout a loop can read without calling
//! back: per delayed variable `h` three planes of `slots × lanes` values — `x_k`, the left
//! slope `m0` and the right slope `m1` of the step `[t_k, t_k+1]`, each already resolved (given
//! slope, or the secant) — so one source's past values are contiguous (a whole-step read
//! touches the value plane only), and a Hermite read is four products per lane with weights
//! computed once per (edge, evaluation) by [`hermite_weights`]. Reads agree with the solver's
//! deque history bit for bit (same rule, same operations in the same order).
//!
//! The population loops of the C back end read it, and the JIT's engine couplings
//! (`kernel::coupling`, through [`DelayRing::tap`]); rk45 keeps the deque history. A
//! coupling's delays are constants, or differ per lane (a swept conduction velocity: lengths
//! over each lane's velocity, constant within a run): then each lane's delay and its whole
//! steps are kept per term ([`LaneDelays`]), decided once per run like a constant's, and the
//! ring is as long as the largest delay of any lane.

use super::aligned::LineAligned;
use super::precision::Real;

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

/// Planes per history: the values, the steps' left slopes and their right slopes.
const ROWS: usize = 3;

/// The most bytes of ring a block should keep: the loops read every history at scattered
/// steps each evaluation, so a ring beyond a core's L2 cache is read from L3 or memory (at
/// N = 68, 64 lanes, 20 ms at 1e-4 s: a 7 MB ring per block; the C program's 16-lane blocks keep
/// 1.8 MB) and two threads' rings compete for it.
pub(crate) const BLOCK_BYTES: usize = 1 << 20;

/// Fewest lanes [`block_lanes`] gives a block: the C loops' chunk, whose rows are whole vectors.
pub(crate) const MIN_BLOCK_LANES: usize = 16;

/// The lanes of a block of at most `lanes` whose ring keeps `bytes_per_lane` a lane: `lanes`
/// when the ring fits [`BLOCK_BYTES`] (or there is none), else the largest of 16, 32, 64, …
/// whose ring fits, at least [`MIN_BLOCK_LANES`] (never more than `lanes`).
pub(crate) fn block_lanes(lanes: usize, bytes_per_lane: usize) -> usize {
    if bytes_per_lane == 0 || lanes.saturating_mul(bytes_per_lane) <= BLOCK_BYTES {
        return lanes;
    }
    let mut fits = MIN_BLOCK_LANES;
    while (2 * fits).saturating_mul(bytes_per_lane) <= BLOCK_BYTES {
        fits *= 2;
    }
    lanes.min(fits)
}

/// What a ring keeps per history, decided before it is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Planes {
    /// Values and both slopes ([`ROWS`] planes): reads anywhere between steps.
    WithSlopes,
    /// The values only (a third of the memory, no slopes written): a run whose reads all take
    /// whole steps ([`reads_whole_steps_only`]).
    ValuesOnly,
}

impl Planes {
    /// For a run that reads whole steps only (`whole_only`) or not.
    pub(crate) fn for_reads(whole_only: bool) -> Planes {
        if whole_only {
            Planes::ValuesOnly
        } else {
            Planes::WithSlopes
        }
    }

    fn count(self) -> usize {
        match self {
            Planes::WithSlopes => ROWS,
            Planes::ValuesOnly => 1,
        }
    }
}

/// Whether every read of a fixed-step run takes a whole step, so its ring needs no slopes:
/// the run evaluates at step starts only (`one_stage`: forward Euler), and every delay it
/// reads (`delays`: the ring's terms, its lanes' delays and every other `past` of the
/// circuit, `None` for one not known before the run) is a whole number of steps or not
/// positive (a current read). Decided once per run, where the delays are known.
pub(crate) fn reads_whole_steps_only(one_stage: bool, delays: impl IntoIterator<Item = Option<f64>>, dt: f64) -> bool {
    one_stage
        && delays
            .into_iter()
            .all(|d| d.is_some_and(|d| d <= 0.0 || whole_steps(d, dt).is_some()))
}

/// How far, in steps and relative to the step count, a delay or an evaluation time may be
/// from a whole number of steps and still count as one: a few hundred roundings of the
/// division, far below any delay meant as a fraction of a step (`0.0013 / 1e-4` is
/// `12.999999999999998`; a delay of 13.0001 steps stays fractional).
pub const WHOLE_STEP_TOLERANCE: f64 = 1e-9;

/// The whole-step rule of fixed-step runs, written once for every back end and both
/// histories: `x` (a delay, or the time of an evaluation) as a whole number of steps of `dt`,
/// when it is one within [`WHOLE_STEP_TOLERANCE`].
pub fn whole_steps(x: f64, dt: f64) -> Option<u64> {
    let q = x / dt;
    let k = q.round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    ((0.0..9.0e15).contains(&k) && (q - k).abs() <= WHOLE_STEP_TOLERANCE * k.max(1.0)).then_some(k as u64)
}

/// The step a read at time `t` of `delay` takes whole on steps of `dt` (negative: before the
/// first step), or `None` when it interpolates.
pub(crate) fn whole_step_read(t: f64, delay: f64, dt: f64) -> Option<i64> {
    let n = i64::try_from(whole_steps(t, dt)?).ok()?;
    let k = i64::try_from(whole_steps(delay, dt)?).ok()?;
    Some(n - k)
}

/// Per-block delay history of the variables a network's couplings read with a delay.
#[derive(Debug, Default)]
pub struct DelayRing {
    lanes: usize,
    slots: usize,
    dt: f64,
    /// History index by `VarId` (`u32::MAX`: not delayed).
    hist_of: Vec<u32>,
    /// Planes per history: [`ROWS`], or 1 (the values only) for a run whose reads all take
    /// whole steps ([`Planes::ValuesOnly`]).
    planes: usize,
    /// Step index of the newest point per history (`-1`: none yet).
    newest: Vec<i64>,
    /// Its slot (`newest mod slots`), so the C reads need no integer division.
    newest_slot: Vec<u64>,
    /// `[h][plane][slot][lane]`, planes `x`, `m0`, `m1`; from a cache line, so a row of 16
    /// lanes is two lines (see [`LineAligned`]).
    data: LineAligned<f64>,
    /// Per delayed term of the kernel (its order of `NetData::delay_terms`): the delay in
    /// whole steps, or `-1` when it is a fraction of a step.
    whole: Vec<i64>,
    /// Slope of the newest point as recorded (NaN: not known yet), `[h][lane]`.
    newest_dx: Vec<f64>,
    /// Extrapolation slope of the newest point (its slope, 0 while unknown), `[h][lane]`.
    extrapolate: Vec<f64>,
    /// Constant history before t = 0, `[h][lane]`.
    init: Vec<f64>,
    lane: LaneDelays,
}

/// The delays of the terms whose lanes read different delays (`NetData::lane_terms`' order),
/// decided once per run: `[term][lane]` the delay and its whole steps (`-1`: a fraction), and
/// per term the fewest and most whole steps over the lanes (`-1`: some lane's delay is a
/// fraction), so a loop can tell whether all of a term's lanes read value rows.
#[derive(Debug, Default)]
struct LaneDelays {
    delay: Vec<f64>,
    whole: Vec<i64>,
    kmin: Vec<i64>,
    kmax: Vec<i64>,
}

impl LaneDelays {
    fn new(delays: &[f64], lanes: usize, dt: f64) -> LaneDelays {
        let whole: Vec<i64> = delays.iter().map(|d| whole_steps_i64(*d, dt)).collect();
        let span = |pick: fn(i64, i64) -> i64| -> Vec<i64> {
            whole
                .chunks(lanes.max(1))
                .map(|ks| {
                    if ks.iter().any(|k| *k < 0) {
                        -1
                    } else {
                        ks.iter().copied().reduce(pick).unwrap_or(-1)
                    }
                })
                .collect()
        };
        LaneDelays {
            kmin: span(i64::min),
            kmax: span(i64::max),
            delay: delays.to_vec(),
            whole,
        }
    }
}

/// The previous step's left and right slope rows of a history (`None`: a values-only ring).
type SlopeRows<'a> = Option<(&'a mut [f64], &'a mut [f64])>;

/// The rows of history `h` (of `planes` planes) for its newest point (in `newest_slot`) in
/// `data`: `(values, previous values, previous left and right slopes)`, each `lanes` long
/// (the previous rows, of the step ending at the newest point, meaningful after the first
/// point).
fn newest_rows_of(
    data: &mut [f64],
    h: usize,
    (lanes, slots, planes): (usize, usize, usize),
    newest_slot: u64,
) -> (&mut [f64], &[f64], SlopeRows<'_>) {
    #[allow(clippy::cast_possible_truncation)]
    let slot = newest_slot as usize;
    let prev = if slot == 0 { slots - 1 } else { slot - 1 };
    let plane = slots * lanes;
    let hist = &mut data[h * planes * plane..(h + 1) * planes * plane];
    let (values, slopes) = hist.split_at_mut(plane);
    let (x, x_prev) = if slot > prev {
        let (before, from) = values.split_at_mut(slot * lanes);
        (&mut from[..lanes], &before[prev * lanes..(prev + 1) * lanes])
    } else {
        let (before, from) = values.split_at_mut(prev * lanes);
        (&mut before[slot * lanes..(slot + 1) * lanes], &from[..lanes])
    };
    let slopes = (!slopes.is_empty()).then(|| {
        let (m0, m1) = slopes.split_at_mut(plane);
        (
            &mut m0[prev * lanes..(prev + 1) * lanes],
            &mut m1[prev * lanes..(prev + 1) * lanes],
        )
    });
    (x, x_prev, slopes)
}

/// [`whole_steps`] as the C loops store it: `-1` for a fraction of a step.
fn whole_steps_i64(d: f64, dt: f64) -> i64 {
    whole_steps(d, dt).and_then(|k| i64::try_from(k).ok()).unwrap_or(-1)
}

/// One history's read at some `t − d` in every lane ([`DelayRing::tap`]): where the lanes'
/// values are and how they combine. Each lane's value is [`DelayRing::value`]'s, the same
/// operations in the same order.
pub(crate) enum Tap<'a> {
    /// The variable has no history: NaN.
    Missing,
    /// Before the first point: the constant history.
    Init(&'a [f64]),
    /// At or after the newest point: `x + slope · by`.
    Extrapolate { x: &'a [f64], slope: &'a [f64], by: f64 },
    /// A whole step's recorded value.
    Row(&'a [f64]),
    /// Between steps: `w[0]·x0 + w[1]·m0 + w[2]·x1 + w[3]·m1`.
    Hermite {
        w: [f64; 4],
        x0: &'a [f64],
        m0: &'a [f64],
        x1: &'a [f64],
        m1: &'a [f64],
    },
}

impl Tap<'_> {
    /// The value in `lane`.
    #[inline(always)]
    pub(crate) fn at(&self, lane: usize) -> f64 {
        match self {
            Tap::Missing => f64::NAN,
            Tap::Init(x) | Tap::Row(x) => x[lane],
            Tap::Extrapolate { x, slope, by } => x[lane] + slope[lane] * by,
            Tap::Hermite { w, x0, m0, x1, m1 } => w[0] * x0[lane] + w[1] * m0[lane] + w[2] * x1[lane] + w[3] * m1[lane],
        }
    }
}

/// What the generated C code receives (`rr_ring` in `c/net`'s helpers).
#[repr(C)]
pub(crate) struct RingView {
    data: *const f64,
    extrapolate: *const f64,
    init: *const f64,
    newest: *const i64,
    newest_slot: *const u64,
    hist_of: *const u32,
    whole: *const i64,
    /// The step this evaluation starts (`-1`: it is between steps, a later stage).
    now: i64,
    vars: u64,
    slots: u64,
    lanes: u64,
    dt: f64,
    lane_delay: *const f64,
    lane_whole: *const i64,
    lane_kmin: *const i64,
    lane_kmax: *const i64,
    /// Planes per history (3, or 1: values only).
    planes: u64,
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
    /// circuit with `vars` variables; `init[h * lanes + lane]` is the constant history;
    /// `terms` the delays of the kernel's delayed terms with constant delays, `lane_terms`
    /// (`[term][lane]`) those of its terms whose delays differ per lane (each decided whole or
    /// fractional here, once per run, by [`whole_steps`]); the ring reaches back `max_delay`
    /// or the largest of `lane_terms`; it keeps `planes` per history.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        vars: usize,
        delayed: &[u32],
        init: &[f64],
        lanes: usize,
        dt: f64,
        max_delay: f64,
        terms: &[f64],
        lane_terms: &[f64],
        planes: Planes,
    ) -> DelayRing {
        let max_delay = lane_terms.iter().copied().fold(max_delay, f64::max);
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
            planes: planes.count(),
            newest: vec![-1; n],
            newest_slot: vec![0; n],
            data: LineAligned::new(n * slots * planes.count() * lanes, 0.0),
            whole: terms.iter().map(|d| whole_steps_i64(*d, dt)).collect(),
            lane: LaneDelays::new(lane_terms, lanes, dt),
            newest_dx: vec![f64::NAN; n * lanes],
            extrapolate: vec![0.0; n * lanes],
            init: init.to_vec(),
        }
    }

    /// Bytes held, for the record.
    pub fn bytes(&self) -> usize {
        8 * (self.data.len()
            + self.newest_dx.len()
            + self.extrapolate.len()
            + self.init.len()
            + self.lane.delay.len()
            + self.lane.whole.len())
    }

    fn row(&self, h: usize, step: usize, plane: usize) -> usize {
        ((h * self.planes + plane) * self.slots + step % self.slots) * self.lanes
    }

    fn time(&self, step: usize) -> f64 {
        step as f64 * self.dt
    }

    /// Rows of the newest point of history `h` (its value) and of the step before it (value,
    /// left and right slope), from the newest slot without a division: the solver records
    /// every history every step, so this runs `histories × lanes` times per step.
    fn newest_rows(&self, h: usize) -> (usize, usize, usize, usize) {
        #[allow(clippy::cast_possible_truncation)]
        let slot = self.newest_slot[h] as usize;
        let prev = if slot == 0 { self.slots - 1 } else { slot - 1 };
        let at = |plane: usize, slot: usize| ((h * self.planes + plane) * self.slots + slot) * self.lanes;
        (at(0, slot), at(0, prev), at(1, prev), at(2, prev))
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
        let (at, x_prev, m0_prev, m1_prev) = self.newest_rows(h);
        self.data[at + lane] = x;
        let hl = h * self.lanes + lane;
        if i > 0 && self.planes == ROWS {
            let prev_dx = self.newest_dx[hl];
            let secant = (x - self.data[x_prev + lane]) / (self.time(i) - self.time(i - 1));
            self.data[m0_prev + lane] = if prev_dx.is_nan() { secant } else { prev_dx };
            self.data[m1_prev + lane] = if dx.is_nan() { secant } else { dx };
        }
        self.set_newest(hl, dx);
    }

    /// The slope of the newest point in `lane`, known after its first stage (the solver sets a
    /// row at once, [`DelayRing::set_row_dx`]; the tests compare the two).
    #[cfg(test)]
    pub(crate) fn set_newest_dx(&mut self, h: usize, lane: usize, dx: f64) {
        let Ok(i) = usize::try_from(self.newest[h]) else {
            return;
        };
        if i > 0 && self.planes == ROWS {
            let (at, x_prev, _, m1_prev) = self.newest_rows(h);
            let secant = (self.data[at + lane] - self.data[x_prev + lane]) / (self.time(i) - self.time(i - 1));
            self.data[m1_prev + lane] = if dx.is_nan() { secant } else { dx };
        }
        self.set_newest(h * self.lanes + lane, dx);
    }

    /// Point `step` of history `h` in every lane at once, its slopes not known yet:
    /// [`DelayRing::begin_point`] and [`DelayRing::push_lane`] of `x[l]` with slope NaN per
    /// lane, the same operations, without a call and bounds checks per lane (the solver
    /// records every state history every step).
    pub(crate) fn push_row<T: Real>(&mut self, h: usize, step: usize, x: &[T]) {
        self.begin_point(h, step);
        let lanes = self.lanes;
        let span = if step > 0 {
            self.time(step) - self.time(step - 1)
        } else {
            f64::NAN
        };
        let prev_dx = &mut self.newest_dx[h * lanes..(h + 1) * lanes];
        let shape = (lanes, self.slots, self.planes);
        let (row, x_prev, slopes) = newest_rows_of(&mut self.data, h, shape, self.newest_slot[h]);
        for (r, v) in row.iter_mut().zip(&x[..lanes]) {
            *r = v.wide();
        }
        if let (true, Some((m0_prev, m1_prev))) = (step > 0, slopes) {
            for l in 0..lanes {
                let secant = (row[l] - x_prev[l]) / span;
                m0_prev[l] = if prev_dx[l].is_nan() { secant } else { prev_dx[l] };
                m1_prev[l] = secant;
            }
        }
        prev_dx.fill(f64::NAN);
        self.extrapolate[h * lanes..(h + 1) * lanes].fill(0.0);
    }

    /// The slopes `dx[l]` of the newest point of history `h` in every lane:
    /// [`DelayRing::set_newest_dx`] per lane, the same operations.
    pub(crate) fn set_row_dx<T: Real>(&mut self, h: usize, dx: &[T]) {
        let Ok(i) = usize::try_from(self.newest[h]) else {
            return;
        };
        let lanes = self.lanes;
        let dx = &dx[..lanes];
        let span = if i > 0 {
            self.time(i) - self.time(i - 1)
        } else {
            f64::NAN
        };
        let shape = (lanes, self.slots, self.planes);
        if let (true, (row, x_prev, Some((_, m1_prev)))) =
            (i > 0, newest_rows_of(&mut self.data, h, shape, self.newest_slot[h]))
        {
            for l in 0..lanes {
                let d = dx[l].wide();
                m1_prev[l] = if d.is_nan() { (row[l] - x_prev[l]) / span } else { d };
            }
        }
        let hl = h * lanes;
        for (l, d) in dx.iter().enumerate() {
            self.set_newest(hl + l, d.wide());
        }
    }

    fn set_newest(&mut self, hl: usize, dx: f64) {
        self.newest_dx[hl] = dx;
        self.extrapolate[hl] = if dx.is_nan() { 0.0 } else { dx };
    }

    /// The value of variable `var` in `lane` at `t − delay` (NaN when `var` has no history).
    pub(crate) fn value(&self, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
        if lane >= self.lanes {
            return f64::NAN;
        }
        self.tap(var, t, delay, whole_step_read(t, delay, self.dt)).at(lane)
    }

    /// The read of variable `var` at `t − delay` in every lane, `whole` the step it takes
    /// whole ([`whole_step_read`], which a loop decides from [`DelayRing::step_at`] and the
    /// term's whole steps without a division): [`DelayRing::value`]'s rule, resolved once for
    /// all lanes, so a loop over terms pays the rule once per term and the lanes read rows.
    pub(crate) fn tap(&self, var: u32, t: f64, delay: f64, whole: Option<i64>) -> Tap<'_> {
        let Some(&h) = self.hist_of.get(var as usize) else {
            return Tap::Missing;
        };
        if h == u32::MAX {
            return Tap::Missing;
        }
        let h = h as usize;
        let lanes = self.lanes;
        let hl = h * lanes;
        let row = |at: usize| &self.data[at..at + lanes];
        let newest = self.newest[h];
        // A whole step strictly between the first and the newest point, by integers alone
        // (as the C loops' `rr_ring_term`): `m > 0` is `tq > 0` and `m < newest` is
        // `tq < tn`, and the slot comes from the newest one's without a division.
        if let Some(m) = whole.filter(|m| *m > 0 && *m < newest) {
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            let (back, slot) = ((newest - m) as usize, self.newest_slot[h] as usize);
            if back < self.slots {
                let slot = if slot >= back {
                    slot - back
                } else {
                    slot + self.slots - back
                };
                return Tap::Row(row((h * self.planes * self.slots + slot) * lanes));
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let tq = whole.map_or(t - delay, |m| m as f64 * self.dt);
        if newest < 0 || tq <= 0.0 {
            return Tap::Init(&self.init[hl..hl + lanes]);
        }
        #[allow(clippy::cast_sign_loss)]
        let newest = newest as usize;
        let tn = self.time(newest);
        if tq >= tn {
            return Tap::Extrapolate {
                x: row(self.row(h, newest, 0)),
                slope: &self.extrapolate[hl..hl + lanes],
                by: tq - tn,
            };
        }
        if let Some(m) = whole {
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            return Tap::Row(row(self.row(h, m as usize, 0)));
        }
        debug_assert_eq!(self.planes, ROWS, "a read between steps from a values-only ring");
        let lo = self.step_of(tq, newest);
        let (t0, t1) = (self.time(lo), self.time(lo + 1));
        let step = t1 - t0;
        Tap::Hermite {
            w: hermite_weights((tq - t0) / step, step),
            x0: row(self.row(h, lo, 0)),
            m0: row(self.row(h, lo, 1)),
            x1: row(self.row(h, lo + 1, 0)),
            m1: row(self.row(h, lo, 2)),
        }
    }

    /// The step an evaluation at `t` starts (`-1`: it is between steps, a later stage), as
    /// the C loops' `now`.
    pub(crate) fn step_at(&self, t: f64) -> i64 {
        whole_steps(t, self.dt)
            .and_then(|n| i64::try_from(n).ok())
            .unwrap_or(-1)
    }

    /// Constant-delay term `term`'s delay in whole steps (`-1`: a fraction), decided at `new`.
    pub(crate) fn term_whole(&self, term: usize) -> i64 {
        self.whole[term]
    }

    /// Per-lane term `term`'s delay in `lane` in whole steps (`-1`: a fraction).
    pub(crate) fn lane_term_whole(&self, term: usize, lane: usize) -> i64 {
        self.lane.whole[term * self.lanes + lane]
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

    /// The C view for an evaluation at `t`; valid while `self` is neither moved nor resized.
    pub(crate) fn view(&self, t: f64) -> RingView {
        RingView {
            data: self.data.as_ptr(),
            extrapolate: self.extrapolate.as_ptr(),
            init: self.init.as_ptr(),
            newest: self.newest.as_ptr(),
            newest_slot: self.newest_slot.as_ptr(),
            hist_of: self.hist_of.as_ptr(),
            whole: self.whole.as_ptr(),
            now: self.step_at(t),
            vars: self.hist_of.len() as u64,
            slots: self.slots as u64,
            lanes: self.lanes as u64,
            dt: self.dt,
            lane_delay: self.lane.delay.as_ptr(),
            lane_whole: self.lane.whole.as_ptr(),
            lane_kmin: self.lane.kmin.as_ptr(),
            lane_kmax: self.lane.kmax.as_ptr(),
            planes: self.planes as u64,
        }
    }

    /// How many constant-delay terms and per-lane terms the ring decided: a kernel's loops
    /// read it only when these are its own counts.
    pub(crate) fn terms(&self) -> (usize, usize) {
        (self.whole.len(), self.lane.kmin.len())
    }

    pub(crate) fn lanes(&self) -> usize {
        self.lanes
    }

    pub(crate) fn dt(&self) -> f64 {
        self.dt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block's lanes shrink to the largest of 16, 32, 64, … whose ring fits 1 MiB, never
    /// below 16 nor above the lanes asked; no ring or one that fits leaves them. Figures by
    /// hand: N = 68 histories × 204 slots (20 ms at 1e-4 s) × 8 B = 110,976 B a lane: 64 lanes
    /// 7.1 MB, 16 lanes 1.78 MB (the floor); 10 × 210 × 8 = 16,800 B: 32 lanes 537,600 B fit,
    /// 64 lanes 1,075,200 B do not; 16,384 B × 64 is exactly 1 MiB.
    #[test]
    fn blocks_keep_their_ring_within_a_mebibyte() {
        let cases = [
            (64, 68 * 204 * 8, 16),
            (64, 10 * 210 * 8, 32),
            (64, 0, 64),
            (64, 16_384, 64),
            (64, 16_385, 32),
            (8, 68 * 204 * 8, 8),
            (100, 5_000, 100),
            (1000, 5_000, 128),
            (64, usize::MAX, 16),
        ];
        for (lanes, bytes, want) in cases {
            assert_eq!(block_lanes(lanes, bytes), want, "{lanes} lanes of {bytes} B");
        }
    }

    #[test]
    fn whole_steps_snaps_within_the_tolerance_only() {
        let dt = 1e-4;
        // 0.0013 / 1e-4 = 12.999999999999998: a whole number of steps given in seconds.
        assert_eq!(whole_steps(0.0013, dt), Some(13));
        assert_eq!(whole_steps(0.0, dt), Some(0));
        assert_eq!(whole_steps(0.02, dt), Some(200));
        // A hundredth of a step off, a half step, negative or not finite: fractional.
        assert_eq!(whole_steps(13.01 * dt, dt), None);
        assert_eq!(whole_steps(2.5 * dt, dt), None);
        assert_eq!(whole_steps(-dt, dt), None);
        assert_eq!(whole_steps(f64::NAN, dt), None);
        // Every step time of a long run, as the solver computes it (i·dt).
        for i in (0..2_000_000usize).step_by(997) {
            assert_eq!(whole_steps(i as f64 * dt, dt), Some(i as u64), "step {i}");
        }
        // A stage between steps is not a step start.
        assert_eq!(whole_steps(17.5 * dt, dt), None);
        assert_eq!(whole_step_read(40.0 * dt, 0.0013, dt), Some(27));
        assert_eq!(whole_step_read(40.5 * dt, 0.0013, dt), None);
    }

    /// Per-lane delays are decided per lane by the one rule, and a term's span of whole steps
    /// says whether every lane reads a value row (one row when the lanes agree).
    #[test]
    fn lane_delays_are_decided_per_lane_and_spanned_per_term() {
        let dt = 1e-4;
        // Three terms of two lanes: both whole and equal, whole and different (0.0013 is
        // 12.999999999999998 steps), whole and fractional.
        let delays = [3.0 * dt, 3.0 * dt, 0.0013, 2.0 * dt, 4.0 * dt, 4.5 * dt];
        let ring = DelayRing::new(1, &[0], &[0.0, 0.0], 2, dt, 0.0, &[], &delays, Planes::WithSlopes);
        assert_eq!(ring.lane.whole, vec![3, 3, 13, 2, 4, -1]);
        assert_eq!(ring.lane.kmin, vec![3, 2, -1]);
        assert_eq!(ring.lane.kmax, vec![3, 13, -1]);
        assert_eq!(ring.terms(), (0, 3));
        // The ring reaches back to the largest lane delay, 13 steps, with its four of slack.
        assert_eq!(ring.slots, 13 + 4);
    }

    /// Recording a row at once (`push_row`, `set_row_dx`) leaves the ring exactly as recording
    /// lane by lane does (`push_lane`, `set_newest_dx`): every value, slope, newest slope and
    /// extrapolation slope bit for bit, over more steps than the ring has slots (so the slots
    /// wrap), with slopes known and unknown (NaN), in double and single precision (rows of
    /// `f32` are their values widened).
    #[test]
    fn row_records_equal_lane_records_bit_for_bit() {
        let (lanes, dt, histories) = (3usize, 1e-4, 2usize);
        let init = vec![0.5; histories * lanes];
        let new = || DelayRing::new(2, &[0, 1], &init, lanes, dt, 5.0 * dt, &[], &[], Planes::WithSlopes);
        let x = |k: usize, h: usize, l: usize| ((k * 7 + h * 3 + l) as f64 * 0.61).sin() * 1e3;
        // Every third point one lane's slope stays unknown.
        let dx = |k: usize, h: usize, l: usize| {
            if (k + l).is_multiple_of(3) {
                f64::NAN
            } else {
                x(k + 1, h, l)
            }
        };
        let same = |a: &DelayRing, b: &DelayRing, what: &str| {
            for (name, p, q) in [
                ("data", &a.data[..], &b.data[..]),
                ("newest_dx", &a.newest_dx[..], &b.newest_dx[..]),
                ("extrapolate", &a.extrapolate[..], &b.extrapolate[..]),
            ] {
                let equal = p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits());
                assert!(equal, "{what}: {name} differs");
            }
            assert_eq!((&a.newest, &a.newest_slot), (&b.newest, &b.newest_slot), "{what}");
        };
        for single in [false, true] {
            let round = |v: f64| if single { f64::from(v as f32) } else { v };
            let (mut by_lane, mut by_row) = (new(), new());
            for step in 0..40usize {
                for h in 0..histories {
                    by_lane.begin_point(h, step);
                    for l in 0..lanes {
                        by_lane.push_lane(h, l, round(x(step, h, l)), f64::NAN);
                    }
                    let xs: Vec<f64> = (0..lanes).map(|l| x(step, h, l)).collect();
                    let dxs: Vec<f64> = (0..lanes).map(|l| dx(step, h, l)).collect();
                    if single {
                        by_row.push_row(h, step, &xs.iter().map(|v| *v as f32).collect::<Vec<f32>>());
                    } else {
                        by_row.push_row(h, step, &xs);
                    }
                    // The values (and the slopes of the step before) before the slopes are known.
                    same(
                        &by_lane,
                        &by_row,
                        &format!("single {single}, step {step}, history {h}, pushed"),
                    );
                    for l in 0..lanes {
                        by_lane.set_newest_dx(h, l, round(dx(step, h, l)));
                    }
                    if single {
                        by_row.set_row_dx(h, &dxs.iter().map(|v| *v as f32).collect::<Vec<f32>>());
                    } else {
                        by_row.set_row_dx(h, &dxs);
                    }
                    same(
                        &by_lane,
                        &by_row,
                        &format!("single {single}, step {step}, history {h}, slopes"),
                    );
                }
            }
            assert!(by_row.newest[0] >= by_row.slots as i64, "the slots wrapped");
        }
    }

    /// A values-only ring (a third of the memory, no slopes) records and reads a whole-step
    /// run exactly as the full ring does: every read of steps 0..12 back (the initial value,
    /// value rows, the newest point, reads from slots that wrapped) equal bit for bit to the
    /// full ring's and to the recorded value itself (the newest point: a delay of 0).
    #[test]
    fn values_only_ring_reads_whole_steps_as_the_full_ring() {
        let (lanes, dt, first) = (3usize, 1e-4, 0.25);
        let init = vec![first; 2 * lanes];
        let new = |planes| DelayRing::new(2, &[0, 1], &init, lanes, dt, 9.0 * dt, &[], &[], planes);
        let (mut full, mut values) = (new(Planes::WithSlopes), new(Planes::ValuesOnly));
        assert_eq!(values.data.len() * ROWS, full.data.len());
        let x = |k: usize, h: usize, l: usize| ((k * 5 + h * 11 + l) as f64 * 0.43).cos() * 10.0;
        let mut reads = 0usize;
        for step in 0..40usize {
            for h in 0..2 {
                let xs: Vec<f64> = (0..lanes).map(|l| x(step, h, l)).collect();
                let dxs: Vec<f64> = xs.iter().map(|v| v * 0.5).collect();
                for ring in [&mut full, &mut values] {
                    ring.push_row(h, step, &xs);
                    ring.set_row_dx(h, &dxs);
                }
            }
            let t = step as f64 * dt;
            for h in 0..2usize {
                for l in 0..lanes {
                    for k in 0..=12usize {
                        let delay = k as f64 * dt;
                        // t − d at or before 0 reads the initial value.
                        let want = if step > k { x(step - k, h, l) } else { first };
                        for (name, ring) in [("full", &full), ("values only", &values)] {
                            let got = ring.value(h as u32, l, t, delay);
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{name}: step {step}, delay {k}, lane {l}"
                            );
                        }
                        reads += 1;
                    }
                }
            }
        }
        assert!(values.newest[0] >= 2 * values.slots as i64, "the slots wrapped");
        assert_eq!(reads, 40 * 2 * lanes * 13);
    }

    /// The ring keeps its slopes unless the run reads whole steps only: one stage (Euler) and
    /// every delay whole (within the tolerance: 0.0013 s is 13 steps) or not positive.
    #[test]
    fn slopes_are_dropped_only_when_every_read_takes_a_whole_step() {
        let dt = 1e-4;
        let whole = [Some(3.0 * dt), Some(0.0013), Some(0.0), Some(-dt)];
        assert!(reads_whole_steps_only(true, whole, dt));
        // A second stage reads between steps.
        assert!(!reads_whole_steps_only(false, whole, dt));
        // A fractional delay, or one not known before the run (a computed `past`).
        assert!(!reads_whole_steps_only(true, [Some(3.0 * dt), Some(2.5 * dt)], dt));
        assert!(!reads_whole_steps_only(true, [Some(3.0 * dt), None], dt));
        assert!(reads_whole_steps_only(true, [], dt));
    }

    /// Every row of lanes the C loops read starts on a cache line when a row is a whole number
    /// of lines (8, 16, 64 double lanes), for rings large enough to be `mmap`ed (which a plain
    /// `Vec` gets 16 bytes into a page) and small ones alike, in both plane layouts.
    #[test]
    fn ring_rows_start_on_cache_lines() {
        let dt = 1e-4;
        for (lanes, vars, span) in [(8usize, 3usize, 20.0 * dt), (16, 200, 200.0 * dt), (64, 68, 200.0 * dt)] {
            let delayed: Vec<u32> = (0..vars as u32).collect();
            let init = vec![0.01; vars * lanes];
            for planes in [Planes::WithSlopes, Planes::ValuesOnly] {
                let ring = DelayRing::new(vars, &delayed, &init, lanes, dt, span, &[], &[], planes);
                let base = ring.view(0.0).data as usize;
                let rows = ring.data.len() / lanes;
                assert_eq!(rows, vars * ring.planes * ring.slots);
                let line = super::super::aligned::LINE;
                assert!(
                    (0..rows).all(|r| (base + r * lanes * 8).is_multiple_of(line)),
                    "{lanes} lanes, {vars} histories"
                );
            }
        }
    }

    /// A whole-step read is the recorded value of step n − k itself, for every step and delay,
    /// and the initial value before the first step; the Hermite rule at the rounded `t − d`
    /// (what it replaces) differs from it in some of these reads, so the comparison bites.
    #[test]
    fn whole_step_reads_return_the_recorded_point() {
        let (lanes, dt, steps) = (2, 1e-4, 400usize);
        let x = |k: usize, l: usize| (k as f64 * 0.37 + l as f64).sin() + 2.0;
        let init = [x(0, 0), x(0, 1)];
        let mut ring = DelayRing::new(1, &[0], &init, lanes, dt, 0.02, &[], &[], Planes::WithSlopes);
        let (mut reads, mut hermite_differs) = (0usize, 0usize);
        for n in 0..steps {
            ring.begin_point(0, n);
            for l in 0..lanes {
                // A huge slope: Hermite at an exact step would still give x (0·m), but any
                // read a rounding away from the step would not.
                ring.push_lane(0, l, x(n, l), 1e6 * (n as f64).cos());
            }
            let t = n as f64 * dt;
            for k in [0usize, 1, 7, 13, 150, 199] {
                let delay = k as f64 * dt;
                for (l, first) in init.iter().enumerate() {
                    let want = if n > k { x(n - k, l) } else { *first };
                    let got = ring.value(0, l, t, delay);
                    assert_eq!(got.to_bits(), want.to_bits(), "step {n} delay {k} lane {l}");
                    reads += 1;
                    let tq = t - delay;
                    if tq > 0.0 && n > k && tq < t {
                        let lo = ((tq / dt).floor() as usize).min(n - 1);
                        let s = (tq - lo as f64 * dt) / dt;
                        if s != 0.0 || lo != n - k {
                            hermite_differs += 1;
                        }
                    }
                }
            }
        }
        assert!(reads > 4000, "{reads}");
        assert!(
            hermite_differs > 100,
            "the rounded t − d lands off the step only {hermite_differs} times"
        );
    }
}
